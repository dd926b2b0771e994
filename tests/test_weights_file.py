"""Weights files at the le.load level: every kind of bad file refused by its own error class, the checksum,
interrupted saves, and fuzzing of whole model files."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lenet_engine as le
from fuzzing import fuzz_settings
from lenet_engine.errors import (
    CorruptWeightsError,
    ForeignWeightsError,
    NonFiniteWeightsError,
    NotSafetensorsError,
    ShapeMismatchError,
    TruncatedWeightsError,
    WeightsChecksumError,
    WeightsFileError,
    WeightsTooLargeError,
)
from lenet_engine.io import safetensors_file, weights_file


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model's weights file: (its bytes, the model)."""
    model = le.LeNet5("classic", seed=3, backend="numpy")
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    model.save(path)
    return path.read_bytes(), model


def header_end(data):
    return 8 + int.from_bytes(data[:8], "little")


def load_bytes(tmp_path, data, name="w.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return le.load(path, backend="numpy")


def resave(tmp_path, tensors, metadata, *, checksum=True):
    """A well-formed weights file holding `tensors` and `metadata` (with a correct checksum unless told)."""
    metadata = dict(metadata)
    metadata.pop(weights_file.CHECKSUM_KEY, None)
    if checksum:
        metadata[weights_file.CHECKSUM_KEY] = weights_file.checksum(tensors, metadata)
    path = tmp_path / "resaved.safetensors"
    safetensors_file.save_file(tensors, path, metadata)
    return path


def parts(saved, tmp_path):
    data, _ = saved
    path = tmp_path / "orig.safetensors"
    path.write_bytes(data)
    return safetensors_file.load_file(path)


# --- one class per kind of problem --------------------------------------------------------------


def test_a_saved_file_loads_bit_exact_and_carries_a_checksum(saved, tmp_path):
    data, model = saved
    loaded = load_bytes(tmp_path, data)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value)
    _, metadata = parts(saved, tmp_path)
    assert metadata["format"] == weights_file.FORMAT
    assert len(metadata[weights_file.CHECKSUM_KEY]) == 64


@pytest.mark.parametrize("where", ["prefix", "header", "data", "last byte"])
def test_truncated_files(saved, tmp_path, where):
    data, _ = saved
    cut = {"prefix": 5, "header": header_end(data) - 10, "data": header_end(data) + 1000,
           "last byte": len(data) - 1}[where]
    with pytest.raises(TruncatedWeightsError, match="truncated|shorter"):
        load_bytes(tmp_path, data[:cut])


@pytest.mark.parametrize("region", ["data start", "data middle", "data end"])
def test_bit_flips_in_the_tensor_data_fail_the_checksum(saved, tmp_path, region):
    data, _ = saved
    at = {"data start": header_end(data), "data middle": (header_end(data) + len(data)) // 2,
          "data end": len(data) - 1}[region]
    flipped = bytearray(data)
    flipped[at] ^= 0x04   # a low mantissa bit: the value stays finite and plausible
    with pytest.raises(WeightsChecksumError, match="checksum mismatch"):
        load_bytes(tmp_path, bytes(flipped))


def test_a_changed_metadata_record_fails_the_checksum(saved, tmp_path):
    tensors, metadata = parts(saved, tmp_path)
    record = json.loads(metadata["record"])
    record["init_seed"] = 4
    path = tmp_path / "changed.safetensors"
    safetensors_file.save_file(tensors, path, {**metadata, "record": json.dumps(record)})  # the old checksum
    with pytest.raises(WeightsChecksumError, match="checksum mismatch"):
        le.load(path)


def test_a_current_format_file_without_checksum_is_refused(saved, tmp_path):
    tensors, metadata = parts(saved, tmp_path)
    with pytest.raises(WeightsChecksumError, match="carries no checksum"):
        le.load(resave(tmp_path, tensors, metadata, checksum=False))


def test_files_of_the_first_format_load_without_checksum(saved, tmp_path):
    # Files written before the checksum existed still load.
    tensors, metadata = parts(saved, tmp_path)
    old = {k: v for k, v in metadata.items() if k != weights_file.CHECKSUM_KEY}
    old["format"] = weights_file.FORMAT_WITHOUT_CHECKSUM
    safetensors_file.save_file(tensors, tmp_path / "old.safetensors", old)
    assert le.load(tmp_path / "old.safetensors").arch == "classic"
    for name in weights_file.SHIPPED:  # the shipped ones carry theirs
        assert safetensors_file.load_file(weights_file.shipped_path(name))[1]["format"] == weights_file.FORMAT


