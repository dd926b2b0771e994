"""Tests for lenet_engine.io.safetensors_file: round trips, file layout, every
corruption the loader must refuse, atomic saves, and fuzzing of the loader."""

import io
import json
import os
import pickle
import stat
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzzing import fuzz_settings, mutate, mutation_ops
from lenet_engine.errors import (
    CorruptWeightsError,
    LenetEngineError,
    NotSafetensorsError,
    TruncatedWeightsError,
    WeightsFileError,
    WeightsNotFoundError,
    WeightsTooLargeError,
)
from lenet_engine.io.safetensors_file import load_file, save_file

SUPPORTED = {
    "F32": np.float32,
    "F64": np.float64,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I8": np.int8,
    "U8": np.uint8,
}
SHAPES = [(), (0,), (3, 0, 2), (5,), (2, 3, 4)]


def _random_array(dtype, shape, rng):
    """Arbitrary bit patterns, so NaN payloads, infs and -0.0 all show up."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    raw = rng.integers(0, 256, size=nbytes, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def _assert_bit_equal(got, want):
    assert got.dtype == np.dtype(want.dtype).newbyteorder("=")
    assert got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want, dtype=got.dtype).tobytes()


def _raw_file(path, header, data=b"", pad=True):
    """Write a file by hand: `header` is a JSON-able object or raw bytes."""
    if not isinstance(header, bytes):
        header = json.dumps(header).encode()
    if pad:
        header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


def _f32_entry(begin, n=2):
    return {"dtype": "F32", "shape": [n], "data_offsets": [begin, begin + 4 * n]}


def _load_error(path, kind=CorruptWeightsError, **kwargs):
    """The message of the error loading `path` raises, which must be exactly of class `kind`."""
    with pytest.raises(WeightsFileError) as info:
        load_file(path, **kwargs)
    assert type(info.value) is kind, info.value
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.fixture
def sample(tmp_path):
    """A small valid file with two tensors and metadata."""
    path = tmp_path / "sample.safetensors"
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([7, -8], dtype=np.int64)}
    save_file(tensors, path, metadata={"arch": "lenet5"})
    return path


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("code", sorted(SUPPORTED))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_is_bit_exact(tmp_path, code, shape):
    rng = np.random.default_rng(0)
    original = _random_array(SUPPORTED[code], shape, rng)
    path = tmp_path / "t.safetensors"
    save_file({"x": original}, path)
    tensors, metadata = load_file(path)
    assert list(tensors) == ["x"] and metadata == {}
    _assert_bit_equal(tensors["x"], original)
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["x"]["dtype"] == code and header["x"]["shape"] == list(shape)


def test_round_trip_all_dtypes_in_one_file_with_metadata(tmp_path):
    rng = np.random.default_rng(1)
    originals = {f"{code}_{i}": _random_array(t, s, rng) for code, t in SUPPORTED.items() for i, s in enumerate(SHAPES)}
    metadata = {"arch": "lenet5", "note": "ünïcode ✓", "": "empty key is fine", "empty": ""}
    path = tmp_path / "all.safetensors"
    save_file(originals, path, metadata=metadata)
    tensors, got_metadata = load_file(path)
    assert got_metadata == metadata
    assert set(tensors) == set(originals)
    for name, original in originals.items():
        _assert_bit_equal(tensors[name], original)


def test_loaded_arrays_are_fresh_writable_native_c_arrays(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"a": np.ones((3, 4), np.float32), "b": np.ones((4,), np.float32), "s": np.array(2.0)}, path)
    tensors, _ = load_file(path)
    for arr in tensors.values():
        assert arr.flags.writeable and arr.flags.c_contiguous and arr.flags.owndata
        assert arr.dtype.isnative
    tensors["a"][...] = 5
    assert np.all(tensors["b"] == 1)
    assert not np.shares_memory(tensors["a"], tensors["b"])


def test_non_contiguous_and_big_endian_inputs_are_stored_as_c_order_little_endian(tmp_path):
    base = np.arange(24, dtype=">f8").reshape(4, 6)
    inputs = {"t": base.T, "s": base[::2, 1::3], "be_i32": np.arange(5, dtype=">i4")}
    path = tmp_path / "t.safetensors"
    save_file(inputs, path)
    tensors, _ = load_file(path)
    for name, arr in inputs.items():
        np.testing.assert_array_equal(tensors[name], arr)
        assert tensors[name].dtype.isnative
    data = path.read_bytes()
    assert np.arange(5, dtype="<i4").tobytes() in data


def test_nan_and_inf_are_loaded_not_rejected(tmp_path):
    values = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32)
    path = tmp_path / "t.safetensors"
    save_file({"v": values}, path)
    _assert_bit_equal(load_file(path)[0]["v"], values)


def test_empty_file_of_tensors_and_metadata_round_trips(tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file({}, path)
    assert load_file(path) == ({}, {})
    save_file({}, path, metadata={"only": "metadata"})
    assert load_file(path) == ({}, {"only": "metadata"})


def test_str_and_pathlike_paths_both_work(tmp_path):
    arr = np.arange(3, dtype=np.uint8)
    save_file({"a": arr}, str(tmp_path / "s.safetensors"))
    save_file({"a": arr}, tmp_path / "p.safetensors")
    assert (tmp_path / "s.safetensors").read_bytes() == (tmp_path / "p.safetensors").read_bytes()
    np.testing.assert_array_equal(load_file(str(tmp_path / "p.safetensors"))[0]["a"], arr)


def test_save_is_deterministic_whatever_the_dict_order(tmp_path):
    rng = np.random.default_rng(2)
    tensors = {name: rng.standard_normal((3, 2)).astype(np.float32) for name in ["zeta", "alpha", "mid", "Beta"]}
    reordered = dict(reversed(list(tensors.items())))
    save_file(tensors, tmp_path / "a.safetensors", metadata={"x": "1", "a": "2"})
    save_file(tensors, tmp_path / "b.safetensors", metadata={"x": "1", "a": "2"})
    save_file(reordered, tmp_path / "c.safetensors", metadata={"a": "2", "x": "1"})
    first = (tmp_path / "a.safetensors").read_bytes()
    assert first == (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "c.safetensors").read_bytes()


def test_header_layout_of_a_tiny_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_file({"b": np.array([1, 2], dtype=np.int32), "a": np.array(3, dtype=np.uint8)}, path)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + header_len]
    assert header_len % 8 == 0 and (8 + header_len) % 8 == 0
    assert header.startswith(b"{")
    expected = (
        b'{"a":{"data_offsets":[0,1],"dtype":"U8","shape":[]},'
        b'"b":{"data_offsets":[1,9],"dtype":"I32","shape":[2]}}'
    )
    assert header.rstrip(b" ") == expected
    assert set(header[len(expected) :]) <= {ord(" ")}
    assert raw[8 + header_len :] == b"\x03" + b"\x01\x00\x00\x00\x02\x00\x00\x00"


def test_saved_file_gets_umask_permissions_not_private_temp_ones(tmp_path):
    path = tmp_path / "perm.safetensors"
    save_file({"a": np.zeros(2, np.float32)}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrays=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda s: s != "__metadata__"),
        hnp.arrays(
            st.sampled_from(list(SUPPORTED.values())),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        max_size=4,
    ),
    metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_round_trip_property(tmp_path, arrays, metadata):
    path = tmp_path / "prop.safetensors"
    save_file(arrays, path, metadata=metadata)
    tensors, got_metadata = load_file(path)
    assert got_metadata == metadata and set(tensors) == set(arrays)
    for name, arr in arrays.items():
        _assert_bit_equal(tensors[name], arr)


# ---------------------------------------------------------- save validation


@pytest.mark.parametrize(
    "tensors, error, fragment",
    [
        ({1: np.zeros(2)}, TypeError, "1"),
        ({"": np.zeros(2)}, ValueError, "empty"),
        ({"__metadata__": np.zeros(2)}, ValueError, "__metadata__"),
        ({"w": [1.0, 2.0]}, TypeError, "'w'"),
        ({"w": np.float32(1.0)}, TypeError, "'w'"),
        ({"w": np.zeros(2, dtype=bool)}, TypeError, "'w'"),
        ({"w": np.zeros(2, dtype=np.uint16)}, TypeError, "uint16"),
        ({"w": np.zeros(2, dtype=np.complex64)}, TypeError, "'w'"),
        ({"w": np.array([None, 1], dtype=object)}, TypeError, "'w'"),
        ({"w": np.zeros(2, dtype=[("a", "<f4")])}, TypeError, "'w'"),
        ([("w", np.zeros(2))], TypeError, "dict"),
    ],
)
def test_save_rejects_bad_tensors(tmp_path, tensors, error, fragment):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(error, match=fragment):
        save_file(tensors, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("metadata", [{"k": 1}, {1: "v"}, {"k": None}, {"k": {"nested": "x"}}, [("k", "v")]])
def test_save_rejects_bad_metadata(tmp_path, metadata):
    with pytest.raises(TypeError, match="metadata"):
        save_file({"w": np.zeros(2)}, tmp_path / "bad.safetensors", metadata=metadata)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ atomic saving


def _boom(*args, **kwargs):
    raise OSError("simulated failure")


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failed_save_leaves_existing_file_and_no_temp_file(tmp_path, monkeypatch, target):
    path = tmp_path / "model.safetensors"
    save_file({"w": np.ones(4, np.float32)}, path, metadata={"v": "1"})
    before = path.read_bytes()
    monkeypatch.setattr(os, target, _boom)
    with pytest.raises(OSError, match="simulated failure"):
        save_file({"w": np.zeros(100, np.float64)}, path, metadata={"v": "2"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert load_file(path)[1] == {"v": "1"}


def test_failed_write_midway_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    real_open = open
    calls = []

    class FailingWriter(io.FileIO):
        def write(self, data):
            calls.append(len(data))
            if len(calls) == 3:
                raise OSError("disk full")
            return super().write(data)

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, int) and "w" in mode:
            return FailingWriter(file, "wb")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(OSError, match="disk full"):
        save_file({"a": np.ones(3), "b": np.ones(3)}, path)
    monkeypatch.undo()
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder") as missing:
        save_file({"w": np.zeros(2)}, tmp_path / "nope" / "w.safetensors")
    assert missing.value.filename == str(tmp_path / "nope")  # the folder, not a temporary file's name
    assert list(tmp_path.iterdir()) == []


def test_save_over_a_directory_fails_cleanly(tmp_path):
    target = tmp_path / "dir.safetensors"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_file({"w": np.zeros(2)}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["dir.safetensors"]


# ------------------------------------------------------ corruption: file level


def test_missing_file_raises_not_found_naming_the_path(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(WeightsNotFoundError, match="absent.safetensors"):
        load_file(path)
    with pytest.raises(FileNotFoundError):  # callers may catch the built-in
        load_file(tmp_path / "not_a_dir.txt" / "x.safetensors")


def test_error_classes_are_engine_errors(tmp_path):
    with pytest.raises(LenetEngineError):
        load_file(tmp_path / "absent.safetensors")
    (tmp_path / "e.safetensors").write_bytes(b"")
    with pytest.raises(ValueError):
        load_file(tmp_path / "e.safetensors")


def test_directory_is_refused(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="is a folder, not a weights file"):  # as le.load says
        load_file(tmp_path)


@pytest.mark.parametrize("size", [0, 1, 7])
def test_file_shorter_than_the_length_prefix(tmp_path, size):
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x10" * size)
    assert "shorter than the 8-byte header length" in _load_error(path, TruncatedWeightsError)


def test_truncation_at_every_region_is_refused(sample, tmp_path):
    raw = sample.read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    cuts = {
        0: "shorter",
        5: "shorter",
        8: "truncated",
        20: "truncated",
        header_end - 1: "truncated",
        header_end: "truncated",
        header_end + 3: "truncated",
        len(raw) - 1: "truncated",
    }
    for cut, fragment in cuts.items():
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(raw[:cut])
        assert fragment in _load_error(path, TruncatedWeightsError), cut
    (tmp_path / "full.safetensors").write_bytes(raw)
    load_file(tmp_path / "full.safetensors")


def test_truncated_data_names_the_byte_counts(sample, tmp_path):
    raw = sample.read_bytes()
    path = tmp_path / "t.safetensors"
    path.write_bytes(raw[:-5])
    message = _load_error(path, TruncatedWeightsError)
    assert "data buffer is truncated" in message and "need 40 bytes" in message and "holds 35" in message


def test_trailing_garbage_is_refused(sample, tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(sample.read_bytes() + b"junk")
    assert "4 trailing bytes" in _load_error(path)


@pytest.mark.parametrize("header_len", [2**64 - 1, 2**63, 2**40, 100 * 2**20 + 1])
def test_absurd_header_length_is_refused_before_allocating(tmp_path, header_len):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(header_len.to_bytes(8, "little") + b"{}")
    assert f"declare a {header_len}-byte header, over the" in _load_error(path, WeightsTooLargeError)


def test_header_over_the_cap_in_a_big_sparse_file_is_not_read(tmp_path):
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as f:
        f.write((150 * 2**20).to_bytes(8, "little") + b"{")
        f.truncate(200 * 2**20)
    tracemalloc.start()
    try:
        message = _load_error(path, WeightsTooLargeError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "over the" in message and "cap" in message
    assert peak < 2**20


def test_header_longer_than_the_file(sample, tmp_path):
    raw = bytearray(sample.read_bytes())
    raw[:8] = (len(raw)).to_bytes(8, "little")
    path = tmp_path / "t.safetensors"
    path.write_bytes(bytes(raw))
    assert "truncated: the first 8 bytes declare" in _load_error(path, TruncatedWeightsError)


def test_max_bytes_is_enforced_before_reading_data(sample, tmp_path):
    size = sample.stat().st_size
    assert "larger than max_bytes" in _load_error(sample, WeightsTooLargeError, max_bytes=size - 1)
    load_file(sample, max_bytes=size)
    # A lying header declaring 1 GiB of data must not allocate 1 GiB.
    path = tmp_path / "big.safetensors"
    header = {"w": {"dtype": "U8", "shape": [2**30], "data_offsets": [0, 2**30]}}
    _raw_file(path, header)
    with open(path, "r+b") as f:
        f.truncate(f.seek(0, 2) + 2**30)
    tracemalloc.start()
    try:
        message = _load_error(path, WeightsTooLargeError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "larger than max_bytes" in message
    assert peak < 2**20


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_file_in_disguise_is_refused(tmp_path, protocol):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0, 3.0], "b": list(range(50))}, protocol=protocol))
    assert "not a safetensors file" in _load_error(path, NotSafetensorsError)


def test_zip_file_in_disguise_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
        zf.writestr("archive/data/0", b"\x00" * 64)
    assert "not a safetensors file" in _load_error(path, NotSafetensorsError)


def test_npy_file_in_disguise_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as f:
        np.save(f, np.zeros(1000, np.float32))
    assert "not a safetensors file" in _load_error(path, NotSafetensorsError)


# ----------------------------------------------------- corruption: the header


@pytest.mark.parametrize("header", [b"", b"[1, 2]  ", b" {}     ", b"\xef\xbb\xbf{}   ", b"null    "])
def test_header_must_start_with_a_brace(tmp_path, header):
    path = _raw_file(tmp_path / "h.safetensors", header)
    assert "not a safetensors file: the header does not start with '{'" in _load_error(path, NotSafetensorsError)


def test_header_that_is_not_utf8(tmp_path):
    path = _raw_file(tmp_path / "h.safetensors", b'{"\xff\xfe": 1}')
    assert "not valid UTF-8" in _load_error(path)


@pytest.mark.parametrize("header", [b"{", b'{"w": }', b"{} extra", b'{"w": [1, 2,]}', b"{'w': 1}"])
def test_header_that_is_not_json(tmp_path, header):
    path = _raw_file(tmp_path / "h.safetensors", header)
    assert "not valid JSON" in _load_error(path)


def test_deeply_nested_header(tmp_path):
    path = _raw_file(tmp_path / "h.safetensors", b'{"w":' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    assert "header" in _load_error(path)


def test_flipped_bytes_in_the_header(sample, tmp_path):
    raw = sample.read_bytes()
    cases = [(8, b"x", NotSafetensorsError), (9, b"!", CorruptWeightsError), (20, b"\xff", CorruptWeightsError),
             (30, b"{", CorruptWeightsError)]
    for index, new, kind in cases:
        mutated = raw[:index] + new + raw[index + 1 :]
        path = tmp_path / f"flip{index}.safetensors"
        path.write_bytes(mutated)
        _load_error(path, kind)


@pytest.mark.parametrize(
    "header, fragment",
    [
        (b'{"w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}, "w": {}}', "duplicate key 'w'"),
        (b'{"w": {"dtype": "U8", "dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}', "duplicate key 'dtype'"),
        (b'{"__metadata__": {"a": "1", "a": "2"}}', "duplicate key 'a'"),
        (b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}', "NaN"),
        (b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}', "Infinity"),
    ],
)
def test_duplicate_keys_and_json_constants(tmp_path, header, fragment):
    path = _raw_file(tmp_path / "h.safetensors", header)
    message = _load_error(path)
    assert "header is invalid" in message and fragment in message


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ([1, 2], "exactly the keys"),
        ("F32", "exactly the keys"),
        ({"dtype": "F32", "shape": [0]}, "exactly the keys"),
        ({"dtype": "F32", "shape": [0], "data_offsets": [0, 0], "extra": 1}, "exactly the keys"),
        ({"dtype": "BF16", "shape": [0], "data_offsets": [0, 0]}, "unsupported dtype 'BF16'"),
        ({"dtype": "BOOL", "shape": [0], "data_offsets": [0, 0]}, "unsupported dtype 'BOOL'"),
        ({"dtype": "f32", "shape": [0], "data_offsets": [0, 0]}, "unsupported dtype 'f32'"),
        ({"dtype": 5, "shape": [0], "data_offsets": [0, 0]}, "unsupported dtype 5"),
        ({"dtype": ["F32"], "shape": [0], "data_offsets": [0, 0]}, "unsupported dtype"),
        ({"dtype": None, "shape": [0], "data_offsets": [0, 0]}, "unsupported dtype None"),
        ({"dtype": "U8", "shape": "3", "data_offsets": [0, 3]}, "shape must be a list"),
        ({"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}, "shape must be a list of non-negative ints"),
        ({"dtype": "U8", "shape": [2.0], "data_offsets": [0, 2]}, "shape must be a list"),
        ({"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}, "shape must be a list"),
        ({"dtype": "U8", "shape": [[2]], "data_offsets": [0, 2]}, "shape must be a list"),
        ({"dtype": "U8", "shape": None, "data_offsets": [0, 0]}, "shape must be a list"),
        ({"dtype": "U8", "shape": [1] * 65, "data_offsets": [0, 1]}, "65 dimensions"),
        ({"dtype": "U8", "shape": [0, 2**70], "data_offsets": [0, 0]}, "too large"),
        ({"dtype": "F64", "shape": [0, 2**30, 2**30], "data_offsets": [0, 0]}, "too large"),
        ({"dtype": "U8", "shape": [2], "data_offsets": "0-2"}, "data_offsets must be two"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0, 1, 2]}, "data_offsets must be two"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0]}, "data_offsets must be two"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0.0, 2.0]}, "data_offsets must be two"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [-2, 0]}, "data_offsets must be two non-negative"),
        ({"dtype": "U8", "shape": [1], "data_offsets": [False, True]}, "data_offsets must be two"),
        ({"dtype": "U8", "shape": [0], "data_offsets": [2, 0]}, "begin 2 is after end 0"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "span 4 bytes but dtype F32 with shape [2] needs 8"),
        ({"dtype": "I64", "shape": [], "data_offsets": [0, 4]}, "needs 8"),
        ({"dtype": "U8", "shape": [2, 0], "data_offsets": [0, 2]}, "needs 0"),
    ],
)
def test_bad_tensor_entries(tmp_path, entry, fragment):
    path = _raw_file(tmp_path / "h.safetensors", {"w": entry}, data=b"\x00" * 8)
    message = _load_error(path, WeightsTooLargeError if fragment == "too large" else CorruptWeightsError)
    assert fragment in message and "tensor 'w'" in message


def test_empty_tensor_name_is_refused(tmp_path):
    path = _raw_file(tmp_path / "h.safetensors", {"": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}})
    assert "empty name" in _load_error(path)


@pytest.mark.parametrize(
    "entries, buffer_len, fragment",
    [
        ({"a": _f32_entry(0), "b": _f32_entry(4)}, 12, "overlaps tensor 'a'"),
        ({"a": _f32_entry(0), "b": _f32_entry(0)}, 8, "overlaps"),
        ({"a": _f32_entry(0, 4), "z": {"dtype": "U8", "shape": [0], "data_offsets": [5, 5]}}, 16, "overlaps"),
        ({"a": _f32_entry(0), "b": _f32_entry(12)}, 20, "gap in the data buffer: bytes 8..12"),
        ({"a": _f32_entry(4)}, 12, "gap in the data buffer: bytes 0..4"),
        ({"a": _f32_entry(0)}, 12, "4 trailing bytes"),
        ({}, 3, "3 trailing bytes"),
        ({"a": _f32_entry(0), "b": _f32_entry(8)}, 12, "data buffer is truncated"),
    ],
)
def test_offsets_must_tile_the_buffer(tmp_path, entries, buffer_len, fragment):
    path = _raw_file(tmp_path / "h.safetensors", entries, data=b"\x01" * buffer_len)
    kind = TruncatedWeightsError if "truncated" in fragment else CorruptWeightsError
    assert fragment in _load_error(path, kind)


def test_data_declared_beyond_max_bytes_is_too_large_not_truncated(tmp_path):
    # A small file whose header declares 2 GiB of tensor data: a lie about size, refused as such.
    path = _raw_file(tmp_path / "h.safetensors", {"w": {"dtype": "U8", "shape": [2**31], "data_offsets": [0, 2**31]}})
    assert "declare 2147483648 bytes of data, larger than max_bytes" in _load_error(path, WeightsTooLargeError)


def test_hand_built_file_with_unsorted_offsets_and_empty_tensors_loads(tmp_path):
    entries = {
        "late": {"dtype": "U8", "shape": [2], "data_offsets": [8, 10]},
        "early": _f32_entry(0),
        "none": {"dtype": "F64", "shape": [0, 3], "data_offsets": [8, 8]},
        "end": {"dtype": "I8", "shape": [0], "data_offsets": [10, 10]},
    }
    data = np.array([1.5, -2.0], "<f4").tobytes() + b"\x07\x09"
    path = _raw_file(tmp_path / "h.safetensors", entries, data=data, pad=False)
    tensors, metadata = load_file(path)
    assert metadata == {}
    np.testing.assert_array_equal(tensors["early"], [1.5, -2.0])
    np.testing.assert_array_equal(tensors["late"], [7, 9])
    assert tensors["none"].shape == (0, 3) and tensors["end"].shape == (0,)


@pytest.mark.parametrize(
    "metadata, fragment",
    [
        ([["a", "b"]], "must be an object"),
        ("arch=lenet5", "must be an object"),
        (None, "must be an object"),
        ({"a": 1}, "value for 'a' must be a str"),
        ({"a": None}, "value for 'a' must be a str"),
        ({"a": {"b": "c"}}, "value for 'a' must be a str"),
        ({"a": ["x"]}, "value for 'a' must be a str"),
    ],
)
def test_bad_metadata_in_file(tmp_path, metadata, fragment):
    path = _raw_file(tmp_path / "h.safetensors", {"__metadata__": metadata})
    assert fragment in _load_error(path)


# -------------------------------------------------------------------- fuzzing


def _fuzz_seed_file():
    tensors = {
        "conv1.weight": np.arange(12, dtype=np.float32).reshape(2, 1, 2, 3),
        "conv1.bias": np.array([0.5, -0.5], dtype=np.float16),
        "step": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 2), dtype=np.uint8),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "seed.safetensors")
        save_file(tensors, path, metadata={"arch": "lenet5"})
        with open(path, "rb") as f:
            return f.read()


SEED = _fuzz_seed_file()

def _set_prefix(data, value):
    # Mostly small deltas, which keep the header length plausible so the JSON parser is reached.
    old = int.from_bytes(data[:8].ljust(8, b"\x00"), "little")
    new = value if value % 3 == 0 else max(0, old + (value % 33) - 16)
    data[:8] = (new % 2**64).to_bytes(8, "little")


_mutation = mutation_ops(b'{}[]",:0123456789 -.\x00\xff"e', extra=[st.tuples(st.just("prefix"), st.integers(0, 2**64 - 1))])


def _mutate(data, ops):
    return mutate(data, ops, custom={"prefix": _set_prefix})


# What load_file may raise on a bad file: one class per kind of problem.
DOCUMENTED = (NotSafetensorsError, TruncatedWeightsError, CorruptWeightsError, WeightsTooLargeError)


def _load_or_refuse(path, data):
    """Load `data` from `path`; any exception but a documented WeightsFileError subclass fails the test."""
    path.write_bytes(data)
    try:
        tensors, metadata = load_file(path)
    except WeightsFileError as exc:
        assert type(exc) in DOCUMENTED, exc
        return None
    for arr in tensors.values():
        assert arr.flags.writeable and arr.flags.c_contiguous and arr.dtype.isnative
    return tensors, metadata


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@fuzz_settings(1.0)
@given(mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_fuzz_mutated_valid_file(fuzz_dir, mutations):
    data = _mutate(SEED, mutations)
    result = _load_or_refuse(fuzz_dir / "mutated.safetensors", data)
    if result is not None:
        # Whatever loads must save and load back to the same content.
        tensors, metadata = result
        save_file(tensors, fuzz_dir / "resaved.safetensors", metadata=metadata)
        again, again_metadata = load_file(fuzz_dir / "resaved.safetensors")
        assert again_metadata == metadata and set(again) == set(tensors)
        for name, arr in tensors.items():
            _assert_bit_equal(again[name], arr)


@fuzz_settings(0.8)
@given(data=st.binary(max_size=256))
def test_fuzz_random_bytes(fuzz_dir, data):
    _load_or_refuse(fuzz_dir / "random.safetensors", data)


@fuzz_settings(0.6)
@given(body=st.binary(max_size=128), tail=st.binary(max_size=32))
def test_fuzz_random_header_with_a_consistent_length(fuzz_dir, body, tail):
    header = b"{" + body
    _load_or_refuse(fuzz_dir / "random_header.safetensors", len(header).to_bytes(8, "little") + header + tail)


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=False), st.text(max_size=4))
_json_value = st.recursive(_json_scalar, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_entry = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from([*SUPPORTED, "BF16", "BOOL", ""]), _json_value),
        "shape": st.one_of(st.lists(st.integers(-1, 5), max_size=3), _json_value),
        "data_offsets": st.one_of(st.lists(st.integers(-1, 40), min_size=2, max_size=2), _json_value),
    }
)


@fuzz_settings(0.6)
@given(
    header=st.dictionaries(
        st.sampled_from(["a", "b", "c", "__metadata__", ""]),
        st.one_of(_entry, _json_value, st.dictionaries(st.text(max_size=3), _json_value, max_size=3)),
        max_size=4,
    ),
    buffer_len=st.integers(0, 48),
)
def test_fuzz_structured_headers(fuzz_dir, header, buffer_len):
    path = fuzz_dir / "structured.safetensors"
    _raw_file(path, header, data=bytes(range(buffer_len)))
    _load_or_refuse(path, path.read_bytes())



def test_a_folder_without_write_permission_is_named(tmp_path, monkeypatch):
    # As a user without write permission meets it (the tests may run as root, who has it).
    from lenet_engine.io import atomic

    def refused(path, *args):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(atomic.os, "open", refused)
    with pytest.raises(PermissionError, match="no permission to write in this folder") as error:
        save_file({"w": np.zeros(2)}, tmp_path / "w.safetensors")
    assert error.value.filename == str(tmp_path)
