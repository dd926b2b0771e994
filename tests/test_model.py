"""The model API: construction, input checks, prediction, training, state and weights files."""

import os
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import lenet_engine as le
from conftest import COMPILED_BACKENDS
from lenet_engine.errors import (
    InvalidInputError,
    UnknownModelError,
    WeightsFileError,
    WeightsNotFoundError,
)
from lenet_engine.io import safetensors_file, weights_file

ARCHS = ("classic", "modern")


@pytest.fixture(scope="module")
def digits(mnist_test):
    images, labels = mnist_test
    return images[:300], labels[:300]


# --- construction ----------------------------------------------------------


def test_parameter_counts_and_names():
    classic, modern = le.LeNet5("classic"), le.LeNet5("modern")
    assert classic.num_parameters == 60000 and modern.num_parameters == 61706
    assert classic.arch == "classic" and modern.arch == "modern"
    # The classic state also holds the 840 fixed RBF prototype values, not counted as parameters.
    assert sum(v.size for v in classic.state_dict().values()) == 60000 + 840


def test_backends_listed_and_auto_is_the_fastest_available():
    names = le.backends()
    assert "numpy" in names and "numba" in names
    assert le.LeNet5("modern", backend="auto").backend == names[0]


@pytest.mark.parametrize("bad", ["lenet", "Classic", ""])
def test_unknown_architecture(bad):
    with pytest.raises(UnknownModelError, match="unknown architecture"):
        le.LeNet5(bad)


def test_unknown_backend():
    with pytest.raises(UnknownModelError, match="unknown backend 'torch'"):
        le.LeNet5("modern", backend="torch")


def _assert_uniform(t, bound, name):
    """t looks like uniform(-bound, bound): inside the bound, spread like it (std = bound / sqrt 3)."""
    assert np.abs(t).max() <= bound, name
    if t.size >= 100:
        assert abs(t.std() - bound / np.sqrt(3)) < 0.15 * bound / np.sqrt(3), name


def test_classic_initialisation_follows_the_paper():
    state = le.LeNet5("classic", seed=1).state_dict()
    fan_in = {"c1": 25, "s2": 4, "s4": 4, "c5": 400, "f6": 120}
    for name, t in state.items():
        layer = name.split(".")[0]
        if layer in fan_in:
            _assert_uniform(t, 2.4 / fan_in[layer], name)
    # C3: fan-in 75, 100 or 150 by how many S2 maps the map reads (Table I).
    sizes = np.array([len(row) for row in le.constants.TABLE_I])
    bounds = np.repeat(2.4 / (25 * sizes), sizes)
    assert (np.abs(state["c3.weight"]).max(axis=(1, 2)) <= bounds).all()
    assert (np.abs(state["c3.weight"]).max(axis=(1, 2)) > 0.5 * bounds).all()
    assert (np.abs(state["c3.bias"]) <= 2.4 / (25 * sizes)).all()
    np.testing.assert_array_equal(state["output.prototypes"], le.constants.rbf_prototypes())


def test_modern_initialisation_is_keras_default():
    state = le.LeNet5("modern", seed=1).state_dict()
    assert all(not state[k].any() for k in state if k.endswith(".bias"))
    fans = {"conv1": 25 + 150, "conv2": 150 + 400, "dense1": 400 + 120, "dense2": 120 + 84, "dense3": 84 + 10}
    for layer, fan_sum in fans.items():
        _assert_uniform(state[f"{layer}.weight"], np.sqrt(6 / fan_sum), layer)


def test_seed_makes_initialisation_reproducible():
    a, b, c = (le.LeNet5("modern", seed=s).state_dict() for s in (5, 5, 6))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])


# --- inputs ----------------------------------------------------------------