@pytest.mark.parametrize("header", [b"{not json}", b'{"w": 1}', b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]'])
def test_wrong_header(tmp_path, header):
    header += b" " * (-len(header) % 8)
    with pytest.raises(CorruptWeightsError, match="header"):
        load_bytes(tmp_path, len(header).to_bytes(8, "little") + header)


def test_wrong_tensor_shapes_names_and_dtypes(saved, tmp_path):
    tensors, metadata = parts(saved, tmp_path)
    for broken, message in [
        ({**tensors, "c3.weight": np.zeros((16, 6, 5, 5), np.float32)}, "c3.weight has shape"),
        ({**tensors, "f6.bias": tensors["f6.bias"].astype(np.float64)}, "float64"),
        ({k: v for k, v in tensors.items() if k != "f6.bias"}, "missing"),
        ({**tensors, "extra": np.zeros(3, np.float32)}, "unexpected"),
    ]:
        with pytest.raises(ShapeMismatchError, match=message):
            le.load(resave(tmp_path, broken, metadata))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(saved, tmp_path, value):
    tensors, metadata = parts(saved, tmp_path)
    bad = tensors["c1.weight"].copy()
    bad[2, 0, 1, 1] = value
    with pytest.raises(NonFiniteWeightsError, match="c1.weight holds NaN or infinite"):
        le.load(resave(tmp_path, {**tensors, "c1.weight": bad}, metadata))


def test_pickles_and_archives_with_the_right_extension(saved, tmp_path):
    _, model = saved
    state = {k: v.tolist() for k, v in model.state_dict().items()}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:   # the layout of a torch.save file
        zf.writestr("archive/data.pkl", pickle.dumps(state))
    for data in (pickle.dumps(state, protocol=2), pickle.dumps(state, protocol=5), archive.getvalue()):
        with pytest.raises(NotSafetensorsError, match="not a safetensors file"):
            load_bytes(tmp_path, data, "model.safetensors")


def test_huge_declared_sizes(tmp_path):
    header = json.dumps({"c1.weight": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}).encode()
    header += b" " * (-len(header) % 8)
    with pytest.raises(WeightsTooLargeError, match="larger than max_bytes"):
        load_bytes(tmp_path, len(header).to_bytes(8, "little") + header + b"\0" * 64)
    with pytest.raises(WeightsTooLargeError, match="over the"):
        load_bytes(tmp_path, (2**62).to_bytes(8, "little") + b"{}")


def test_foreign_safetensors_files(saved, tmp_path):
    tensors, metadata = parts(saved, tmp_path)
    safetensors_file.save_file(tensors, tmp_path / "plain.safetensors")
    with pytest.raises(ForeignWeightsError, match="not lenet_engine weights"):
        le.load(tmp_path / "plain.safetensors")
    with pytest.raises(ForeignWeightsError, match="unknown architecture 'lenet1'"):
        le.load(resave(tmp_path, tensors, {**metadata, "arch": "lenet1"}))


def test_every_class_is_caught_by_the_old_bases():
    for kind in (NotSafetensorsError, TruncatedWeightsError, CorruptWeightsError, WeightsChecksumError,
                 WeightsTooLargeError, ForeignWeightsError, ShapeMismatchError, NonFiniteWeightsError):
        assert issubclass(kind, WeightsFileError) and issubclass(kind, ValueError)
        assert issubclass(kind, le.LenetEngineError) and getattr(le, kind.__name__) is kind


# --- interrupted saves ------------------------------------------------------------------------


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError])
def test_a_save_interrupted_midway_keeps_the_old_file(tmp_path, monkeypatch, interruption):
    path = tmp_path / "model.safetensors"
    old_model = le.LeNet5("modern", seed=1)
    old_model.save(path)
    before = path.read_bytes()
    written = []

    class Writer(io.FileIO):
        def write(self, chunk):
            written.append(len(chunk))
            if len(written) == 4:   # prefix, header, a tensor or two: then the interruption
                raise interruption("interrupted")
            return super().write(chunk)

    real_open = open

    def opener(file, mode="r", *args, **kwargs):
        if isinstance(file, int) and "w" in mode:   # the temporary file save_file writes through
            return Writer(file, "wb")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", opener)
    with pytest.raises(interruption, match="interrupted"):
        le.LeNet5("modern", seed=2).save(path)
    monkeypatch.undo()
    assert len(written) == 4
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    reloaded = le.load(path).state_dict()
    assert all(np.array_equal(reloaded[k], v) for k, v in old_model.state_dict().items())


# --- fuzzing ----------------------------------------------------------------------------------


REFUSALS = (NotSafetensorsError, TruncatedWeightsError, CorruptWeightsError, WeightsChecksumError,
            WeightsTooLargeError, ForeignWeightsError)


@fuzz_settings(0.5)
@given(in_header=st.booleans(), position=st.integers(0, 2**31), bit=st.integers(0, 7), more=st.integers(0, 2))
def test_fuzz_any_bit_flip_in_a_model_file_is_refused(saved, tmp_path_factory, in_header, position, bit, more):
    # The checksum covers tensor data and metadata, the format covers the rest:
    # no flipped bit anywhere may load as weights.
    data, _ = saved
    flipped = bytearray(data)
    span = header_end(data) if in_header else len(data)
    for k in range(1 + more):
        flipped[(position + 7919 * k) % span] ^= 1 << ((bit + k) % 8)
    if bytes(flipped) == data:  # two flips of the same bit cancel
        return
    path = tmp_path_factory.getbasetemp() / "flipped.safetensors"
    path.write_bytes(bytes(flipped))
    with pytest.raises(WeightsFileError) as info:
        le.load(path, backend="numpy")
    assert type(info.value) in REFUSALS, info.value
