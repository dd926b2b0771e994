"""Files of digits read a range at a time, for scoring files too large for one process's memory.

`inspect(path)` says what a file holds (its kind and digit count) from its header
alone; `read_chunks(...)` yields its digits a chunk at a time. .npy files and raw
IDX files are memory-mapped, so any range is read without the rest of the file;
a gzipped IDX file is decompressed as a stream, chunk by chunk, whole (so it is
never split between tasks);
an image is one digit, converted as lenet_engine.digit_files converts it.
"""

import gzip
import math
import os

import numpy as np

from lenet_engine.datasets import _read_header, idx_read_errors
from lenet_engine.digit_files import file_kind, read_digits
from lenet_engine.errors import CorruptDatasetError, InvalidInputError, TruncatedDatasetError
from lenet_engine.inputs import DIGIT_SIZE

PIXELS = DIGIT_SIZE * DIGIT_SIZE
# Kinds read by range (memory-mapped) and the one read as a stream.
SEEKABLE = ("npy", "idx")
STREAMED = "idx.gz"


def inspect(path):
    """(kind, digit count) of a file: kind "image", "npy", "idx" or "idx.gz"; raises on a bad header."""
    kind = file_kind(path)
    if kind == "image":
        return kind, 1  # decoded when scored: its errors are found then
    if kind == "npy":
        return kind, len(_npy_digits(path))
    with open(path, "rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as stream:
                shape = _idx_shape(stream, path)
            return STREAMED, _digit_count(shape, path)
        raw.seek(0)
        shape = _idx_shape(raw, path)
    return "idx", len(_raw_idx_digits(path, shape))


def read_chunks(path, kind, start, stop, chunk, invert=None):
    """Yield (index of its first digit, (n, 28, 28) digits) over digits start..stop-1 of the file
    (all of a gzipped IDX file, whatever start and stop say: it is read as one stream)."""
    if kind == "image":
        yield start, read_digits(path, invert=invert)[None]
    elif kind in SEEKABLE:
        digits = _npy_digits(path) if kind == "npy" else _raw_idx_digits(path)
        for first in range(start, stop, chunk):
            yield first, np.array(digits[first:min(first + chunk, stop)])  # a copy: the map's pages go
    else:
        yield from _gzip_idx_chunks(path, chunk)


def _npy_digits(path):
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise InvalidInputError(f"{os.fspath(path)}: not a readable .npy array ({exc})") from exc
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise InvalidInputError(f"{os.fspath(path)}: digits of dtype {array.dtype}; expected uint8 or float")
    if array.shape == (DIGIT_SIZE, DIGIT_SIZE):
        return array[None]
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    return array.reshape(_digit_count(array.shape, path), DIGIT_SIZE, DIGIT_SIZE)


def _idx_shape(stream, path):
    with idx_read_errors(os.fspath(path)):
        _, shape = _read_header(stream, os.fspath(path))
    return shape


def _raw_idx_digits(path, shape=None):
    """The digits of a raw IDX file, memory-mapped after checking that the file is as long as declared."""
    if shape is None:
        with open(path, "rb") as raw:
            shape = _idx_shape(raw, path)
    offset = 4 + 4 * len(shape)
    size = os.path.getsize(path)
    declared = offset + math.prod(shape)
    if size < declared:
        raise TruncatedDatasetError(f"{os.fspath(path)}: truncated: the IDX header declares {declared - offset} "
                                    f"data bytes, the file holds {max(size - offset, 0)}")
    if size > declared:
        raise CorruptDatasetError(f"{os.fspath(path)}: trailing bytes after the data the IDX header declares")
    count = _digit_count(shape, path)
    if count == 0:
        return np.zeros((0, DIGIT_SIZE, DIGIT_SIZE), dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(count, DIGIT_SIZE, DIGIT_SIZE))


def _digit_count(shape, path):
    """How many 28x28 digits an array of `shape` holds; InvalidInputError when it is not digits."""
    shape = tuple(shape)
    if shape == (DIGIT_SIZE, DIGIT_SIZE):
        return 1
    if len(shape) == 3 and shape[1:] == (DIGIT_SIZE, DIGIT_SIZE):
        return shape[0]
    raise InvalidInputError(f"{os.fspath(path)}: holds an array of shape {shape}, not (N, 28, 28) digits "
                            "(a labels file?)")


def _gzip_idx_chunks(path, chunk):
    name = os.fspath(path)
    with idx_read_errors(name), open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as stream:
        shape = _idx_shape(stream, path)
        total = _digit_count(shape, path)
        for first in range(0, total, chunk):
            n = min(chunk, total - first)
            data = stream.read(n * PIXELS)
            if len(data) < n * PIXELS:
                raise TruncatedDatasetError(f"{name}: truncated: the IDX header declares {total} digits, "
                                            f"the data ends inside digit {first + len(data) // PIXELS}")
            yield first, np.frombuffer(data, dtype=np.uint8).reshape(n, DIGIT_SIZE, DIGIT_SIZE)
        # Reading to the end makes gzip check its CRC, and finds bytes after the declared data.
        if stream.read(1):
            raise CorruptDatasetError(f"{name}: trailing bytes after the data the IDX header declares")

