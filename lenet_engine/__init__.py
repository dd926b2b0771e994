"""lenet_engine: LeNet-5 on the CPU, inference and training, with compiled kernels.

    import lenet_engine as le
    m = le.load("classic")
    m.predict(digits)
    m = le.from_keras("lenet5.keras")   # also from_torch(state_dict); m.to_onnx("lenet5.onnx")
"""

from lenet_engine import datasets, distortions
from lenet_engine._version import __version__
from lenet_engine.backends import backends, get_num_threads, set_num_threads
from lenet_engine.distortions import Distortions
from lenet_engine.model import LeNet5, load
from lenet_engine.interop import from_keras, from_torch
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
    UnsupportedModelError,
    WeightsChecksumError,
    WeightsFileError,
    WeightsNotFoundError,
    WeightsTooLargeError,
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
    "UnsupportedModelError",
    "WeightsChecksumError",
    "WeightsFileError",
    "WeightsNotFoundError",
    "WeightsTooLargeError",
]
