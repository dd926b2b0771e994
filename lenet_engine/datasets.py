"""MNIST from its original IDX files: finding, downloading, checking and decoding them.

Holds `load_mnist` (a split as uint8 arrays), `read_idx` (any IDX ubyte file,
raw or gzipped), `mnist_dir` (where the files are looked for), the table of the
files' published MD5 sums (`MNIST_FILES`) and the download mirrors (`MIRRORS`).
The training and evaluation code and the command line call `load_mnist`;
nothing here knows about the model.

Every problem with the files surfaces as a `DatasetError`, of the subclass
for its kind (lenet_engine.errors: NotIdxError, TruncatedDatasetError,
CorruptDatasetError, DatasetChecksumError, DatasetTooLargeError,
DatasetContentError), or as `DatasetNotFoundError` (missing and not
downloadable).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import math
import os
import shutil
import sys
import zlib
from pathlib import Path
from typing import BinaryIO, NamedTuple, Union

import numpy as np

from lenet_engine.io import atomic
from lenet_engine.io.sources import describe_source

from ._version import __version__
from .errors import (
    CorruptDatasetError,
    DatasetChecksumError,
    DatasetContentError,
    DatasetError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    NotIdxError,
    TruncatedDatasetError,
)

__all__ = ["MIRRORS", "MNIST_FILES", "DATA_ENV_VAR", "load_mnist", "mnist_dir", "read_idx"]

log = logging.getLogger(__name__)


class MnistFile(NamedTuple):
    """What one original MNIST file holds once decompressed."""

    shape: tuple[int, ...]
    md5: str


#: The four original files, with the shapes and MD5 sums published alongside
#: MNIST. The sums are of the decompressed content because every
#: mirror gzips the files differently.
MNIST_FILES: dict[str, MnistFile] = {
    "train-images-idx3-ubyte": MnistFile((60_000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": MnistFile((60_000,), "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": MnistFile((10_000, 28, 28), "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": MnistFile((10_000,), "27ae3e4e09519cfbb04c329615203637"),
}

# split -> (images file, labels file)
_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Tried in order; each serves `<file name>.gz`. The original yann.lecun.com
#: site is not listed: it now often refuses downloads.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: Names a folder whose `mnist/` subfolder holds the files.
DATA_ENV_VAR = "LENET_ENGINE_DATA"

_DOWNLOAD_TIMEOUT = 30.0
_UBYTE = 0x08
# A header may claim anything; beyond this it is corrupt, not a dataset.
_MAX_ELEMENTS = 2**31
# Far above what IDX files use, and within what every numpy 2 accepts.
_MAX_NDIM = 32
_CHUNK = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"

IdxSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


# --- where the files are ---------------------------------------------------


def mnist_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds (or will hold) the four MNIST files.

    `root` if given; else `$LENET_ENGINE_DATA/mnist` if that variable is set;
    else the user cache: `$XDG_CACHE_HOME/lenet_engine/mnist` or
    `~/.cache/lenet_engine/mnist` (`%LOCALAPPDATA%\\lenet_engine\\mnist` on Windows).
    """
    if root is not None:
        return Path(root).expanduser()
    data = os.environ.get(DATA_ENV_VAR)
    if data:
        return Path(data).expanduser() / "mnist"
    return _cache_home() / "lenet_engine" / "mnist"


def _cache_home() -> Path:
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG base directory spec says a relative value is to be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path.home() / ".cache"


# --- decoding IDX ----------------------------------------------------------


def read_idx(source: IdxSource) -> np.ndarray:
    """Decode an IDX file of unsigned bytes into a uint8 array shaped as its header says.

    `source` is a path or the file's bytes, raw or gzipped (recognised by
    content, not name). Checks the magic number, the data type (only 0x08,
    unsigned byte, is supported) and that the data is exactly as long as the
    header declares; no checksum. Raises a DatasetError subclass on any
    problem (NotIdxError, TruncatedDatasetError, CorruptDatasetError,
    DatasetTooLargeError; DatasetError itself when the path cannot be opened),
    and DatasetNotFoundError for a path that does not exist.
    """
    array, _ = _read_idx(source, describe_source(source, "IDX data"))
    return array


