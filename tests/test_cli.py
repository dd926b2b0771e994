"""The lenet-engine command: demo, eval, train, predict, info, and its error messages."""

import json
import shutil
import subprocess
import sysconfig

import numpy as np
import pytest

import lenet_engine as le
from lenet_engine.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_classifies_the_shipped_samples(capsys):
    code, out, err = run(capsys, "demo", "--backend", "numba")
    assert code == 0, err
    assert "true 7  predicted 7" in out
    assert "accuracy on 200 shipped test digits" in out
    assert "latency, one digit at a time (median)" in out and "digits/s" in out
    accuracy = float(out.split("accuracy on 200 shipped test digits: ")[1].split("%")[0])
    assert accuracy >= 98.0


def test_console_script_is_installed():
    # The script sits beside this interpreter's other scripts (the venv's bin/).
    exe = shutil.which("lenet-engine", path=sysconfig.get_path("scripts"))
    assert exe, f"no lenet-engine console script in {sysconfig.get_path('scripts')}"
    done = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"lenet_engine {le.__version__}" in done.stdout
    assert "backends available: " in done.stdout and "numba" in done.stdout
    assert "threads: " in done.stdout


@pytest.mark.parametrize("model", ["classic", "modern"])
def test_eval_reports_accuracy_on_the_test_set(model, mnist_root, capsys):
    code, out, err = run(capsys, "eval", "--model", model, "--data-root", str(mnist_root),
                         "--no-download", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["digits"] == 10000 and result["accuracy"] >= 0.986
    assert result["digits_per_second"] > 0


def test_eval_without_data_says_where_to_put_it(tmp_path, capsys):
    code, out, err = run(capsys, "eval", "--data-root", str(tmp_path), "--no-download")
    assert code == 2
    assert str(tmp_path) in err and "LENET_ENGINE_DATA" in err


def test_train_writes_weights_that_record_the_command(tmp_path, mnist_root, capsys):
    out_path = tmp_path / "tiny.safetensors"
    argv = ["--threads", "2", "train", "--arch", "modern", "--epochs", "1", "--limit", "500",
            "--data-root", str(mnist_root), "--no-download", "--quiet", "--out", str(out_path)]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    model = le.load(out_path)
    meta = model.metadata
    assert meta["command"] == "lenet-engine " + " ".join(argv)
    assert meta["recipe"]["train_digits"] == 500 and meta["recipe"]["epochs"] == 1
    assert 0.5 < meta["test_accuracy"] <= 1.0 and len(meta["history"]["val_accuracy"]) == 1


def test_predict_npy_files(tmp_path, mnist_test, capsys):
    images, labels = mnist_test
    batch, single = tmp_path / "batch.npy", tmp_path / "one.npy"
    np.save(batch, images[:3])
    np.save(single, images[3])
    code, out, err = run(capsys, "predict", "--model", "modern", str(batch), str(single), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["label"] for r in rows] == [int(v) for v in labels[:4]]
    assert [(r["file"], r["index"]) for r in rows][-1] == (str(single), 0)
    code, out, err = run(capsys, "predict", str(batch))
    assert code == 0 and len(out.strip().splitlines()) == 3


@pytest.mark.parametrize("content, message", [
    (np.zeros((2, 5, 5), np.uint8), "shape"),
    (np.array([{"a": 1}], dtype=object), "pickle"),
])
def test_predict_bad_files_fail_cleanly(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npy"
    np.save(path, content, allow_pickle=True)
    code, out, err = run(capsys, "predict", str(path))
    assert code == 2 and message in err and err.startswith("lenet-engine predict: error:")


def test_unknown_model_fails_cleanly(capsys):
    code, out, err = run(capsys, "demo", "--model", "lenet9")
    assert code == 2 and "unknown model 'lenet9'" in err


def test_train_refuses_a_negative_limit(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--arch", "modern", "--limit", "-5", "--out", "x.safetensors"])
    assert "expected a whole number >= 0" in capsys.readouterr().err


def test_train_divergence_is_a_one_line_error(tmp_path, mnist_root, capsys):
    code, out, err = run(capsys, "train", "--arch", "modern", "--epochs", "1", "--limit", "64",
                         "--optimizer", "sgd", "--lr", "1e38", "--data-root", str(mnist_root),
                         "--quiet", "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "diverged" in err
    assert not (tmp_path / "x.safetensors").exists()
