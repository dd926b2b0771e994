"""Tests of lenet_engine.datasets: loading MNIST, decoding IDX, corrupt files, downloads.

The real files come from $LENET_ENGINE_DATA/mnist (read-only); everything
written goes to tmp_path. Downloads go through a fake `_urlopen`, never the network.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import shutil
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import fuzz_settings, mutate, mutation_ops
from lenet_engine import datasets
from lenet_engine.datasets import load_mnist, mnist_dir, read_idx
from lenet_engine.errors import (
    CorruptDatasetError,
    DatasetChecksumError,
    DatasetContentError,
    DatasetError,
    DatasetNotFoundError,
    DatasetTooLargeError,
    LenetEngineError,
    NotIdxError,
    TruncatedDatasetError,
)

TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# --- helpers and fixtures --------------------------------------------------


@pytest.fixture(scope="module")
def test_split(mnist_root):
    return load_mnist("test", root=mnist_root, download=False)


@pytest.fixture
def test_folder(tmp_path, mnist_root) -> Path:
    """A private copy of the test split's two .gz files, free to damage."""
    for name in (TEST_IMAGES, TEST_LABELS):
        shutil.copyfile(mnist_root / f"{name}.gz", tmp_path / f"{name}.gz")
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url, timeout):
        pytest.fail(f"unexpected download of {url}")

    monkeypatch.setattr(datasets, "_urlopen", refuse)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def real_raw(mnist_root: Path, name: str) -> bytes:
    return gzip.decompress((mnist_root / f"{name}.gz").read_bytes())


@contextlib.contextmanager
def dataset_error(*fragments: str, kind: type = DatasetError):
    """Expect a DatasetError of exactly class `kind` whose message contains every fragment."""
    with pytest.raises(DatasetError) as caught:
        yield
    assert type(caught.value) is kind, caught.value
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- the real data ---------------------------------------------------------


def test_test_split_from_env_var(mnist_root, no_network):
    images, labels = load_mnist("test", download=False)  # located through LENET_ENGINE_DATA
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    assert images.flags.c_contiguous and images.flags.writeable and labels.flags.writeable
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(labels, minlength=10).tolist() == TEST_COUNTS
    assert images.min() == 0 and images.max() == 255


def test_train_split(mnist_root, no_network):
    images, labels = load_mnist("train", root=mnist_root, download=False)
    assert images.shape == (60_000, 28, 28) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert labels.shape == (60_000,) and labels.dtype == np.uint8
    counts = np.bincount(labels, minlength=10)
    assert counts.size == 10 and counts.sum() == 60_000 and (counts > 0).all()
    assert counts.tolist() == TRAIN_COUNTS
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_each_call_returns_fresh_arrays(test_split, mnist_root):
    images, _ = load_mnist("test", root=mnist_root, download=False)
    images[0, 0, 0] = 99
    assert test_split[0][0, 0, 0] == 0


@pytest.mark.parametrize("split", ["validation", "", "TEST", None, ["test"]])
def test_unknown_split(split, tmp_path):
    with dataset_error("valid splits are 'train', 'test'"):
        load_mnist(split, root=tmp_path, download=False)


def test_published_table_is_consistent():
    for name, published in datasets.MNIST_FILES.items():
        assert len(published.md5) == 32 and int(published.md5, 16) >= 0
    for images, labels in datasets._SPLITS.values():
        assert datasets.MNIST_FILES[images].shape[0] == datasets.MNIST_FILES[labels].shape[0]


# --- raw and gzip ----------------------------------------------------------


def test_raw_and_gzip_files_load_alike(test_folder, test_split, mnist_root):
    (test_folder / f"{TEST_LABELS}.gz").unlink()
    (test_folder / TEST_LABELS).write_bytes(real_raw(mnist_root, TEST_LABELS))
    images, labels = load_mnist("test", root=test_folder, download=False)
    np.testing.assert_array_equal(images, test_split[0])
    np.testing.assert_array_equal(labels, test_split[1])