BAD_DIGITS = [
    (np.zeros((27, 28), np.uint8), "shape"),
    (np.zeros((2, 28, 27), np.uint8), "shape"),
    (np.zeros((2, 3, 28, 28), np.uint8), "shape"),
    (np.zeros(784, np.uint8), "shape"),
    (np.zeros((2, 28, 28), np.int64), "int64"),
    (np.zeros((2, 28, 28), bool), "bool"),
    (np.zeros((2, 28, 28), object), "object"),
    (np.zeros((2, 28, 28), np.complex64), "complex64"),
    (np.full((2, 28, 28), np.nan, np.float32), "NaN"),
    (np.full((2, 28, 28), np.inf), "NaN or infinite"),
    (np.full((2, 28, 28), 255.0, np.float32), "divide by 255"),
    (np.full((2, 28, 28), -0.5), r"\[-0.5, -0.5\]"),
    ("digits", "numpy array"),
    ([[1, 2], [3]], "could not be read"),
]


@pytest.mark.parametrize("x, message", BAD_DIGITS)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "forward"])
def test_bad_digits_raise_a_clear_value_error(x, message, method):
    model = le.LeNet5("modern", backend="numpy")
    with pytest.raises(InvalidInputError, match=message) as info:
        getattr(model, method)(x)
    assert isinstance(info.value, ValueError)
    assert "expected" in str(info.value)


@pytest.mark.parametrize("y, message", [
    (np.zeros(3, np.int64), r"shape \(3,\).*\(2,\)"),
    (np.zeros(2, np.float32), "dtype float32"),
    (np.array([0, 10]), "0..10"),
    (np.array([-1, 3]), "-1..3"),
])
def test_bad_labels_raise_a_clear_value_error(y, message):
    model = le.LeNet5("modern", backend="numpy")
    x = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(InvalidInputError, match=message):
        model.score(x, y)
    with pytest.raises(InvalidInputError, match=message):
        model.fit(x, y, epochs=1, verbose=0)


def test_input_layouts_and_dtypes_agree(digits):
    model = le.LeNet5("classic", backend="numba", seed=2)
    x = np.ascontiguousarray(digits[0][:20])
    base = model.forward(x)
    np.testing.assert_allclose(model.forward(x[:, None]), base, rtol=0, atol=0)
    np.testing.assert_allclose(model.forward(x[3]), base[3:4], rtol=0, atol=0)
    np.testing.assert_allclose(model.forward(x.astype(np.float64) / 255), base, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(model.forward(x.astype(np.float32) / 255), base, rtol=1e-5, atol=1e-4)
    fortran = np.asfortranarray(x)
    strided = np.repeat(x, 2, axis=0)[::2]
    readonly = x.copy()
    readonly.flags.writeable = False
    for variant in (fortran, strided, readonly, list(x)):
        np.testing.assert_array_equal(model.forward(variant), base)


def test_empty_batch(digits):
    model = le.LeNet5("modern", backend="numba")
    empty = np.zeros((0, 28, 28), np.uint8)
    assert model.predict(empty).shape == (0,) and model.predict(empty).dtype == np.int64
    assert model.predict_proba(empty).shape == (0, 10)
    with pytest.raises(InvalidInputError, match="at least one"):
        model.score(empty, np.zeros(0, np.uint8))


def test_batches_larger_than_a_chunk_are_streamed(digits, monkeypatch):
    monkeypatch.setattr(le.predictor, "PREDICT_CHUNK", 64)
    model = le.LeNet5("classic", backend="numba", seed=0)
    chunked = model.forward(digits[0])
    monkeypatch.setattr(le.predictor, "PREDICT_CHUNK", 10_000)
    np.testing.assert_array_equal(chunked, model.forward(digits[0]))


def test_a_large_uint8_batch_is_predicted_in_bounded_memory():
    # 50,000 digits: prepared all at once, the float32 32x32 input fields alone would take 205 MB.
    n = 50_000
    x = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    model = le.LeNet5("classic", seed=0)
    model.predict(x[:2])  # first-call costs (kernel loading) outside the measurement
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        labels = model.predict(x)
        growth = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert labels.shape == (n,)
    # What has to exist: the outputs (N x 10 float32) and labels (N int64, and argmin's copy), 56 bytes
    # a digit; the kernel reads the uint8 digits as they are, so no input copy. Measured 2.7 MB in all.
    needed = n * (10 * 4 + 2 * 8)
    assert growth < needed + 1 * 2**20, f"peak growth {growth / 2**20:.1f} MB"


@pytest.mark.parametrize("arch", ARCHS)
def test_predict_proba_is_a_distribution_consistent_with_predict(arch, digits):
    model = le.LeNet5(arch, backend="numba", seed=3)
    proba = model.predict_proba(digits[0])
    labels = model.predict(digits[0])
    assert proba.dtype == np.float32 and proba.shape == (300, 10)
    assert labels.dtype == np.int64 and labels.shape == (300,)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), labels)
    if arch == "classic":  # p_i ~ exp(-y_i): the nearest prototype is the most probable
        np.testing.assert_array_equal(model.forward(digits[0]).argmin(axis=1), labels)


