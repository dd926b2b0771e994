"""Trained weights on disk: .safetensors files whose tensor names are state_dict keys.

The file's metadata holds the architecture, a JSON record of how the
weights were made (recipe, command, measured accuracy) and a SHA-256 of
everything else in the file, so that a flipped bit anywhere (tensor data
included, which the safetensors format itself does not protect) is refused
instead of giving wrong answers. Called by lenet_engine.model (load, save)
and the CLI.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from lenet_engine import weights as weights_package
from lenet_engine._version import __version__
from lenet_engine.architectures import ARCHITECTURES
from lenet_engine.errors import (
    CorruptWeightsError,
    ForeignWeightsError,
    UnknownModelError,
    WeightsChecksumError,
    WeightsNotFoundError,
)
from lenet_engine.io import json_records, safetensors_file

FORMAT = "lenet_engine.weights/2"
# Written before files carried a checksum: still read, unchecked.
FORMAT_WITHOUT_CHECKSUM = "lenet_engine.weights/1"
CHECKSUM_KEY = "sha256"
# The shipped weights, by name (weights/<name>.safetensors); each file names its architecture.
SHIPPED = ("classic", "classic-distorted", "modern")
# Their int8 versions (lenet_engine.quantize), calibrated on training digits: load(name, precision="int8").
SHIPPED_INT8 = tuple(f"{name}-int8" for name in SHIPPED)


def shipped_path(name):
    """Path of a shipped weights file, by model name."""
    # Beside the weights package's __init__.py: importlib.resources would cost the import of
    # tempfile, shutil and zipfile (part of a cold start) for the same path.
    return Path(weights_package.__file__).parent / f"{name}.safetensors"


def resolve(name_or_path):
    """A shipped model name or a path -> an existing file path, or a clear error."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"expected a model name ({', '.join(SHIPPED)}) or a path, got {type(name_or_path).__name__}"
        )
    if isinstance(name_or_path, str) and name_or_path in SHIPPED + SHIPPED_INT8:
        path = shipped_path(name_or_path)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"the shipped weights {name_or_path!r} are missing from the installation ({path})"
            )
        return path
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsNotFoundError(f"{path} is a folder, not a weights file")
    if isinstance(name_or_path, str) and not path.suffix and "/" not in name_or_path:
        raise UnknownModelError(
            f"unknown model {name_or_path!r}: expected one of {', '.join(SHIPPED)} or a path to a .safetensors file"
        )
    raise WeightsNotFoundError(f"no weights file at {path}")


def save(path, state, arch_name, record):
    """Write state (name -> float32 array) with the architecture and `record` (a JSON-able dict)."""
    metadata = {
        "format": FORMAT,
        "arch": arch_name,
        "engine_version": __version__,
        "record": json_records.dumps(record, sort_keys=True),
    }
    metadata[CHECKSUM_KEY] = checksum(state, metadata)
    safetensors_file.save_file(state, path, metadata=metadata)


def checksum(tensors, metadata):
    """SHA-256 (hex) of the tensors' names, dtypes, shapes and little-endian bytes, and of the metadata
    except its own checksum entry: what a weights file records under CHECKSUM_KEY."""
    digest = hashlib.sha256()
    rest = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    digest.update(json.dumps(rest, sort_keys=True).encode())
    for name in sorted(tensors):
        t = np.asarray(tensors[name])
        t = np.asarray(t, dtype=t.dtype.newbyteorder("<"), order="C")
        digest.update(json.dumps([name, t.dtype.str, list(t.shape)]).encode())
        digest.update(t.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def load(path):
    """Read a weights file -> (architecture name, tensors, metadata dict).

    Checks the file's structure, its format tag, checksum and architecture, not the tensors' shapes
    (Architecture.check_state does). Raises a WeightsFileError subclass for each kind of problem.
    """
    tensors, meta = safetensors_file.load_file(path)
    fmt = meta.get("format")
    if fmt not in (FORMAT, FORMAT_WITHOUT_CHECKSUM):
        raise ForeignWeightsError(
            f"{path} is a safetensors file but not lenet_engine weights "
            f"(metadata format {fmt!r}, expected {FORMAT!r})"
        )
    if fmt == FORMAT:
        verify_checksum(path, tensors, meta)
    arch = meta.get("arch")
    if arch not in ARCHITECTURES:
        raise ForeignWeightsError(f"{path} declares an unknown architecture {arch!r}")
    try:
        record = json.loads(meta.get("record", "{}"))
    except json.JSONDecodeError as exc:
        raise CorruptWeightsError(f"{path}: the metadata record is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise CorruptWeightsError(f"{path}: the metadata record is not a JSON object")
    metadata = dict(record, arch=arch, engine_version=meta.get("engine_version"))
    return arch, tensors, metadata


def verify_checksum(path, tensors, meta):
    """Raise WeightsChecksumError unless meta's checksum matches the tensors and the rest of meta."""
    recorded = meta.get(CHECKSUM_KEY)
    if recorded is None:
        raise WeightsChecksumError(f"{path}: the file declares format {meta.get('format')!r} but carries no checksum")
    if recorded != checksum(tensors, meta):
        raise WeightsChecksumError(
            f"{path}: checksum mismatch: the content changed after the file was written (corrupt copy?)"
        )
