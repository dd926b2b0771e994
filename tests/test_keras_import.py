"""from_keras: the seed's Keras model, saved by Keras 2 and 3 as .keras and .h5, runs in the engine as in Keras.

The files in tests/data were made once by tests/data/make_keras_fixture.py
(TensorFlow 2.21: Keras 3.15 and tf-keras 2.21), with Keras's own outputs on
the shipped sample digits; no TensorFlow is needed here. Malformed variants
are made from them with h5py and zipfile.
"""

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import lenet_engine as le
from conftest import require
from lenet_engine.errors import UnsupportedModelError, WeightsFileError, WeightsNotFoundError

h5py = require("h5py")

DATA = Path(__file__).resolve().parent / "data"
KERAS_FILES = ("seed_keras3.keras", "seed_keras3.h5", "seed_keras2.keras", "seed_keras2.h5")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def keras_outputs():
    with np.load(DATA / "seed_keras_outputs.npz") as outputs:
        return dict(outputs)


@pytest.fixture(scope="module")
def samples():
    with np.load(Path(le.__file__).parent / "data" / "sample_digits.npz") as data:
        return data["images"], data["labels"]


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("name", KERAS_FILES)
def test_keras_model_runs_as_in_keras(name, backend, keras_outputs, samples):
    images, labels = samples
    stem = Path(name).stem
    model = le.from_keras(DATA / name, backend=backend)
    assert model.arch == "modern" and model.num_parameters == 61706
    logits, probs = keras_outputs[f"{stem}_logits"], keras_outputs[f"{stem}_probs"]
    np.testing.assert_allclose(model.forward(images), logits, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(model.predict_proba(images), probs, rtol=0, atol=TOLERANCE)
    # Keras's own input convention, x / 255 as float32, gives the same.
    np.testing.assert_allclose(model.forward(images.astype(np.float32) / 255), logits, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(model.predict(images), probs.argmax(axis=1))
    # A trained model, not an untouched initialisation: it reads the digits.
    assert model.score(images, labels) >= 0.95


def test_keras_2_and_3_files_give_the_same_weights():
    states = [le.from_keras(DATA / name).state_dict() for name in KERAS_FILES]
    for state in states[1:]:
        for key, value in states[0].items():
            np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_dense1_rows_are_permuted_from_keras_channels_last_flatten():
    with h5py.File(DATA / "seed_keras3.h5") as f:
        keras_kernel = f["model_weights/dense/sequential/dense/kernel"][()]   # (400, 120), rows (h, w, c)
        keras_conv = f["model_weights/conv2d/sequential/conv2d/kernel"][()]   # (5, 5, 1, 6)
    state = le.from_keras(DATA / "seed_keras3.h5").state_dict()
    for c, h, w in [(0, 0, 0), (3, 1, 4), (15, 4, 4), (7, 2, 0)]:
        np.testing.assert_array_equal(state["dense1.weight"][:, c * 25 + h * 5 + w], keras_kernel[h * 80 + w * 16 + c])
    np.testing.assert_array_equal(state["conv1.weight"][4, 0, 1, 3], keras_conv[1, 3, 0, 4])


def test_imported_model_records_its_source_and_saves_bit_exact(tmp_path, samples):
    model = le.from_keras(DATA / "seed_keras3.keras")
    assert model.metadata["imported_from"] == {"format": "keras", "file": "seed_keras3.keras",
                                               "keras_version": "3.15.1"}
    model.save(tmp_path / "imported.safetensors")
    again = le.load(tmp_path / "imported.safetensors")
    assert again.metadata["imported_from"] == model.metadata["imported_from"]
    for key, value in model.state_dict().items():
        assert again.state_dict()[key].tobytes() == value.tobytes()
    np.testing.assert_array_equal(again.forward(samples[0]), model.forward(samples[0]))


# --- files that are not the seed's model ------------------------------------------------


def _legacy_with_config(tmp_path, edit):
    """A copy of the Keras 2 .h5 fixture whose model config went through `edit`."""
    path = tmp_path / "edited.h5"
    shutil.copy(DATA / "seed_keras2.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return path


def _keras_zip_with(tmp_path, source="seed_keras3.keras", config_edit=None, weights_edit=None, drop=()):
    """A copy of a .keras fixture with its config and weights edited, or members dropped."""
    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(DATA / source) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            if name in drop:
                continue
            data = src.read(name)
            if name == "config.json" and config_edit:
                config = json.loads(data)
                config_edit(config)
                data = json.dumps(config).encode()
            if name == "model.weights.h5" and weights_edit:
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as f:
                    weights_edit(f)
                data = buffer.getvalue()
            dst.writestr(name, data)
    return path


def _layers(config):
    return config["config"]["layers"]


def _set(index, **entries):
    def edit(config):
        _layers(config)[index]["config"].update(entries)
    return edit


def test_keras_file_of_another_architecture_names_its_first_misfit_layer():
    # Made by Keras: the same shapes with ReLU and max pooling.
    with pytest.raises(UnsupportedModelError, match=r"layer 2 \('conv2d_\d+', Conv2D\).*activation is 'relu'"):
        le.from_keras(DATA / "relu_maxpool_keras3.h5")


@pytest.mark.parametrize("edit, message", [
    (lambda c: _layers(c)[3].update(class_name="MaxPooling2D"),
     r"layer 3 \('average_pooling2d', MaxPooling2D\).*expected AveragePooling2D"),
    (_set(2, filters=8), r"layer 2 \('conv2d', Conv2D\).*filters is 8"),
    (_set(2, kernel_size=[3, 3]), r"layer 2 \('conv2d', Conv2D\).*kernel_size is \(3, 3\)"),
    (_set(4, padding="same"), r"layer 4 \('conv2d_1', Conv2D\).*padding is 'same'"),
    (_set(6, data_format="channels_first"), r"layer 6 \('flatten', Flatten\).*channels_first"),
    (_set(8, activation="relu"), r"layer 8 \('dense_1', Dense\).*activation is 'relu'"),
    (_set(9, activation="sigmoid"), r"layer 9 \('dense_2', Dense\).*activation is 'sigmoid'"),
    (_set(1, padding=[[1, 1], [1, 1]]), r"layer 1 \('zero_padding2d', ZeroPadding2D\).*padding"),
    (lambda c: _layers(c).pop(), r"ends after 8 layers.*Dense\(10"),
    (lambda c: _layers(c).append({"class_name": "Dropout", "config": {"name": "dropout", "rate": 0.5}}),
     r"layer 10 \('dropout', Dropout\)"),
    (_set(0, batch_input_shape=[None, 32, 32, 1]), r"input layer .* \(None, 32, 32, 1\)"),
    (lambda c: c.update(class_name="Functional"), r"is a Functional, not a Sequential"),
])
def test_legacy_h5_of_another_architecture_is_refused(tmp_path, edit, message):
    with pytest.raises(UnsupportedModelError, match=message):
        le.from_keras(_legacy_with_config(tmp_path, edit))


def test_dense_10_without_softmax_is_accepted_as_logits(tmp_path, keras_outputs, samples):
    path = _legacy_with_config(tmp_path, _set(9, activation="linear"))
    np.testing.assert_allclose(le.from_keras(path).forward(samples[0]), keras_outputs["seed_keras2_logits"],
                               rtol=0, atol=TOLERANCE)


def test_keras_zip_of_another_architecture_is_refused(tmp_path):
    path = _keras_zip_with(tmp_path, config_edit=_set(7, units=100))
    with pytest.raises(UnsupportedModelError, match=r"layer 7 \('dense', Dense\).*units is 100"):
        le.from_keras(path)


def test_missing_or_misshapen_weights_are_refused(tmp_path):
    def drop_dense_1(f):
        del f["layers/dense_1"]

    with pytest.raises(UnsupportedModelError, match="no layers/dense_1/vars"):
        le.from_keras(_keras_zip_with(tmp_path, weights_edit=drop_dense_1))

    def shrink_conv(f):
        del f["layers/conv2d/vars/0"]
        f["layers/conv2d/vars/0"] = np.zeros((5, 5, 1, 8), np.float32)

    with pytest.raises(UnsupportedModelError, match=r"conv1 has a kernel of shape \(5, 5, 1, 8\)"):
        le.from_keras(_keras_zip_with(tmp_path, weights_edit=shrink_conv))

    def huge_dense(f):   # declared 8 GB, stored as nothing (HDF5 allocates chunks lazily)
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", shape=(2**16, 2**15), dtype=np.float32, chunks=(64, 64))

    with pytest.raises(UnsupportedModelError, match=r"shape \(65536, 32768\), larger than any of the seed's"):
        le.from_keras(_keras_zip_with(tmp_path, weights_edit=huge_dense))

    path = tmp_path / "no_dense.h5"
    shutil.copy(DATA / "seed_keras2.h5", path)
    with h5py.File(path, "r+") as f:
        del f["model_weights/dense_2"]
    with pytest.raises(UnsupportedModelError, match="no weights for layer 'dense_2'"):
        le.from_keras(path)

    with h5py.File(path, "r+") as f:
        f.create_group("model_weights/dense_2").attrs["weight_names"] = [b"dense_2/kernel:0"]
        f["model_weights/dense_2/dense_2/kernel:0"] = np.zeros((84, 10), np.float32)
    with pytest.raises(UnsupportedModelError, match="expected a kernel and a bias"):
        le.from_keras(path)


def test_nan_weights_are_refused(tmp_path):
    def poison(f):
        f["layers/dense/vars/1"][3] = np.nan

    with pytest.raises(WeightsFileError, match="NaN"):
        le.from_keras(_keras_zip_with(tmp_path, weights_edit=poison))


def test_files_that_are_not_keras_models_are_refused(tmp_path):
    with pytest.raises(WeightsNotFoundError):
        le.from_keras(tmp_path / "absent.keras")
    (tmp_path / "text.h5").write_text("not a model")
    with pytest.raises(WeightsFileError, match="neither a .keras zip nor an HDF5 file"):
        le.from_keras(tmp_path / "text.h5")
    with pytest.raises(WeightsFileError, match="no model.weights.h5"):
        le.from_keras(_keras_zip_with(tmp_path, drop=("model.weights.h5",)))
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:   # what Keras 2's model.save_weights writes
        f.attrs["layer_names"] = [b"conv2d"]
    with pytest.raises(WeightsFileError, match=r"weights only \(model.save_weights\)"):
        le.from_keras(tmp_path / "weights_only.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(WeightsFileError, match="not a saved Keras model"):
        le.from_keras(tmp_path / "other.h5")
    with zipfile.ZipFile(tmp_path / "bad_config.keras", "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(WeightsFileError, match="config.json is not valid JSON"):
        le.from_keras(tmp_path / "bad_config.keras")


def test_missing_h5py_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)   # makes `import h5py` fail
    with pytest.raises(le.MissingDependencyError, match=r"pip install 'lenet-engine\[keras\]'") as info:
        le.from_keras(DATA / "seed_keras3.keras")
    assert isinstance(info.value, ImportError)