# --- backends agree ----------------------------------------------------------


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_model_backends_agree_on_1000_test_digits(arch, backend, mnist_test):
    images = mnist_test[0][:1000]
    reference = le.load(arch, backend="numpy")
    compiled = le.load(arch, backend=backend)
    want, got = reference.forward(images), compiled.forward(images)
    # Relative to max(1, |y|): classic's RBF distances reach ~130, where a float32 step is 1.5e-5,
    # and each sums 84 squared F6 differences, whose last bits add up (1.5e-5 at worst on all 10,000).
    assert (np.abs(got - want) / np.maximum(1.0, np.abs(want))).max() <= 3e-5
    np.testing.assert_allclose(compiled.predict_proba(images), reference.predict_proba(images), atol=1e-4)
    np.testing.assert_array_equal(compiled.predict(images), reference.predict(images))


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_one_training_step_agrees_with_the_reference(arch, backend, digits):
    x, y = digits[0][:64], digits[1][:64]
    models = [le.LeNet5(arch, seed=4, backend=b) for b in ("numpy", backend)]
    for m in models:
        m.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=0)
    want, got = (m.state_dict() for m in models)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_eight_threads_sharing_one_model_get_the_single_threaded_results(arch, backend, digits):
    model = le.load(arch, backend=backend)
    chunks = np.array_split(digits[0], 8)
    le.set_num_threads(1)
    try:
        want = [model.forward(c) for c in chunks]
    finally:
        le.set_num_threads(None)
    got = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(5):
            got[i].append(model.forward(chunks[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, results in zip(want, got):
        assert len(results) == 5
        for g in results:
            np.testing.assert_array_equal(g, w)


def test_numba_workqueue_layer_survives_concurrent_callers():
    # Under Numba's workqueue layer, two threads in parallel code at once abort
    # the process; the backend must serialise instead (its layer kernels on 2 threads are such code).
    code = (
        "import threading, numpy as np\n"
        "from lenet_engine.backends import get_backend\n"
        "k = get_backend('numba')\n"
        "scores = np.random.default_rng(0).standard_normal((4096, 10)).astype(np.float32)\n"
        "def softmax():\n"
        "    p = np.empty_like(scores)\n"
        "    k.softmax_forward(p, scores, 1.0, 2)\n"
        "    return p\n"
        "want = softmax()\n"
        "out = []\n"
        "ts = [threading.Thread(target=lambda: out.append(softmax())) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "assert len(out) == 8 and all((o == want).all() for o in out)\n"
        "import numba; print(numba.threading_layer())\n"
    )
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "workqueue"


# --- training ----------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fit_learns_and_records_history(arch, optimizer, mnist_train, mnist_test):
    x, y = mnist_train[0][:2000], mnist_train[1][:2000]
    xv, yv = mnist_test[0][:500], mnist_test[1][:500]
    model = le.LeNet5(arch, seed=0, backend="numba")
    lr = None if optimizer == "adam" else 0.01 if arch == "modern" else 0.003
    history = model.fit(x, y, epochs=3, batch_size=32, optimizer=optimizer, lr=lr,
                        validation_data=(xv, yv), seed=1, verbose=0)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert all(len(v) == 3 for v in history.values())
    assert history["loss"][2] < history["loss"][0]
    assert history["val_accuracy"][2] > 0.8
    assert model.metadata["recipe"]["optimizer"] == optimizer
    assert model.score(xv, yv) == pytest.approx(history["val_accuracy"][2])


def test_fit_is_reproducible_with_a_seed(digits):
    x, y = digits
    runs = []
    for seed in (7, 7, 8):
        m = le.LeNet5("classic", seed=0, backend="numba")
        m.fit(x, y, epochs=1, batch_size=16, seed=seed, verbose=0)
        runs.append(m.state_dict())
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not np.array_equal(runs[0]["c1.weight"], runs[2]["c1.weight"])


def test_fit_shows_a_progress_bar_unless_verbose_is_zero(digits, capsys):
    x, y = digits[0][:64], digits[1][:64]
    le.LeNet5("modern", backend="numba").fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().err == ""
    le.LeNet5("modern", backend="numba").fit(x, y, epochs=1, verbose=1)
    assert "epoch 1/1" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": -1}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": -0.1}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr": []}, "lr"),
    ({"optimizer": "rmsprop"}, "unknown optimizer"),
    ({"momentum": 1.0}, "momentum"),
    ({"map_j": 0.0}, "map_j"),
])
def test_fit_rejects_bad_arguments(kwargs, message, digits):
    with pytest.raises(ValueError, match=message):
        le.LeNet5("classic", backend="numpy").fit(digits[0][:4], digits[1][:4], verbose=0, **kwargs)