def test_raw_file_is_preferred_over_gzip(test_folder, test_split, mnist_root):
    (test_folder / TEST_LABELS).write_bytes(real_raw(mnist_root, TEST_LABELS))
    (test_folder / f"{TEST_LABELS}.gz").write_bytes(b"not gzip at all")
    _, labels = load_mnist("test", root=test_folder, download=False)
    np.testing.assert_array_equal(labels, test_split[1])

    (test_folder / TEST_LABELS).write_bytes(b"\x00\x00\x08\x01broken")
    with dataset_error(str(test_folder / TEST_LABELS), kind=TruncatedDatasetError):
        load_mnist("test", root=test_folder, download=False)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (2, 1, 2, 3), (0, 28, 28)])
def test_read_idx_raw_gzip_path_and_bytes(shape, tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    data = idx_bytes(array)
    (tmp_path / "x-idx").write_bytes(data)
    (tmp_path / "x-idx.gz").write_bytes(gzip.compress(data))
    for source in (data, bytearray(data), gzip.compress(data), tmp_path / "x-idx", str(tmp_path / "x-idx.gz")):
        result = read_idx(source)
        assert result.dtype == np.uint8 and result.shape == shape and result.flags.c_contiguous
        np.testing.assert_array_equal(result, array)


def test_read_idx_real_file(mnist_root, test_split):
    np.testing.assert_array_equal(read_idx(mnist_root / f"{TEST_LABELS}.gz"), test_split[1])


def test_read_idx_missing_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no such file"):
        read_idx(tmp_path / "absent-idx1-ubyte")
    with dataset_error("cannot open"):  # DatasetError itself: not a problem of the content
        read_idx(tmp_path)  # a folder


# --- corrupt inputs --------------------------------------------------------

GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))

CORRUPT_IDX = {
    "empty": (b"", "too short for an IDX header", TruncatedDatasetError),
    "bad magic": (b"\x12\x34" + GOOD[2:], "bad magic number 0x1234", NotIdxError),
    "unsupported type": (b"\x00\x00\x0d" + GOOD[3:], "data type code 0x0D is not supported", NotIdxError),
    "zero dimensions": (b"\x00\x00\x08\x00", "declares 0 dimensions", NotIdxError),
    "too many dimensions": (b"\x00\x00\x08\x40" + b"\x00\x00\x00\x01" * 64, "declares 64 dimensions", NotIdxError),
    "truncated header": (GOOD[:9], "truncated IDX header", TruncatedDatasetError),
    "truncated payload": (GOOD[:-1], "declares 24 data bytes, the file holds 23", TruncatedDatasetError),
    "trailing bytes": (GOOD + b"\x00", "trailing bytes", CorruptDatasetError),
    "absurd size": (b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"\x00" * 10, "absurd shape",
                    DatasetTooLargeError),
    "absurd size with a zero": (b"\x00\x00\x08\x03" + b"\x00" * 4 + b"\xff\xff\xff\xff" * 2, "absurd shape",
                                DatasetTooLargeError),
    "truncated gzip": (gzip.compress(GOOD)[:-12], "truncated gzip data", TruncatedDatasetError),
    "gzip crc": (gzip.compress(GOOD)[:-8] + b"\x00" * 8, "corrupt gzip data", CorruptDatasetError),
    "gzip garbage": (b"\x1f\x8b" + b"\xff" * 30, "corrupt gzip data", CorruptDatasetError),
}


@pytest.mark.parametrize("case", CORRUPT_IDX)
def test_read_idx_rejects_corrupt_data(case, tmp_path):
    data, message, kind = CORRUPT_IDX[case]
    with dataset_error(message, kind=kind):
        read_idx(data)
    path = tmp_path / "corrupt-idx"
    path.write_bytes(data)
    with dataset_error(f"{path}: ", message, kind=kind):
        read_idx(path)