def _read_idx(source: IdxSource, name: str) -> tuple[np.ndarray, str]:
    """read_idx, plus the MD5 hex digest of the decompressed content."""
    raw = _open(source, name)
    try:
        with idx_read_errors(name):
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if _peek(raw, 2) == _GZIP_MAGIC else raw
            return _decode(stream, name)
    finally:
        raw.close()


@contextlib.contextmanager
def idx_read_errors(name):
    """Reading a raw or gzipped IDX stream inside: its failures raised as the dataset errors, naming `name`.

    gzip reports a cut stream as EOFError, damage as zlib.error or BadGzipFile (an OSError).
    """
    try:
        yield
    except EOFError as exc:
        raise TruncatedDatasetError(f"{name}: cannot read: truncated gzip data ({exc})") from exc
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptDatasetError(f"{name}: cannot read: corrupt gzip data ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{name}: cannot read: I/O error ({exc})") from exc


def _open(source: IdxSource, name: str) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    try:
        return open(source, "rb")
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{name}: no such file") from exc
    except OSError as exc:
        raise DatasetError(f"{name}: cannot open: {exc}") from exc


def _peek(stream: BinaryIO, size: int) -> bytes:
    head = stream.read(size)
    stream.seek(0)
    return head


def _decode(stream: BinaryIO, name: str) -> tuple[np.ndarray, str]:
    digest = hashlib.md5(usedforsecurity=False)
    header, shape = _read_header(stream, name)
    digest.update(header)
    chunks = _read_payload(stream, math.prod(shape), name)
    array = np.empty(math.prod(shape), dtype=np.uint8)
    position = 0
    for chunk in chunks:
        digest.update(chunk)
        array[position : position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        position += len(chunk)
    return array.reshape(shape), digest.hexdigest()


def _read_header(stream: BinaryIO, name: str) -> tuple[bytes, tuple[int, ...]]:
    magic = stream.read(4)
    if len(magic) < 4:
        raise TruncatedDatasetError(f"{name}: too short for an IDX header ({len(magic)} bytes)")
    if magic[0] or magic[1]:
        raise NotIdxError(
            f"{name}: bad magic number 0x{magic.hex().upper()}: not an IDX file (an IDX file starts with two zero bytes)"
        )
    if magic[2] != _UBYTE:
        raise NotIdxError(
            f"{name}: IDX data type code 0x{magic[2]:02X} is not supported; only 0x08 (unsigned byte) is"
        )
    ndim = magic[3]
    if not 1 <= ndim <= _MAX_NDIM:
        raise NotIdxError(f"{name}: IDX header declares {ndim} dimensions; supported are 1 to {_MAX_NDIM}")
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise TruncatedDatasetError(f"{name}: truncated IDX header: {ndim} dimensions declared, file ends inside them")
    shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    # Zero-sized dimensions count as 1: numpy refuses such shapes all the same.
    if math.prod(max(d, 1) for d in shape) > _MAX_ELEMENTS:
        raise DatasetTooLargeError(
            f"{name}: IDX header declares an absurd shape {shape} (over {_MAX_ELEMENTS} elements): corrupt header"
        )
    return magic + dims, shape


def _read_payload(stream: BinaryIO, size: int, name: str) -> list[bytes]:
    # In chunks, so a header lying about its size costs no more memory than the data really there.
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(min(_CHUNK, size - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got < size:
        raise TruncatedDatasetError(f"{name}: truncated: the IDX header declares {size} data bytes, the file holds {got}")
    # Also reads a gzip stream to its end, which makes gzip check its CRC.
    if stream.read(1):
        raise CorruptDatasetError(f"{name}: trailing bytes after the {size} data bytes the IDX header declares")
    return chunks


# --- loading and checking MNIST --------------------------------------------


def load_mnist(
    split: str, root: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST `split` ("train": 60,000 digits, "test": 10,000) as (images, labels).

    images is uint8 (N, 28, 28), C-contiguous, 0 = background; labels is uint8
    (N,) in 0..9. Both are fresh, writable arrays. Files are looked for in
    `mnist_dir(root)`, raw or gzipped (raw wins if both are there); missing
    ones are downloaded there if `download`. Each file's shape and the MD5 of
    its decompressed content must match the published ones.

    Raises DatasetError for an unknown split, a DatasetError subclass for a
    corrupt file (see read_idx; also DatasetContentError for a valid IDX file
    of the wrong shape or labels, DatasetChecksumError for an MD5 mismatch),
    and DatasetNotFoundError when files are missing and cannot be downloaded.
    """
    names = _split_files(split)
    folder = mnist_dir(root)
    images_path, labels_path = _locate(folder, names, download)
    images = _load_checked(images_path, names[0])
    labels = _load_checked(labels_path, names[1])
    return images, labels


def _split_files(split: str) -> tuple[str, str]:
    try:
        return _SPLITS[split]
    except (KeyError, TypeError):  # TypeError: an unhashable split, such as a list
        valid = ", ".join(repr(s) for s in _SPLITS)
        raise DatasetError(f"unknown MNIST split {split!r}; valid splits are {valid}") from None


def _load_checked(path: Path, name: str, display: str | None = None) -> np.ndarray:
    """The decoded file, once its shape, values and checksum are those of the original `name`."""
    display = display or str(path)
    published = MNIST_FILES[name]
    array, md5 = _read_idx(path, display)
    _check_shape(array, published.shape, display)
    if array.ndim == 1:
        _check_labels(array, display)
    # Last, so that a damaged file gets the more specific message above when there is one.
    if md5 != published.md5:
        raise DatasetChecksumError(
            f"{display}: checksum mismatch: MD5 of the decompressed content is {md5}, "
            f"the published {name} has {published.md5}; the file is corrupt or not the original"
        )
    return array


def _check_shape(array: np.ndarray, expected: tuple[int, ...], name: str) -> None:
    if array.ndim != len(expected):
        raise DatasetContentError(
            f"{name}: magic number 0x{0x800 + array.ndim:08X} declares {array.ndim} dimension(s); "
            f"expected 0x{0x800 + len(expected):08X} ({len(expected)} dimension(s), shape {expected})"
        )
    if array.shape != expected:
        raise DatasetContentError(f"{name}: IDX header declares shape {array.shape}; expected {expected}")


def _check_labels(labels: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        first = int(bad[0])
        raise DatasetContentError(
            f"{name}: label {labels[first]} at index {first} is outside 0..9 ({bad.size} such labels)"
        )


# --- finding and downloading the files -------------------------------------


def _locate(folder: Path, names: tuple[str, ...], download: bool) -> list[Path]:
    found = {name: _find(folder, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing and not download:
        raise DatasetNotFoundError(_missing_message(folder, missing, "downloading is off (download=False)"))
    for name in missing:
        found[name] = _download(folder, name)
    return [found[name] for name in names]


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_message(folder: Path, missing: list[str], reason: str) -> str:
    return (
        f"MNIST file {', '.join(missing)} not found (raw or .gz) in {folder.absolute()}; {reason}. "
        f"Put the four MNIST files ({', '.join(MNIST_FILES)}, raw or gzipped) in that folder, "
        f"or set {DATA_ENV_VAR} to a folder containing mnist/ with them."
    )


def _download(folder: Path, name: str) -> Path:
    target = folder / f"{name}.gz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetNotFoundError(_missing_message(folder, [name], f"cannot create the folder ({exc})")) from exc
    failures = []
    for mirror in MIRRORS:
        url = mirror + target.name
        log.info("downloading %s", url)
        try:
            _fetch_checked(url, target, name)
            return target
        except (OSError, _http_errors(), DatasetError) as exc:
            failures.append(f"{url}: {exc}")
    detail = "; ".join(failures) or "no mirrors configured"
    raise DatasetNotFoundError(_missing_message(folder, [name], f"downloading it failed: {detail}"))


def _fetch_checked(url: str, target: Path, name: str) -> None:
    """Download url to target, only once the content checks out."""
    # Nothing half-written or unchecked ever carries the real name.
    with atomic.replacing(target) as (out, temp):
        with _urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response:
            shutil.copyfileobj(response, out, _CHUNK)
        out.flush()
        _load_checked(Path(temp), name, display=url)


def _http_errors() -> type:
    import http.client

    return http.client.HTTPException


def _urlopen(url: str, timeout: float) -> BinaryIO:
    """Open url for reading. The tests replace this to stay off the network."""
    import urllib.request  # here, not at the top: importing it slows every engine import

    request = urllib.request.Request(url, headers={"User-Agent": f"lenet_engine/{__version__}"})
    return urllib.request.urlopen(request, timeout=timeout)
