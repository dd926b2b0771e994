"""connect(): a distributed Client for `--scheduler`, a running cluster's address or `local:N`."""

import contextlib
import os

from lenet_engine._optional import import_optional
from lenet_engine.errors import InvalidInputError


@contextlib.contextmanager
def connect(scheduler):
    """A distributed.Client, the default scheduler inside the block.

    scheduler: "local:N" starts a LocalCluster of N worker processes of one thread each
    (stopped at the end of the block; "local" alone: one per core), anything else is the
    address of a running scheduler, e.g. "tcp://10.0.0.5:8786" (`dask scheduler`).
    """
    distributed = import_optional("distributed", "dask", "--scheduler")
    workers = local_workers(scheduler)
    if workers is None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client


def local_workers(scheduler):
    """N for "local:N" (the core count for "local"), None for any other address; ValueError for a bad N."""
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be a string, got {type(scheduler).__name__}")
    name, sep, count = scheduler.partition(":")
    if name != "local":
        return None
    if not sep:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise InvalidInputError(f"--scheduler {scheduler!r}: expected local:N, N the number of worker processes (>= 1)")
    return int(count)
