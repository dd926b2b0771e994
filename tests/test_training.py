"""Training as the paper did it: SDLM's second-order pass, distortions, reproducibility, checkpoints.

Kernel by kernel, the curvature (second-order backward) kernels are checked in
test_curvature.py (reference against finite differences) and test_kernels.py
(compiled twins against the reference); here the whole pass and what fit
builds on it.
"""

import json

import numpy as np
import pytest

import lenet_engine as le
from conftest import COMPILED_BACKENDS, require
from lenet_engine import network
from lenet_engine.architectures import get_architecture
from lenet_engine.backends import get_backend
from lenet_engine.cli import main
from lenet_engine.errors import WeightsChecksumError, WeightsFileError
from lenet_engine.inputs import to_network_input
from lenet_engine.io import checkpoint_file, safetensors_file
from lenet_engine.training import optimizers

ARCHS = ("classic", "modern")


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:300], mnist_test[1][:300].astype(np.int64)


def _curvature(arch_name, backend, x, y, n_threads=1):
    model = le.LeNet5(arch_name, seed=3)
    arch = get_architecture(arch_name)
    field = to_network_input(x, arch.background, arch.ink)
    return network.curvature(arch, get_backend(backend), model.state_dict(), field, y, n_threads, 1.0)


# --- SDLM -------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_second_order_pass_agrees_with_the_reference(arch, backend, digits):
    x, y = digits[0][:40], digits[1][:40]
    want = _curvature(arch, "numpy", x, y)
    got = _curvature(arch, backend, x, y, n_threads=2)
    assert set(got) == set(want) == set(get_architecture(arch).param_shapes())
    for name in want:
        assert (got[name] >= 0).all() and np.isfinite(got[name]).all(), name
        scale = float(np.abs(want[name]).max())
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-5 * scale, err_msg=name)


def test_sdlm_step_is_eta_over_mu_plus_h():
    opt = optimizers.make_optimizer("sdlm", mu=0.02)
    h = np.array([0.0, 0.08, 1.0, 10.0], np.float32)
    opt.set_curvature({"w": h})
    params, grad = {"w": np.ones(4, np.float32)}, np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    opt.step(params, {"w": grad}, 0.01, 1)
    np.testing.assert_allclose(params["w"], 1.0 - 0.01 * grad / (0.02 + h), rtol=1e-6)


def test_sdlm_defaults_are_the_papers():
    assert optimizers.DEFAULT_MU == 0.02
    eta = optimizers.PAPER_ETA
    assert eta[:2] == [5e-4] * 2 and eta[2:5] == [2e-4] * 3 and eta[5:8] == [1e-4] * 3
    assert eta[8:12] == [5e-5] * 4 and eta[12:] == [1e-5]


@pytest.mark.parametrize("mu", [0, -1, float("nan"), "big", True])
def test_sdlm_refuses_bad_mu(mu, digits):
    with pytest.raises(ValueError, match="mu"):
        le.LeNet5("classic").fit(digits[0][:4], digits[1][:4], optimizer="sdlm", mu=mu, verbose=0)


def test_sdlm_trains_classic_per_digit(mnist_train, mnist_test):
    x, y = mnist_train[0][:3000], mnist_train[1][:3000]
    model = le.LeNet5("classic", backend="cython")
    history = model.fit(x, y, epochs=1, batch_size=1, optimizer="sdlm", mu=0.2, verbose=0,
                        validation_data=(mnist_test[0][:1000], mnist_test[1][:1000]))
    # Untrained, it scores about 0.1; one pass over 3,000 digits reaches about 0.8 (0.79 on an
    # AVX-512 Xeon, above 0.8 on an AVX2 EPYC: each kernel build rounds its own way).
    assert history["val_accuracy"][0] > 0.6
    recipe = model.metadata["recipe"]
    assert recipe["optimizer"] == "sdlm" and recipe["mu"] == 0.2 and recipe["curvature_digits"] == 500


# --- distortions ----------------------------------------------------------


