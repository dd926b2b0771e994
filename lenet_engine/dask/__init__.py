"""Scoring with a LeNet5 on Dask, on one machine or a cluster (the [dask] extra: dask[distributed], pyarrow).

    from lenet_engine import dask as le_dask
    labels = le_dask.predict(model, digits)               # digits: a dask array; lazy, chunk by chunk
    with le_dask.connect("local:4"):                      # or "tcp://scheduler:8786"
        le_dask.predict_files(model, "scans/*.npy", "results.parquet")

The model goes to each worker once per computation, as one key of the task graph
every chunk's task depends on; on a worker each task runs the kernels on one
thread, and the worker's own threads run chunks side by side.
"""

from lenet_engine._optional import import_optional

import_optional("dask", "dask", "lenet_engine.dask")

from lenet_engine.dask.arrays import predict  # after the dependency check
from lenet_engine.dask.cluster import connect
from lenet_engine.dask.files import predict_files

__all__ = ["connect", "predict", "predict_files"]
