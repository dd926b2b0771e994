"""Read and write .safetensors weight files with strict validation.

This module holds the engine's only reader and writer for the safetensors
format: an 8-byte little-endian header length, a UTF-8 JSON header naming each
tensor's dtype, shape and byte range, then the raw little-endian tensor bytes.
lenet_engine.io.weights_file (behind the model's save and load) calls
`save_file` and `load_file`, and the weights tests use them to build and
check files.

Why our own reader rather than pickle, torch or the `safetensors` package:
weights files come from users and downloads, so the loader must never
unpickle or evaluate anything, must refuse a corrupt or foreign file with a
message that says what is wrong, and must not let a lying header make it
allocate gigabytes. The format is small enough that doing this ourselves costs
less than an extra dependency, and it lets every check raise our own
WeightsFileError subclass for its kind of problem (lenet_engine.errors):
NotSafetensorsError, TruncatedWeightsError, CorruptWeightsError or
WeightsTooLargeError.
"""

import json
import math
import os
import stat
from typing import NamedTuple

import numpy as np

from lenet_engine.errors import (
    CorruptWeightsError,
    NotSafetensorsError,
    TruncatedWeightsError,
    WeightsNotFoundError,
    WeightsTooLargeError,
)
from lenet_engine.io import atomic

__all__ = ["save_file", "load_file"]

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
}
# Keyed by (kind, itemsize) so big-endian inputs map to the same code.
_CODES = {(dt.kind, dt.itemsize): code for code, dt in _DTYPES.items()}

_METADATA_KEY = "__metadata__"
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_PREFIX_BYTES = 8
# No real header comes near this; anything larger is a foreign or hostile file,
# and it is refused before the header is read into memory.
_MAX_HEADER_BYTES = 100 * 2**20
_MAX_NDIM = 64  # numpy's own limit
# Keeps zero-size shapes such as [0, 2**62] from overflowing numpy's size check.
_MAX_EXTENT_BYTES = 2**62


class _Entry(NamedTuple):
    name: str
    dtype: np.dtype
    shape: tuple
    begin: int
    end: int


class _HeaderSyntaxError(ValueError):
    """Raised from inside json.loads hooks; turned into CorruptWeightsError."""


# --------------------------------------------------------------------- writing