def put_raw(folder: Path, name: str, data: bytes) -> Path:
    """Damage a split in folder: a raw file is preferred over the .gz copy."""
    path = folder / name
    path.write_bytes(data)
    return path


def test_load_rejects_wrong_ndim(test_folder):
    path = put_raw(test_folder, TEST_IMAGES, idx_bytes(np.zeros(10_000 * 28 * 28, np.uint8)))
    with dataset_error(f"{path}: magic number 0x00000801", "expected 0x00000803", kind=DatasetContentError):
        load_mnist("test", root=test_folder, download=False)


@pytest.mark.parametrize("shape", [(10_000, 27, 28), (10_000, 28, 29), (9_999, 28, 28), (60_000, 28, 28)])
def test_load_rejects_wrong_image_dims(shape, test_folder):
    path = put_raw(test_folder, TEST_IMAGES, idx_bytes(np.zeros(shape, np.uint8)))
    with dataset_error(f"{path}: IDX header declares shape {shape}; expected (10000, 28, 28)", kind=DatasetContentError):
        load_mnist("test", root=test_folder, download=False)


def test_load_rejects_label_count_disagreeing_with_images(test_folder, mnist_root):
    labels = real_raw(mnist_root, TEST_LABELS)
    short = idx_bytes(np.frombuffer(labels[8:-1], np.uint8))
    path = put_raw(test_folder, TEST_LABELS, short)
    with dataset_error(f"{path}: IDX header declares shape (9999,); expected (10000,)", kind=DatasetContentError):
        load_mnist("test", root=test_folder, download=False)


def test_load_rejects_truncated_payload(test_folder, mnist_root):
    path = put_raw(test_folder, TEST_LABELS, real_raw(mnist_root, TEST_LABELS)[:-3])
    with dataset_error(f"{path}: truncated: the IDX header declares 10000 data bytes, the file holds 9997",
                       kind=TruncatedDatasetError):
        load_mnist("test", root=test_folder, download=False)


def test_load_rejects_trailing_bytes(test_folder, mnist_root):
    path = put_raw(test_folder, TEST_LABELS, real_raw(mnist_root, TEST_LABELS) + b"\x01")
    with dataset_error(f"{path}: trailing bytes", kind=CorruptDatasetError):
        load_mnist("test", root=test_folder, download=False)


def test_load_rejects_truncated_gzip(test_folder):
    path = test_folder / f"{TEST_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:500_000])
    with dataset_error(f"{path}: cannot read: truncated gzip data", kind=TruncatedDatasetError):
        load_mnist("test", root=test_folder, download=False)


def test_load_rejects_bad_magic(test_folder, mnist_root):
    data = bytearray(real_raw(mnist_root, TEST_IMAGES))
    data[0] = 0x42
    path = put_raw(test_folder, TEST_IMAGES, bytes(data))
    with dataset_error(f"{path}: bad magic number 0x42000803", kind=NotIdxError):
        load_mnist("test", root=test_folder, download=False)


def test_load_rejects_labels_out_of_range(test_folder, mnist_root):
    data = bytearray(real_raw(mnist_root, TEST_LABELS))
    data[8 + 123] = 10
    path = put_raw(test_folder, TEST_LABELS, bytes(data))
    with dataset_error(f"{path}: label 10 at index 123 is outside 0..9", kind=DatasetContentError):
        load_mnist("test", root=test_folder, download=False)


@pytest.mark.parametrize("gzipped", [False, True])
def test_load_rejects_checksum_mismatch(gzipped, test_folder, mnist_root):
    data = bytearray(real_raw(mnist_root, TEST_LABELS))
    assert data[8] == 7
    data[8] = 3  # still a valid label: only the checksum can tell
    if gzipped:
        path = test_folder / f"{TEST_LABELS}.gz"
        path.write_bytes(gzip.compress(bytes(data)))
    else:
        path = put_raw(test_folder, TEST_LABELS, bytes(data))
    with dataset_error(f"{path}: checksum mismatch", "27ae3e4e09519cfbb04c329615203637", kind=DatasetChecksumError):
        load_mnist("test", root=test_folder, download=False)


