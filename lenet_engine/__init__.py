"""lenet_engine: LeNet-5 on the CPU, inference and training, with compiled kernels.

    import lenet_engine as le
    m = le.load("classic")
    m.predict(digits)
    m = le.from_keras("lenet5.keras")   # also from_torch(state_dict); m.to_onnx("lenet5.onnx")
"""

import importlib

from lenet_engine._version import __version__
from lenet_engine.backends import backends, get_num_threads, info, set_num_threads
from lenet_engine.model import LeNet5, load
from lenet_engine.errors import (
    BlankImageError,
    CorruptDatasetError,
    CorruptImageError,
    CorruptWeightsError,
    DatasetChecksumError,
    DatasetContentError,
    DatasetError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    ForeignWeightsError,
    ImageError,
    ImageTooLargeError,
    InvalidInputError,
    LenetEngineError,
    MissingDependencyError,
    NonFiniteWeightsError,
    NotIdxError,
    NotSafetensorsError,
    ShapeMismatchError,
    TruncatedDatasetError,
    TruncatedWeightsError,
    UnknownModelError,
    UnsupportedImageError,
    UnsupportedCPUError,
    UnsupportedModelError,
    WeightsChecksumError,
    WeightsFileError,
    WeightsNotFoundError,
    WeightsTooLargeError,
    WrongPrecisionError,
)

__all__ = [
    "__version__",
    "LeNet5",
    "load",
    "from_keras",
    "from_torch",
    "backends",
    "datasets",
    "distortions",
    "Distortions",
    "get_num_threads",
    "info",
    "set_num_threads",
    "BlankImageError",
    "CorruptDatasetError",
    "CorruptImageError",
    "CorruptWeightsError",
    "DatasetChecksumError",
    "DatasetContentError",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetTooLargeError",
    "ForeignWeightsError",
    "ImageError",
    "ImageTooLargeError",
    "InvalidInputError",
    "LenetEngineError",
    "MissingDependencyError",
    "NonFiniteWeightsError",
    "NotIdxError",
    "NotSafetensorsError",
    "ShapeMismatchError",
    "TruncatedDatasetError",
    "TruncatedWeightsError",
    "UnknownModelError",
    "UnsupportedImageError",
    "UnsupportedCPUError",
    "UnsupportedModelError",
    "WeightsChecksumError",
    "WeightsFileError",
    "WeightsNotFoundError",
    "WeightsTooLargeError",
    "WrongPrecisionError",
    "Int8LeNet5",
]

# Loaded on first use, so that a process which only predicts does not import the
# dataset downloader (logging, urllib, hashlib, gzip), the training distortions or the
# Keras and PyTorch readers: part of the cold start to a first prediction.
_LAZY = {"datasets": ("lenet_engine.datasets", None),
         "distortions": ("lenet_engine.distortions", None),
         "Distortions": ("lenet_engine.distortions", "Distortions"),
         "from_keras": ("lenet_engine.interop", "from_keras"),
         "from_torch": ("lenet_engine.interop", "from_torch"),
         "Int8LeNet5": ("lenet_engine.int8_model", "Int8LeNet5")}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'lenet_engine' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
