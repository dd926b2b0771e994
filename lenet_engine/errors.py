"""The exceptions lenet_engine raises on bad input, bad files and missing data.

Every one derives from LenetEngineError, and from the built-in class a caller
would catch anyway (ValueError for bad values and corrupt files,
FileNotFoundError for missing ones, ImportError for missing optional
packages), so `except ValueError` keeps working.

Each family has one class per kind of problem, under a base class that catches
the whole family:

    WeightsFileError       NotSafetensorsError, TruncatedWeightsError, CorruptWeightsError
                           (WeightsChecksumError), WeightsTooLargeError, ForeignWeightsError,
                           ShapeMismatchError, NonFiniteWeightsError, UnsupportedModelError
    DatasetError           NotIdxError, TruncatedDatasetError, CorruptDatasetError
                           (DatasetChecksumError), DatasetTooLargeError, DatasetContentError
    ImageError             UnsupportedImageError, CorruptImageError, ImageTooLargeError,
                           BlankImageError

The README has the same table with what raises each.
"""


class LenetEngineError(Exception):
    """Base class of every error lenet_engine raises on purpose."""


class InvalidInputError(LenetEngineError, ValueError):
    """An array given to the engine has the wrong shape, dtype or values."""


class UnknownModelError(LenetEngineError, ValueError):
    """A model, architecture, backend or kernel level name the engine does not know."""


class UnsupportedCPUError(LenetEngineError, RuntimeError):
    """The kernel level asked for (LENET_ENGINE_ISA) needs instructions this CPU lacks."""


# --- weights files -----------------------------------------------------------


class WeightsFileError(LenetEngineError, ValueError):
    """A weights file is truncated, corrupt, foreign or does not fit the architecture."""


class NotSafetensorsError(WeightsFileError):
    """The file is not a safetensors file at all (a pickle, a zip, a .npy, random bytes)."""


class TruncatedWeightsError(WeightsFileError):
    """The file ends before the header or the tensor data its first bytes declare."""


class CorruptWeightsError(WeightsFileError):
    """The file's structure is inconsistent: invalid header JSON or entries, overlapping
    tensors, gaps, trailing bytes, unreadable metadata."""


class WeightsChecksumError(CorruptWeightsError):
    """The file is well formed but its content no longer matches the checksum written with it."""


class WeightsTooLargeError(WeightsFileError):
    """The file, its header or the tensors it declares are larger than the loader accepts."""


class ForeignWeightsError(WeightsFileError):
    """A valid safetensors file, but not lenet_engine weights (no format tag, unknown architecture)."""


class ShapeMismatchError(WeightsFileError):
    """The tensors' names, shapes or dtypes do not fit the architecture."""


class NonFiniteWeightsError(WeightsFileError):
    """A weight is NaN or infinite."""


class WeightsNotFoundError(LenetEngineError, FileNotFoundError):
    """A weights file that does not exist."""


# --- datasets ----------------------------------------------------------------


class DatasetError(LenetEngineError, ValueError):
    """A dataset file is truncated, corrupt or fails its checksum (raised as such for an unknown
    split or a file that cannot be opened)."""


class NotIdxError(DatasetError):
    """The file is not an IDX file of unsigned bytes: bad magic number, data type or dimension count."""


class TruncatedDatasetError(DatasetError):
    """The file (or its gzip stream) ends before the header or the data it declares."""


class CorruptDatasetError(DatasetError):
    """The file is damaged: bytes after the declared data, or a gzip stream that fails to decode."""


class DatasetChecksumError(CorruptDatasetError):
    """The decoded content does not have the published MD5 sum."""


class DatasetTooLargeError(DatasetError):
    """The IDX header declares an absurd number of elements."""


class DatasetContentError(DatasetError):
    """A valid IDX file that is not the expected MNIST file: wrong shape, labels outside 0..9."""


class DatasetNotFoundError(LenetEngineError, FileNotFoundError):
    """Dataset files are missing and could not be downloaded."""


# --- images ------------------------------------------------------------------


class ImageError(LenetEngineError, ValueError):
    """An image (or other file of digits) cannot be read or turned into an MNIST digit."""


class UnsupportedImageError(ImageError):
    """The file is not a PNG, JPEG or BMP image (nor, where digit files are read, a .npy or IDX file)."""


class CorruptImageError(ImageError):
    """The image file is truncated or its data is damaged."""


class ImageTooLargeError(ImageError):
    """The image declares more pixels than the loader accepts (a decompression bomb, say)."""


class BlankImageError(ImageError):
    """The image holds no ink: every pixel has the same shade, so there is no digit to centre."""


class MissingDependencyError(LenetEngineError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the extra."""


class UnsupportedModelError(WeightsFileError):
    """A Keras or PyTorch model whose architecture or weights the engine cannot run; the message names
    the first layer or tensor that does not fit."""


class WrongPrecisionError(WeightsFileError):
    """A weights file holds another precision (fp32, int8) than the one asked for."""