def test_errors_are_value_errors_and_engine_errors(tmp_path):
    with pytest.raises(ValueError):
        read_idx(b"\x01")
    with pytest.raises(LenetEngineError):
        read_idx(b"\x01")


# --- missing files ---------------------------------------------------------


def test_missing_files_without_download(tmp_path, no_network):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_mnist("train", root=tmp_path, download=False)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert str(tmp_path) in message and "LENET_ENGINE_DATA" in message and "mnist/" in message
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert "download=False" in message
    assert list(tmp_path.iterdir()) == []


def test_one_missing_file_is_named(test_folder, no_network):
    (test_folder / f"{TEST_LABELS}.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"MNIST file {TEST_LABELS} not found"):
        load_mnist("test", root=test_folder, download=False)


# --- downloads through a fake opener ---------------------------------------

MIRROR_A = "https://mirror-a.invalid/mnist/"
MIRROR_B = "https://mirror-b.invalid/mnist/"


class FailingResponse(io.BytesIO):
    """Serves some bytes, then fails as a dropped connection (or an interrupt) would."""

    def __init__(self, data: bytes, error: BaseException):
        super().__init__(data[: len(data) // 2])
        self.error = error

    def read(self, size=-1):
        chunk = super().read(size)
        if not chunk:
            raise self.error
        return chunk


class WatchedResponse(io.BytesIO):
    """Serves bytes, checking that nothing carries the final name while the download runs."""

    def __init__(self, data: bytes, final: Path | None):
        super().__init__(data)
        self.final = final

    def read(self, size=-1):
        assert self.final is None or not self.final.exists(), "partial download under the final name"
        return super().read(size)


class FakeMirrors:
    """Stands in for the network: maps each mirror to what it serves, records requests."""

    def __init__(self, mnist_root: Path):
        self.mnist_root = mnist_root
        self.behaviour: dict[str, object] = {MIRROR_A: "serve", MIRROR_B: "serve"}
        self.requests: list[tuple[str, float]] = []
        self.folder: Path | None = None  # where downloads land, when a test watches it

    def __call__(self, url: str, timeout: float):
        self.requests.append((url, timeout))
        mirror, file_name = url.rsplit("/", 1)
        good = (self.mnist_root / file_name).read_bytes()
        action = self.behaviour[mirror + "/"]
        if action == "serve":
            return WatchedResponse(good, self.folder / file_name if self.folder else None)
        if isinstance(action, BaseException):
            if isinstance(action, (ConnectionResetError, KeyboardInterrupt)):
                return FailingResponse(good, action)
            raise action
        return io.BytesIO(action(good))  # a function damaging the served bytes


@pytest.fixture
def mirrors(monkeypatch, mnist_root) -> FakeMirrors:
    fake = FakeMirrors(mnist_root)
    monkeypatch.setattr(datasets, "MIRRORS", (MIRROR_A, MIRROR_B))
    monkeypatch.setattr(datasets, "_urlopen", fake)
    return fake


def flip_label(gz: bytes) -> bytes:
    data = bytearray(gzip.decompress(gz))
    data[-1] = (data[-1] + 1) % 10
    return gzip.compress(bytes(data))


def test_download_success(tmp_path, mirrors, test_split, mnist_root):
    folder = tmp_path / "fresh" / "mnist"  # created on demand
    mirrors.folder = folder
    images, labels = load_mnist("test", root=folder)
    np.testing.assert_array_equal(images, test_split[0])
    np.testing.assert_array_equal(labels, test_split[1])
    assert sorted(p.name for p in folder.iterdir()) == [f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"]
    for name in (TEST_IMAGES, TEST_LABELS):
        assert (folder / f"{name}.gz").read_bytes() == (mnist_root / f"{name}.gz").read_bytes()
    assert [url for url, _ in mirrors.requests] == [MIRROR_A + f"{TEST_IMAGES}.gz", MIRROR_A + f"{TEST_LABELS}.gz"]
    assert all(0 < timeout <= 60 for _, timeout in mirrors.requests)

    mirrors.behaviour = {MIRROR_A: OSError("must not be asked again"), MIRROR_B: OSError("nor this")}
    load_mnist("test", root=folder)
    assert len(mirrors.requests) == 2


def test_download_only_what_is_missing(test_folder, mirrors):
    (test_folder / f"{TEST_LABELS}.gz").unlink()
    load_mnist("test", root=test_folder)
    assert [url for url, _ in mirrors.requests] == [MIRROR_A + f"{TEST_LABELS}.gz"]


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("name resolution failed"),
        urllib.error.HTTPError(MIRROR_A, 503, "Service Unavailable", None, None),
        TimeoutError("timed out"),
        ConnectionResetError("connection reset mid-download"),
        flip_label,
        lambda gz: gz[: len(gz) // 2],
    ],
    ids=["url-error", "http-503", "timeout", "reset-mid-stream", "bad-md5", "truncated"],
)
def test_download_falls_back_to_second_mirror(failure, test_folder, mirrors, test_split):
    (test_folder / f"{TEST_LABELS}.gz").unlink()
    mirrors.behaviour[MIRROR_A] = failure
    _, labels = load_mnist("test", root=test_folder)
    np.testing.assert_array_equal(labels, test_split[1])
    assert [url for url, _ in mirrors.requests] == [MIRROR_A + f"{TEST_LABELS}.gz", MIRROR_B + f"{TEST_LABELS}.gz"]
    assert sorted(p.name for p in test_folder.iterdir()) == [f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"]


def test_corrupt_download_leaves_nothing_behind(test_folder, mirrors):
    (test_folder / f"{TEST_LABELS}.gz").unlink()
    mirrors.behaviour = {MIRROR_A: flip_label, MIRROR_B: flip_label}
    with pytest.raises(DatasetNotFoundError) as caught:
        load_mnist("test", root=test_folder)
    message = str(caught.value)
    assert "checksum mismatch" in message and MIRROR_A in message and MIRROR_B in message
    assert sorted(p.name for p in test_folder.iterdir()) == [f"{TEST_IMAGES}.gz"]


def test_interrupted_download_leaves_nothing_behind(test_folder, mirrors):
    (test_folder / f"{TEST_LABELS}.gz").unlink()
    mirrors.behaviour[MIRROR_A] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        load_mnist("test", root=test_folder)
    assert sorted(p.name for p in test_folder.iterdir()) == [f"{TEST_IMAGES}.gz"]


def test_all_mirrors_failing(tmp_path, mirrors):
    mirrors.behaviour = {MIRROR_A: urllib.error.URLError("offline"), MIRROR_B: TimeoutError("timed out")}
    with pytest.raises(DatasetNotFoundError) as caught:
        load_mnist("test", root=tmp_path)
    message = str(caught.value)
    assert TEST_IMAGES in message and str(tmp_path) in message and "LENET_ENGINE_DATA" in message
    assert "offline" in message and "timed out" in message
    assert list(tmp_path.iterdir()) == []


# --- where the files are looked for ----------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LENET_ENGINE_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_mnist_dir_root_wins(clean_env, tmp_path):
    clean_env.setenv("LENET_ENGINE_DATA", str(tmp_path / "data"))
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_dir(tmp_path / "mine") == tmp_path / "mine"
    assert mnist_dir(str(tmp_path / "mine")) == tmp_path / "mine"
    assert mnist_dir("~/digits") == tmp_path / "home" / "digits"


def test_mnist_dir_env_var_next(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    clean_env.setenv("LENET_ENGINE_DATA", str(tmp_path / "data"))
    assert mnist_dir() == tmp_path / "data" / "mnist"
    clean_env.setenv("LENET_ENGINE_DATA", "")  # empty counts as unset
    assert mnist_dir() == tmp_path / "xdg" / "lenet_engine" / "mnist"


def test_mnist_dir_cache_last(clean_env, tmp_path):
    assert mnist_dir() == tmp_path / "home" / ".cache" / "lenet_engine" / "mnist"
    clean_env.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as the XDG spec says
    assert mnist_dir() == tmp_path / "home" / ".cache" / "lenet_engine" / "mnist"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_dir() == tmp_path / "xdg" / "lenet_engine" / "mnist"


def test_mnist_dir_windows(clean_env, tmp_path):
    clean_env.setattr(sys, "platform", "win32")
    clean_env.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert mnist_dir() == tmp_path / "local" / "lenet_engine" / "mnist"


# --- fuzzing read_idx ------------------------------------------------------


@st.composite
def idx_like(draw) -> bytes:
    """Valid small IDX files, then possibly damaged, possibly gzipped."""
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    payload = draw(st.binary(min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    data = bytearray(bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape) + payload)
    gzip_first = draw(st.booleans())
    if gzip_first:
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "append"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=8))
    if not gzip_first and draw(st.booleans()):
        data = bytearray(gzip.compress(bytes(data), mtime=0))
    return bytes(data)


# What read_idx may raise on bad content: one class per kind of problem.
IDX_ERRORS = (NotIdxError, TruncatedDatasetError, CorruptDatasetError, DatasetTooLargeError)


def check_read_idx(data: bytes) -> None:
    try:
        array = read_idx(data)
    except DatasetError as exc:
        assert type(exc) in IDX_ERRORS and str(exc), exc
        return
    content = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    header = 4 + 4 * content[3]
    shape = tuple(int.from_bytes(content[i : i + 4], "big") for i in range(4, header, 4))
    assert array.dtype == np.uint8 and array.shape == shape and array.flags.c_contiguous
    assert array.tobytes() == content[header:]


@fuzz_settings(0.5)
@given(st.binary(max_size=64) | st.binary(max_size=8).map(lambda b: b"\x00\x00\x08" + b))
def test_fuzz_read_idx_random_bytes(data):
    check_read_idx(data)


@fuzz_settings(1.0)
@given(idx_like())
def test_fuzz_read_idx_mutated_files(data):
    check_read_idx(data)


SEED_IDX = idx_bytes(np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4))


@fuzz_settings(1.0)
@given(gzipped=st.booleans(), ops=st.lists(mutation_ops(b"\x00\x01\x02\x03\x08\x1f\x8b"), min_size=1, max_size=4))
def test_fuzz_read_idx_byte_mutations(gzipped, ops):
    # Mutations of the raw bytes or of the gzip stream (headers, CRC, sizes), as a damaged download has.
    check_read_idx(mutate(gzip.compress(SEED_IDX, mtime=0) if gzipped else SEED_IDX, ops))


@pytest.fixture(scope="module")
def real_labels(mnist_root) -> bytes:
    return real_raw(mnist_root, TEST_LABELS)


@fuzz_settings(0.3)
@given(ops=st.lists(mutation_ops(b"\x00\x09\x0a\xff"), min_size=1, max_size=3))
def test_fuzz_mnist_labels_file(real_labels, tmp_path_factory, ops):
    # Through load_mnist's checks: whatever changes the real labels file must be refused, by a documented class.
    data = mutate(real_labels, ops)
    path = tmp_path_factory.getbasetemp() / TEST_LABELS
    path.write_bytes(data)
    try:
        labels = datasets._load_checked(path, TEST_LABELS)
    except DatasetError as exc:
        assert type(exc) in IDX_ERRORS + (DatasetContentError, DatasetChecksumError), exc
        assert data != real_labels
        return
    assert data == real_labels and labels.shape == (10_000,)