def test_fit_reports_divergence(digits):
    with pytest.raises(FloatingPointError, match="diverged"):
        le.LeNet5("modern", backend="numba").fit(
            digits[0], digits[1], epochs=1, optimizer="sgd", lr=1e38, verbose=0)


def test_weights_left_part_way_through_a_run_say_so(digits):
    # A diverged (or interrupted) run keeps the weights of its last good epoch: their metadata
    # must not be the shipped model's any more, nor claim the whole run.
    model = le.load("modern", backend="numba")
    with pytest.raises(FloatingPointError, match="diverged in epoch 2"):
        model.fit(digits[0], digits[1], epochs=2, optimizer="sgd", lr=[1e-3, 1e38], verbose=0)
    assert model.metadata["incomplete"].endswith("1 of 2 epochs done")
    assert "test_accuracy" not in model.metadata and model.metadata["recipe"]["epochs"] == 2
    model.fit(digits[0], digits[1], epochs=1, verbose=0)
    assert "incomplete" not in model.metadata


def test_fit_with_no_epochs_keeps_what_describes_the_weights(digits):
    model = le.load("modern", backend="numba")
    before = dict(model.metadata)
    assert model.fit(digits[0], digits[1], epochs=0, verbose=0)["loss"] == []
    assert model.metadata == before


def test_fit_checks_the_checkpoint_path_before_training(digits, tmp_path):
    model = le.LeNet5("modern", backend="numba", seed=0)
    state = model.state_dict()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        model.fit(digits[0], digits[1], epochs=1, checkpoint=tmp_path / "nope" / "a.ckpt", verbose=0)
    assert all(np.array_equal(state[k], v) for k, v in model.state_dict().items())  # no epoch ran