def save_file(
    tensors: dict[str, np.ndarray], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` (name -> numpy array) and optional str metadata to `path`.

    The output is deterministic: the same tensors and metadata give the same
    bytes whatever the dict order. The write is atomic: a crash or error leaves
    any existing file at `path` untouched and no temporary file behind.
    """
    path = os.fspath(path)
    entries = _checked_tensors(tensors)
    metadata = _checked_metadata_arg(metadata)
    header = _encode_header(entries, metadata)
    chunks = [len(header).to_bytes(_PREFIX_BYTES, "little"), header]
    chunks.extend(arr.reshape(-1).view(np.uint8) for _, _, arr in entries)
    atomic.write_bytes(path, chunks)


def _checked_tensors(tensors):
    if not isinstance(tensors, dict):
        kind = type(tensors).__name__
        raise TypeError(f"tensors must be a dict of name -> numpy array, got {kind}")
    for name in tensors:
        _check_name_arg(name)
    return [_checked_tensor(name, tensors[name]) for name in sorted(tensors)]


def _check_name_arg(name):
    if not isinstance(name, str):
        raise TypeError(f"tensor name {name!r} must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("tensor name must not be empty")
    if name == _METADATA_KEY:
        raise ValueError(f"tensor name {name!r} is reserved for the file's metadata")


def _checked_tensor(name, value):
    if not isinstance(value, np.ndarray):
        raise TypeError(f"tensor {name!r} must be a numpy array, got {type(value).__name__}")
    code = _CODES.get((value.dtype.kind, value.dtype.itemsize))
    if code is None or value.dtype.fields is not None:
        supported = ", ".join(str(dt.newbyteorder("=")) for dt in _DTYPES.values())
        raise TypeError(f"tensor {name!r} has unsupported dtype {value.dtype}; supported: {supported}")
    # The file is little-endian C order whatever the array's layout in memory.
    # (Not ascontiguousarray: it turns 0-d arrays into shape (1,).)
    return name, code, np.asarray(value, dtype=_DTYPES[code], order="C")


def _checked_metadata_arg(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str -> str, got {key!r}: {value!r}")
    return dict(metadata)


def _encode_header(entries, metadata):
    header = {}
    offset = 0
    for name, code, arr in entries:
        end = offset + arr.nbytes
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, end]}
        offset = end
    if metadata:
        header[_METADATA_KEY] = metadata
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")
    # Padding keeps the tensor data 8-byte aligned in the file, as other writers do.
    return raw + b" " * (-len(raw) % 8)


# --------------------------------------------------------------------- reading


def load_file(
    path: str | os.PathLike, *, max_bytes: int = 256 * 2**20
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file; return (tensors, metadata).

    Every array is a fresh, writable, C-contiguous, native-endian copy.
    Raises WeightsNotFoundError if `path` does not exist, and a subclass of
    WeightsFileError if the file is not a valid safetensors file:
    NotSafetensorsError, TruncatedWeightsError, CorruptWeightsError, or
    WeightsTooLargeError when the file or the data its header declares is
    larger than `max_bytes` (checked before any tensor data is read). Values
    are not checked: NaN and inf load as they are.
    """
    path = os.fspath(path)
    with _open(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise _error(path, f"file is {size} bytes, larger than max_bytes={max_bytes}", WeightsTooLargeError)
        entries, metadata = _read_header(f, path, size, max_bytes)
        tensors = {entry.name: _read_tensor(f, path, entry) for entry in entries}
    return tensors, metadata


def _error(path, problem, kind=CorruptWeightsError):
    return kind(f"{path}: {problem}")


def _open(path):
    try:
        f = open(path, "rb")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise WeightsNotFoundError(f"weights file not found: {path}") from exc
    except IsADirectoryError as exc:  # as le.load says of a folder
        raise WeightsNotFoundError(f"{path} is a folder, not a weights file") from exc
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise _error(path, "is not a regular file", NotSafetensorsError)
    return f


def _read_exact(f, n, path):
    data = f.read(n)
    if len(data) != n:
        # Only reachable if the file shrinks while being read.
        raise _error(path, f"file ended after {len(data)} of {n} expected bytes", TruncatedWeightsError)
    return data


def _read_header(f, path, size, max_bytes):
    """Parse and validate the header; return (entries in file order, metadata)."""
    if size < _PREFIX_BYTES:
        raise _error(path, f"file is {size} bytes, shorter than the 8-byte header length", TruncatedWeightsError)
    header_len = int.from_bytes(_read_exact(f, _PREFIX_BYTES, path), "little")
    # Every safetensors header is a JSON object: a file whose ninth byte is not
    # '{' is something else (a pickle, a zip, a .npy), whatever its length says.
    first = f.read(1)
    if (first and first != b"{") or header_len == 0:
        raise _error(path, "not a safetensors file: the header does not start with '{'", NotSafetensorsError)
    _check_header_len(path, header_len, size)
    header = _parse_header(path, first + _read_exact(f, header_len - 1, path))
    metadata = _checked_loaded_metadata(path, header.pop(_METADATA_KEY, {}))
    entries = [_checked_entry(path, name, spec) for name, spec in header.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    _check_layout(path, entries, size - _PREFIX_BYTES - header_len, max_bytes)
    return entries, metadata


def _check_header_len(path, header_len, size):
    if header_len > _MAX_HEADER_BYTES:
        raise _error(
            path,
            f"the first 8 bytes declare a {header_len}-byte header, over the {_MAX_HEADER_BYTES}-byte cap",
            WeightsTooLargeError,
        )
    if header_len > size - _PREFIX_BYTES:
        raise _error(
            path,
            f"truncated: the first 8 bytes declare a {header_len}-byte header "
            f"but only {size - _PREFIX_BYTES} bytes follow",
            TruncatedWeightsError,
        )


def _parse_header(path, raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(path, f"header is not valid UTF-8 ({exc})") from None
    try:
        # A header that starts with '{' and parses is always a JSON object.
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except _HeaderSyntaxError as exc:
        raise _error(path, f"header is invalid: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"header is not valid JSON ({exc})") from None


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise _HeaderSyntaxError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name):
    raise _HeaderSyntaxError(f"non-standard JSON constant {name}")


def _checked_loaded_metadata(path, metadata):
    if not isinstance(metadata, dict):
        kind = type(metadata).__name__
        raise _error(path, f"{_METADATA_KEY} must be an object of str -> str, got {kind}")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise _error(path, f"{_METADATA_KEY} value for {key!r} must be a str, got {value!r}")
    return metadata


def _checked_entry(path, name, spec):
    if not name:
        raise _error(path, "a tensor has an empty name")
    where = f"tensor {name!r}"
    if not isinstance(spec, dict) or set(spec) != _ENTRY_KEYS:
        keys = "dtype, shape, data_offsets"
        raise _error(path, f"{where}: entry must be an object with exactly the keys {keys}")
    dtype = _checked_dtype(path, where, spec["dtype"])
    shape = _checked_shape(path, where, spec["shape"], dtype)
    begin, end = _checked_offsets(path, where, spec["data_offsets"])
    needed = math.prod(shape) * dtype.itemsize
    if end - begin != needed:
        raise _error(
            path,
            f"{where}: data_offsets span {end - begin} bytes but dtype {spec['dtype']} "
            f"with shape {list(shape)} needs {needed}",
        )
    return _Entry(name, dtype, shape, begin, end)


def _checked_dtype(path, where, code):
    dtype = _DTYPES.get(code) if isinstance(code, str) else None
    if dtype is None:
        raise _error(path, f"{where}: unknown or unsupported dtype {code!r} (supported: {', '.join(_DTYPES)})")
    return dtype


def _is_count(value):
    # bool is an int subclass, but `true` is not a valid size in the header.
    return type(value) is int and value >= 0


def _checked_shape(path, where, shape, dtype):
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _error(path, f"{where}: shape must be a list of non-negative ints, got {shape!r}")
    if len(shape) > _MAX_NDIM:
        raise _error(path, f"{where}: shape has {len(shape)} dimensions, more than {_MAX_NDIM}")
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_EXTENT_BYTES:
        raise _error(path, f"{where}: shape {shape} is too large", WeightsTooLargeError)
    return tuple(shape)


def _checked_offsets(path, where, offsets):
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise _error(path, f"{where}: data_offsets must be two non-negative ints, got {offsets!r}")
    begin, end = offsets
    if begin > end:
        raise _error(path, f"{where}: data_offsets begin {begin} is after end {end}")
    return begin, end


def _check_layout(path, entries, buffer_len, max_bytes):
    """Tensors must tile the data buffer exactly: no overlap, no gap, no leftovers."""
    expected, previous = 0, None
    for entry in entries:
        if entry.begin < expected:
            raise _error(
                path,
                f"tensor {entry.name!r} overlaps tensor {previous!r} "
                f"(starts at byte {entry.begin}, before {expected})",
            )
        if entry.begin > expected:
            raise _error(path, f"gap in the data buffer: bytes {expected}..{entry.begin} belong to no tensor")
        expected, previous = entry.end, entry.name
    if expected > max_bytes:
        raise _error(path, f"the tensors declare {expected} bytes of data, larger than max_bytes={max_bytes}",
                     WeightsTooLargeError)
    if expected > buffer_len:
        raise _error(
            path, f"data buffer is truncated: the tensors need {expected} bytes but the file holds {buffer_len}",
            TruncatedWeightsError,
        )
    if expected < buffer_len:
        raise _error(path, f"{buffer_len - expected} trailing bytes after the last tensor")


def _read_tensor(f, path, entry):
    arr = np.empty(entry.shape, dtype=entry.dtype)
    target = arr.reshape(-1).view(np.uint8)
    if f.readinto(target) != target.size:
        raise _error(path, f"file ended inside tensor {entry.name!r}", TruncatedWeightsError)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
