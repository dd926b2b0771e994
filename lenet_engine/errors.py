"""The exceptions lenet_engine raises on bad input, bad files and missing data.

Every one derives from LenetEngineError, and from the built-in class a caller
would catch anyway (ValueError for bad values and corrupt files,
FileNotFoundError for missing ones, ImportError for missing optional
packages), so `except ValueError` keeps working.
"""


class LenetEngineError(Exception):
    """Base class of every error lenet_engine raises on purpose."""


class InvalidInputError(LenetEngineError, ValueError):
    """An array given to the engine has the wrong shape, dtype or values."""


class UnknownModelError(LenetEngineError, ValueError):
    """A model, architecture or backend name the engine does not know."""


class WeightsFileError(LenetEngineError, ValueError):
    """A weights file is truncated, corrupt, foreign or does not fit the architecture."""


class WeightsNotFoundError(LenetEngineError, FileNotFoundError):
    """A weights file that does not exist."""


class DatasetError(LenetEngineError, ValueError):
    """A dataset file is truncated, corrupt or fails its checksum."""


class DatasetNotFoundError(LenetEngineError, FileNotFoundError):
    """Dataset files are missing and could not be downloaded."""


class MissingDependencyError(LenetEngineError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the extra."""


class UnsupportedModelError(WeightsFileError):
    """A Keras or PyTorch model whose architecture or weights the engine cannot run; the message names
    the first layer or tensor that does not fit."""