# --- state and files ---------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_load_round_trip_bit_exact(arch, tmp_path, digits):
    model = le.LeNet5(arch, seed=9, backend="numba")
    model.fit(digits[0][:64], digits[1][:64], epochs=1, verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = le.load(path, backend="numba")
    assert loaded.arch == arch
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert loaded.metadata["recipe"] == model.metadata["recipe"]
    assert loaded.metadata["engine_version"] == le.__version__
    np.testing.assert_array_equal(loaded.forward(digits[0]), model.forward(digits[0]))


def test_state_dict_returns_copies_and_load_state_dict_checks():
    model = le.LeNet5("modern")
    state = model.state_dict()
    state["conv1.weight"][:] = 0
    assert model.state_dict()["conv1.weight"].any()
    model.load_state_dict(state)
    assert not model.state_dict()["conv1.weight"].any()
    for broken, message in [
        ({k: v for k, v in state.items() if k != "dense3.bias"}, "missing: \\['dense3.bias'\\]"),
        ({**state, "extra": np.zeros(1, np.float32)}, "unexpected: \\['extra'\\]"),
        ({**state, "dense3.bias": np.zeros(11, np.float32)}, "shape"),
        ({**state, "dense3.bias": np.zeros(10, np.float64)}, "float64"),
        ({**state, "dense3.bias": np.full(10, np.nan, np.float32)}, "NaN"),
    ]:
        with pytest.raises(WeightsFileError, match=message):
            model.load_state_dict(broken)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    le.LeNet5("modern", seed=1).save(path)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        le.LeNet5("modern", seed=2).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_load_errors(tmp_path):
    with pytest.raises(UnknownModelError, match="unknown model 'lenet7'.*classic, classic-distorted, modern"):
        le.load("lenet7")
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        le.load(tmp_path / "absent.safetensors")
    good = tmp_path / "good.safetensors"
    le.LeNet5("classic", seed=0).save(good)
    data = good.read_bytes()

    def write(name, content):
        path = tmp_path / name
        path.write_bytes(content)
        return path

    with pytest.raises(WeightsFileError):
        le.load(write("truncated.safetensors", data[: len(data) // 2]))
    with pytest.raises(WeightsFileError, match="not a safetensors file"):
        import pickle
        le.load(write("pickle.safetensors", pickle.dumps({"c1.weight": [1.0]})))
    foreign = tmp_path / "foreign.safetensors"
    safetensors_file.save_file({"weight": np.zeros(3, np.float32)}, foreign)
    with pytest.raises(WeightsFileError, match="not lenet_engine weights"):
        le.load(foreign)
    state = le.LeNet5("classic").state_dict()
    meta = safetensors_file.load_file(good)[1]
    for name, tensors, message in [
        ("other_arch", state, "unknown architecture 'lenet1'"),
        ("nan", {**state, "f6.bias": np.full(84, np.nan, np.float32)}, "NaN"),
        ("shape", {**state, "c3.weight": np.zeros((16, 6, 5, 5), np.float32)}, "c3.weight has shape"),
    ]:
        path = tmp_path / f"{name}.safetensors"
        file_meta = {**meta, "arch": "lenet1"} if name == "other_arch" else dict(meta)
        file_meta["sha256"] = weights_file.checksum(tensors, file_meta)  # well formed, only wrong inside
        safetensors_file.save_file(tensors, path, file_meta)
        with pytest.raises(WeightsFileError, match=message):
            le.load(path)


# --- hard edges found in review ------------------------------------------------


@pytest.mark.parametrize("arch", ["classic", "modern"])
def test_the_kernel_input_table_is_the_training_input(arch):
    # Prediction hands uint8 digits to the fused kernel, which looks their pixels up in
    # input_table; training scales them with to_network_input. Both must give the same values.
    from lenet_engine.architectures import get_architecture
    from lenet_engine.inputs import input_table, to_network_input

    spec = get_architecture(arch)
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    field = to_network_input(np.resize(pixels, (1, 28, 28)), spec.background, spec.ink)
    table = input_table(float(spec.background), float(spec.ink))
    np.testing.assert_array_equal(table[np.resize(pixels, (1, 28, 28))], field[:, 0, 2:30, 2:30])
    assert table[0] == field[0, 0, 0, 0]  # the border


@pytest.mark.parametrize("backend", le.backends())
def test_predictions_follow_every_change_of_the_weights(digits, backend):
    # The model keeps the fused kernel bound to its weights between calls; training (in
    # place), load_state_dict, a diverged epoch's restore and a change of backend must all
    # show in the next prediction.
    x, y = digits[0][:32], digits[1][:32]
    model = le.LeNet5("modern", seed=0, backend=backend)
    before = model.forward(x)
    other = le.LeNet5("modern", seed=1, backend=backend)
    model.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(model.forward(x), other.forward(x))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    fresh = le.LeNet5("modern", backend=backend)
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(model.forward(x), fresh.forward(x))
    assert not np.array_equal(model.forward(x), other.forward(x))
    assert not np.array_equal(model.forward(x), before)
    for name in le.backends():
        model.backend = fresh.backend = name
        np.testing.assert_array_equal(model.forward(x), fresh.forward(x))


def test_divergence_restores_the_weights_of_the_epoch_start(digits):
    model = le.LeNet5("modern", backend="numba", seed=0)
    before = model.state_dict()
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        model.fit(digits[0], digits[1], epochs=1, optimizer="sgd", lr=1e38, verbose=0)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_training_a_loaded_model_drops_the_old_record(tmp_path, digits):
    model = le.load("modern", backend="numba")
    assert "command" in model.metadata and "test_accuracy" in model.metadata
    model.fit(digits[0][:64], digits[1][:64], epochs=1, verbose=0, seed=np.int64(3))
    assert "command" not in model.metadata and "test_accuracy" not in model.metadata
    assert model.metadata["recipe"]["seed"] == 3
    model.save(tmp_path / "tuned.safetensors")  # numpy-scalar seeds serialise
    assert le.load(tmp_path / "tuned.safetensors").metadata["recipe"]["seed"] == 3
    model.load_state_dict(model.state_dict())
    assert model.metadata == {"arch": "modern"}


@pytest.mark.parametrize("validation_data, message", [
    (np.zeros((2, 28, 28), np.uint8), "pair"),
    ((np.zeros((2, 28, 28), np.uint8),), "pair"),
    ((np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)), "no digits"),
    ((np.zeros((2, 28, 28), np.uint8), np.zeros(3, np.uint8)), "shape"),
])
def test_bad_validation_data_is_refused_before_training(validation_data, message, digits):
    model = le.LeNet5("modern", backend="numpy")
    before = model.state_dict()
    with pytest.raises(ValueError, match=message):
        model.fit(digits[0][:8], digits[1][:8], epochs=1, verbose=0, validation_data=validation_data)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"epochs": True}, "epochs"),
    ({"lr": True}, "lr"), ({"lr": 1j}, "lr"), ({"map_j": "1"}, "map_j"), ({"map_j": True}, "map_j"),
])
def test_option_types_are_checked(kwargs, message, digits):
    with pytest.raises(ValueError, match=message):
        le.LeNet5("classic", backend="numpy").fit(digits[0][:4], digits[1][:4], verbose=0, **kwargs)