@pytest.mark.parametrize("backend", ("numpy",) + COMPILED_BACKENDS)
def test_identity_and_whole_pixel_shifts(backend, digits):
    k = get_backend(backend)
    x = digits[0][:5].astype(np.float32) / 255
    m = np.zeros((5, 2, 3), np.float32)
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    flow = np.zeros((5, 2, 28, 28), np.float32)
    out = np.full_like(x, np.nan)
    k.distort_forward(out, x, m, flow, 1)
    np.testing.assert_allclose(out, x, atol=1e-6)
    m[:, 0, 2], m[:, 1, 2] = 3.0, -2.0  # read 3 columns right and 2 rows up: the digit moves left, down
    k.distort_forward(out, x, m, flow, 1)
    np.testing.assert_allclose(out[:, 2:, :-3], x[:, :-2, 3:], atol=1e-6)
    assert (out[:, :2] == 0).all() and (out[:, :, -3:] == 0).all()


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_distort_kernel_agrees_with_the_reference(backend, seed):
    rng = np.random.default_rng(seed)
    n, h, w = rng.integers(1, 6), rng.integers(2, 30), rng.integers(2, 30)
    x = rng.random((n, h, w)).astype(np.float32)
    m = (np.eye(2, 3) + rng.normal(0, 0.5, (n, 2, 3))).astype(np.float32)
    m[:, :, 2] *= 10  # some points far outside the image
    flow = rng.normal(0, 3, (n, 2, h, w)).astype(np.float32)
    want, got = np.empty((n, h, w)), np.full((n, h, w), np.nan, np.float32)
    get_backend("numpy").distort_forward(want, x.astype(np.float64), m.astype(np.float64),
                                         flow.astype(np.float64), 1)
    get_backend(backend).distort_forward(got, x, m, flow, 2)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cython_distort_refuses_non_finite_maps():
    k = get_backend("cython")
    x, out = np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), np.float32)
    m = np.full((1, 2, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        k.distort_forward(out, x, m, np.zeros((1, 2, 4, 4), np.float32), 1)


def test_distortions_are_seeded_bounded_and_vary(digits):
    k = get_backend("cython")
    d = le.Distortions(elastic_alpha=8.0)
    a = le.distortions.distort(k, digits[0][:50], d, np.random.default_rng(1), 1)
    b = le.distortions.distort(k, digits[0][:50], d, np.random.default_rng(1), 1)
    c = le.distortions.distort(k, digits[0][:50], d, np.random.default_rng(2), 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    # Small distortions keep most of the ink and the digit recognisable.
    ink = digits[0][:50].astype(np.float32).sum(axis=(1, 2)) / 255
    assert np.all(np.abs(a.sum(axis=(1, 2)) / ink - 1) < 0.5)
    model = le.load("classic")
    assert model.score(a, digits[1][:50]) >= 0.9


@pytest.mark.parametrize("bad, message", [
    ({"scale": -0.1}, "scale"), ({"shear": float("nan")}, "shear"), ({"squeeze": 0.7}, "squeeze"),
    ({"elastic_alpha": 5.0, "elastic_sigma": 0.0}, "elastic_sigma"), ({"rotate": "10"}, "rotate"),
])
def test_bad_distortions_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        le.Distortions(**bad)


def test_augment_argument_forms(digits):
    x, y = digits[0][:32], digits[1][:32]
    for augment, recorded in [(True, le.Distortions().as_dict()), ({"shear": 0.3}, {**le.Distortions().as_dict(), "shear": 0.3}),
                              (None, None), (False, None)]:
        model = le.LeNet5("modern", backend="cython")
        model.fit(x, y, epochs=1, augment=augment, verbose=0)
        assert model.metadata["recipe"]["augment"] == recorded
    with pytest.raises(ValueError, match="augment"):
        le.LeNet5("modern").fit(x, y, epochs=1, augment="lots", verbose=0)
    with pytest.raises(ValueError, match="unknown distortion.*'tilt'"):
        le.LeNet5("modern").fit(x, y, epochs=1, augment={"tilt": 3, "shear": 0.1}, verbose=0)


# --- reproducibility and checkpoints --------------------------------------


def _train(x, y, **kwargs):
    model = le.LeNet5(kwargs.pop("arch", "classic"), seed=1, backend=kwargs.pop("backend", "cython"))
    history = model.fit(x, y, verbose=0, **kwargs)
    return model, history


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_same_command_same_weights(backend, n_threads, digits):
    x, y = digits
    le.set_num_threads(n_threads)
    try:
        runs = [_train(x, y, epochs=1, batch_size=4, optimizer="sdlm", mu=0.2, augment=True,
                       seed=seed, backend=backend, curvature_digits=50)[0].state_dict()
                for seed in (5, 5, 6)]
    finally:
        le.set_num_threads(None)
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not np.array_equal(runs[0]["c1.weight"], runs[2]["c1.weight"])


@pytest.mark.parametrize("optimizer, arch", [("sdlm", "classic"), ("adam", "modern"), ("sgd", "classic")])
def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(optimizer, arch, digits, tmp_path):
    x, y = digits
    kwargs = dict(arch=arch, batch_size=8, optimizer=optimizer, augment=True,
                  lr=[1e-3, 5e-4, 2e-4] if optimizer != "sdlm" else None,
                  validation_data=(x[:50], y[:50]), **({"curvature_digits": 50} if optimizer == "sdlm" else {}))
    whole, whole_history = _train(x, y, epochs=3, **kwargs)
    path = tmp_path / "run.ckpt"
    _train(x, y, epochs=1, checkpoint=path, **kwargs)       # "interrupted" after one epoch
    assert checkpoint_file.load(path)[2]["epoch"] == 1
    resumed, history = _train(x, y, epochs=3, checkpoint=path, resume=True, **kwargs)
    for name, t in whole.state_dict().items():
        assert np.array_equal(t, resumed.state_dict()[name]), name
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert history[key] == whole_history[key], key
    assert checkpoint_file.load(path)[2]["epoch"] == 3


def test_resuming_on_another_backend_warns_and_says_so(digits, tmp_path):
    x, y = digits
    path = tmp_path / "run.ckpt"
    _train(x, y, arch="modern", epochs=1, batch_size=16, checkpoint=path, backend="cython")
    with pytest.warns(RuntimeWarning, match="not the same bits"):
        resumed, _ = _train(x, y, arch="modern", epochs=2, batch_size=16, checkpoint=path, resume=True,
                            backend="numpy")
    assert resumed.metadata["resumed_from_build"]["backend"] == "cython"
    assert resumed.metadata["recipe"]["backend"] == "numpy"


def test_a_crash_mid_epoch_keeps_the_last_checkpoint(digits, tmp_path, monkeypatch):
    x, y = digits
    path = tmp_path / "run.ckpt"
    model = le.LeNet5("modern", seed=1, backend="cython")
    model.fit(x, y, epochs=1, batch_size=16, checkpoint=path, verbose=0)
    saved = path.read_bytes()
    calls = {"n": 0}
    real = network.loss_and_gradients

    def crash_midway(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(network, "loss_and_gradients", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=2, batch_size=16, checkpoint=path, resume=True, verbose=0)
    assert path.read_bytes() == saved
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]


def test_resume_refuses_other_settings_and_other_files(digits, tmp_path):
    x, y = digits
    path = tmp_path / "run.ckpt"
    _train(x, y, epochs=1, batch_size=8, checkpoint=path)
    with pytest.raises(ValueError, match="batch_size"):
        _train(x, y, epochs=2, batch_size=16, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="data"):
        _train(x[::-1], y[::-1], epochs=2, batch_size=8, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="validation"):  # the history would mix two validation sets
        _train(x, y, epochs=2, batch_size=8, checkpoint=path, resume=True, validation_data=(x[:20], y[:20]))
    with pytest.raises(ValueError, match="classic"):
        _train(x, y, arch="modern", epochs=2, batch_size=8, checkpoint=path, resume=True)
    weights = tmp_path / "w.safetensors"
    le.LeNet5("classic").save(weights)
    with pytest.raises(WeightsFileError, match="not a lenet_engine checkpoint"):
        _train(x, y, epochs=2, batch_size=8, checkpoint=weights, resume=True)
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[-100] ^= 1  # one bit of one weight: still a well-formed file, and finite
    path.write_bytes(bytes(flipped))
    with pytest.raises(WeightsChecksumError, match="checksum mismatch"):
        _train(x, y, epochs=2, batch_size=8, checkpoint=path, resume=True)
    path.write_bytes(good[:-100])
    with pytest.raises(WeightsFileError):
        _train(x, y, epochs=2, batch_size=8, checkpoint=path, resume=True)
    tensors, meta = safetensors_file.load_file(weights)
    safetensors_file.save_file(tensors, path, {**meta, "format": "lenet_engine.checkpoint/1"})
    with pytest.raises(WeightsFileError, match="older lenet_engine"):
        _train(x, y, epochs=2, batch_size=8, checkpoint=path, resume=True)


# --- trainable prototypes -------------------------------------------------


def test_prototypes_are_fixed_unless_trainable(digits):
    x, y = digits
    fixed, _ = _train(x, y, epochs=1, batch_size=16)
    np.testing.assert_array_equal(fixed.state_dict()["output.prototypes"],
                                  le.LeNet5("classic").state_dict()["output.prototypes"])
    model = le.LeNet5("classic", seed=1, backend="cython", trainable_prototypes=True)
    assert model.num_parameters == 60000 + 840
    start = model.state_dict()["output.prototypes"]
    np.testing.assert_array_equal(start, le.LeNet5("classic").state_dict()["output.prototypes"])
    model.fit(x, y, epochs=1, batch_size=16, optimizer="sdlm", mu=0.2, curvature_digits=50, verbose=0)
    assert not np.array_equal(model.state_dict()["output.prototypes"], start)
    assert model.metadata["recipe"]["trainable_prototypes"] is True
    with pytest.raises(ValueError, match="classic only"):
        le.LeNet5("modern", trainable_prototypes=True)


def test_trainable_prototypes_survive_save_and_load(digits, tmp_path):
    x, y = digits
    model = le.LeNet5("classic", seed=1, backend="cython", trainable_prototypes=True)
    model.load_state_dict(model.state_dict())  # forgets the metadata: the architecture must still say it
    model.save(tmp_path / "w.safetensors")
    again = le.load(tmp_path / "w.safetensors", backend="cython")
    assert again.num_parameters == 60000 + 840
    before = again.state_dict()["output.prototypes"]
    again.fit(x, y, epochs=1, batch_size=16, optimizer="sdlm", mu=0.2, curvature_digits=50, verbose=0)
    assert not np.array_equal(again.state_dict()["output.prototypes"], before)
    assert again.metadata["recipe"]["trainable_prototypes"] is True
    le.LeNet5("classic").save(tmp_path / "fixed.safetensors")
    assert le.load(tmp_path / "fixed.safetensors").num_parameters == 60000


# --- the command line -----------------------------------------------------


def test_train_command_writes_log_curves_and_checkpoint(tmp_path, mnist_root, capsys):
    require("matplotlib")
    out = tmp_path / "w.safetensors"
    argv = ["--threads", "1", "train", "--arch", "classic", "--optimizer", "sdlm", "--mu", "0.2",
            "--batch-size", "4", "--epochs", "2", "--limit", "200", "--augment", "shear=0.3",
            "--data-root", str(mnist_root), "--no-download", "--quiet", "--out", str(out),
            "--log", str(tmp_path / "log.json"), "--curves", str(tmp_path / "curves.png"),
            "--checkpoint", str(tmp_path / "run.ckpt"), "--resume"]
    assert main(argv) == 0, capsys.readouterr().err
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["command"] == "lenet-engine " + " ".join(argv)
    assert log["recipe"]["optimizer"] == "sdlm" and log["recipe"]["augment"]["shear"] == 0.3
    assert len(log["history"]["val_accuracy"]) == 2 and log["train_seconds"] > 0
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checkpoint_file.load(tmp_path / "run.ckpt")[2]["epoch"] == 2
    assert le.load(out).metadata["recipe"]["seed"] == 0
    plain = tmp_path / "plain.txt"
    plain.write_text("")  # the log gets the permissions of any file written with open()
    assert (tmp_path / "log.json").stat().st_mode == plain.stat().st_mode


@pytest.mark.parametrize("option", ["--out", "--log", "--curves", "--checkpoint"])
def test_train_refuses_an_unwritable_output_before_training(option, tmp_path, capsys):
    paths = {o: str(tmp_path / f"ok{o}") for o in ("--out", "--log", "--curves", "--checkpoint")}
    paths[option] = str(tmp_path / "no such folder" / "file")
    argv = ["train", "--arch", "classic", "--data-root", str(tmp_path / "no data"), "--no-download"]
    for o, path in paths.items():
        argv += [o, path]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{option} {paths[option]}: the folder" in err and "does not exist" in err  # not a missing-data error
    paths[option] = str(tmp_path)
    argv = argv[:6] + [a for o, path in paths.items() for a in (o, path)]
    assert main(argv) == 2
    assert f"{option} {tmp_path} is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("spec, message", [("shear", "key=number"), ("tilt=3", "unknown distortion"),
                                           ("scale=0.9", "scale")])
def test_train_refuses_bad_augment_specs(spec, message, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--arch", "classic", "--out", "x", "--augment", spec])
    assert message in capsys.readouterr().err


def test_mu_and_lr_may_change_per_epoch(digits):
    x, y = digits
    model, history = _train(x, y, epochs=3, batch_size=8, optimizer="sdlm", mu=[0.5, 1.0],
                            lr=[1e-4, 5e-5], curvature_digits=50)
    recipe = model.metadata["recipe"]
    assert recipe["mu"] == [0.5, 1.0] and recipe["lr"] == [1e-4, 5e-5]
    assert history["lr"] == [1e-4, 5e-5, 5e-5]
    _, history = _train(x, y, epochs=1, batch_size=8, lr=np.float32(1e-4), optimizer="sdlm",
                        mu=np.float64(0.5), curvature_digits=50)  # numpy scalars are numbers
    assert history["lr"] == [pytest.approx(1e-4)]
    with pytest.raises(ValueError, match="lr must be a positive number"):  # a 0-d array is not (was a TypeError)
        _train(x, y, epochs=1, lr=np.array(1e-4))
    with pytest.raises(ValueError, match="mu"):
        _train(x, y, epochs=1, optimizer="sdlm", mu=[])


def test_resume_refuses_checkpoints_past_the_epochs_asked_for_and_bad_optimizer_state(digits, tmp_path):
    x, y = digits
    path = tmp_path / "run.ckpt"
    _train(x, y, epochs=2, batch_size=16, checkpoint=path)
    with pytest.raises(ValueError, match="past the 1 asked for"):
        _train(x, y, epochs=1, batch_size=16, checkpoint=path, resume=True)
    # The same schedule written as a number or as a one-entry list resumes.
    _train(x, y, epochs=2, batch_size=16, lr=[1e-3], checkpoint=path, resume=True)
    state, opt, record = checkpoint_file.load(path)
    opt["m/c1.weight"] = opt["m/c1.weight"][:1]
    checkpoint_file.save(path, state, opt, record)
    with pytest.raises(WeightsFileError, match="c1.weight"):
        _train(x, y, epochs=3, batch_size=16, checkpoint=path, resume=True)


@pytest.mark.parametrize("optimizer, option, message", [
    ("adam", {"mu": 0.5}, "mu is SDLM's"), ("sgd", {"curvature_digits": 50}, "curvature_digits is SDLM's"),
    ("adam", {"momentum": 0.5}, "momentum is SGD's"), ("sdlm", {"momentum": 0.0}, "momentum is SGD's"),
    ("adamw", {"momentum": 0.5}, "unknown optimizer 'adamw'"),
])
def test_options_of_other_optimizers_are_refused(digits, optimizer, option, message):
    with pytest.raises(ValueError, match=message):
        le.LeNet5("modern").fit(digits[0][:8], digits[1][:8], optimizer=optimizer, verbose=0, **option)


def test_map_j_is_refused_for_a_loss_without_it(digits):
    with pytest.raises(ValueError, match="map_j is the MAP loss's"):
        le.LeNet5("modern").fit(digits[0][:8], digits[1][:8], map_j=1.0, verbose=0)


def test_resume_without_a_checkpoint_is_refused(capsys):
    assert main(["train", "--arch", "classic", "--out", "x.safetensors", "--resume"]) == 2
    assert "--resume goes on from --checkpoint PATH" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["classic", "modern"])
def test_a_workspace_reuses_buffers_and_changes_no_result(arch, digits):
    # fit's Workspace hands each step the buffers of the step before: the same results as new
    # arrays, through a change of batch size (an epoch's last, shorter batch) and back.
    spec = get_architecture(arch)
    k = get_backend("cython" if "cython" in le.backends() else "numpy")
    state = le.LeNet5(arch, seed=0, backend="numpy").state_dict()
    workspace = network.Workspace()
    seen = []
    for n in (16, 16, 5, 16, 16):
        x = to_network_input(digits[0][:n], spec.background, spec.ink)
        loss, out, grads = network.loss_and_gradients(spec, k, state, x, digits[1][:n], 1, 1.0, workspace)
        want_loss, want_out, want_grads = network.loss_and_gradients(spec, k, state, x, digits[1][:n], 1, 1.0)
        assert loss == want_loss
        np.testing.assert_array_equal(out, want_out)
        for name in want_grads:
            np.testing.assert_array_equal(grads[name], want_grads[name])
        seen.append(id(out))
    assert seen[0] == seen[1] and seen[3] == seen[4]  # reused while the batch size stays
