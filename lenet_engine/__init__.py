"""lenet_engine: LeNet-5 on the CPU, inference and training, with compiled kernels.

    import lenet_engine as le
    m = le.load("classic")
    m.predict(digits)
"""

from lenet_engine import datasets, distortions
from lenet_engine._version import __version__
from lenet_engine.backends import backends, get_num_threads, set_num_threads
from lenet_engine.distortions import Distortions
from lenet_engine.model import LeNet5, load
from lenet_engine.errors import (
    DatasetError,
    DatasetNotFoundError,
    InvalidInputError,
    LenetEngineError,
    MissingDependencyError,
    UnknownModelError,
    WeightsFileError,
    WeightsNotFoundError,
)

__all__ = [
    "__version__",
    "LeNet5",
    "load",
    "backends",
    "datasets",
    "distortions",
    "Distortions",
    "get_num_threads",
    "set_num_threads",
    "DatasetError",
    "DatasetNotFoundError",
    "InvalidInputError",
    "LenetEngineError",
    "MissingDependencyError",
    "UnknownModelError",
    "WeightsFileError",
    "WeightsNotFoundError",
]