def test_numpy_scalar_options_are_accepted(digits):
    model = le.LeNet5("modern", backend="numba", seed=np.int64(2))
    model.fit(digits[0][:32], digits[1][:32], epochs=np.int64(1), batch_size=np.int32(16),
              optimizer="sgd", momentum=np.float32(0.5), lr=np.float32(0.01), verbose=0)


@pytest.mark.parametrize("bad, error", [(None, TypeError), (3, TypeError), (b"classic", TypeError)])
def test_load_refuses_non_paths(bad, error):
    with pytest.raises(error, match="model name"):
        le.load(bad)


def test_load_of_a_folder_says_so(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="is a folder"):
        le.load(tmp_path)


def test_masked_arrays_are_refused():
    x = np.ma.masked_array(np.zeros((1, 28, 28), np.uint8), mask=True)
    with pytest.raises(InvalidInputError, match="masked"):
        le.LeNet5("modern", backend="numpy").predict(x)


def test_big_endian_and_float16_digits(digits):
    model = le.LeNet5("modern", backend="numba")
    x = digits[0][:10].astype(np.float32) / 255
    want = model.forward(x)
    np.testing.assert_allclose(model.forward(x.astype(">f4")), want, atol=1e-6)
    np.testing.assert_allclose(model.forward(x.astype(np.float16)), want, atol=1e-2)


def test_no_top_level_kernels_package_is_installed(tmp_path):
    # Run from an unrelated folder, so the checkout itself is not on sys.path.
    code = ("import importlib.util as u; "
            "print(u.find_spec('kernels') is None, u.find_spec('lenet_engine.kernels.numba') is not None)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.stdout.split() == ["True", "True"], done.stderr


@pytest.mark.parametrize("backend", le.backends())
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")  # NumPy's, on the way
def test_weights_that_overflow_raise_instead_of_answering(digits, backend):
    # Each backend's forward pass counts its non-finite outputs (the Cython one in its kernel).
    model = le.LeNet5("modern", backend=backend)
    state = model.state_dict()
    state["dense3.weight"][:] = 3e38
    model.load_state_dict(state)
    with pytest.raises(FloatingPointError, match="overflow"):
        model.predict(digits[0][:5])
