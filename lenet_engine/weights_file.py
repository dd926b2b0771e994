"""Trained weights on disk: .safetensors files whose tensor names are state_dict keys.

The file's metadata holds the architecture and a JSON record of how the
weights were made (recipe, command, measured accuracy). Called by
lenet_engine.model (load, save) and the CLI.
"""

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from lenet_engine import safetensors_io
from lenet_engine._version import __version__
from lenet_engine.architectures import ARCHITECTURES
from lenet_engine.errors import UnknownModelError, WeightsFileError, WeightsNotFoundError

FORMAT = "lenet_engine.weights/1"
SHIPPED = ARCHITECTURES  # one shipped file per architecture, named after it


def shipped_path(name):
    """Path of a shipped weights file, by model name."""
    return Path(str(resources.files("lenet_engine.weights").joinpath(f"{name}.safetensors")))


def resolve(name_or_path):
    """A shipped model name or a path -> an existing file path, or a clear error."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"expected a model name ({', '.join(SHIPPED)}) or a path, got {type(name_or_path).__name__}"
        )
    if isinstance(name_or_path, str) and name_or_path in SHIPPED:
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
        "record": json.dumps(record, sort_keys=True, default=_json_scalar),
    }
    safetensors_io.save_file(state, path, metadata=metadata)


def load(path):
    """Read a weights file -> (architecture name, tensors, metadata dict). Checks the header, not the shapes."""
    tensors, meta = safetensors_io.load_file(path)
    if meta.get("format") != FORMAT:
        raise WeightsFileError(
            f"{path} is a safetensors file but not lenet_engine weights "
            f"(metadata format {meta.get('format')!r}, expected {FORMAT!r})"
        )
    arch = meta.get("arch")
    if arch not in ARCHITECTURES:
        raise WeightsFileError(f"{path} declares an unknown architecture {arch!r}")
    try:
        record = json.loads(meta.get("record", "{}"))
    except json.JSONDecodeError as exc:
        raise WeightsFileError(f"{path}: the metadata record is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise WeightsFileError(f"{path}: the metadata record is not a JSON object")
    metadata = dict(record, arch=arch, engine_version=meta.get("engine_version"))
    return arch, tensors, metadata


def check_state(state, expected_shapes, source):
    """Raise WeightsFileError unless state has exactly the expected names, shapes, float32 and finite values."""
    missing = sorted(set(expected_shapes) - set(state))
    unexpected = sorted(set(state) - set(expected_shapes))
    if missing or unexpected:
        raise WeightsFileError(
            f"{source}: tensor names do not fit the architecture "
            f"(missing: {missing or 'none'}; unexpected: {unexpected or 'none'})"
        )
    for name, shape in expected_shapes.items():
        t = state[name]
        if not isinstance(t, np.ndarray):
            raise WeightsFileError(f"{source}: {name} is a {type(t).__name__}, expected a numpy array")
        if t.shape != tuple(shape):
            raise WeightsFileError(f"{source}: {name} has shape {t.shape}, expected {tuple(shape)}")
        if t.dtype != np.float32:
            raise WeightsFileError(f"{source}: {name} has dtype {t.dtype}, expected float32")
        if not np.isfinite(t).all():
            raise WeightsFileError(f"{source}: {name} holds NaN or infinite values")


def _json_scalar(value):
    # numpy scalars (a seed given as np.int64, say) are written as plain numbers.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"metadata value {value!r} of type {type(value).__name__} is not JSON-serialisable")
