"""The lenet-engine command: demo, eval, train, predict, visualize, info, and its error messages."""

import gzip
import json
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from test_images import DRAWN, upscaled_inverted

import lenet_engine as le
from conftest import require
from lenet_engine.cli import load_samples, main

Image = require("PIL.Image")


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
    (np.array([{"a": 1}], dtype=object), "not a readable .npy array"),
])
def test_predict_bad_files_fail_cleanly(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npy"
    np.save(path, content, allow_pickle=True)
    code, out, err = run(capsys, "predict", str(path))
    assert code == 2 and message in err and err.startswith("lenet-engine predict: error:")


def test_unknown_model_fails_cleanly(capsys):
    code, out, err = run(capsys, "demo", "--model", "lenet9")
    assert code == 2 and "unknown model 'lenet9'" in err


def test_train_sdlm_takes_the_curvature_sample_size(tmp_path, mnist_root, capsys):
    common = ["train", "--arch", "classic", "--epochs", "1", "--limit", "100", "--batch-size", "1",
              "--data-root", str(mnist_root), "--no-download", "--quiet", "--curvature-digits", "40"]
    code, out, err = run(capsys, *common, "--optimizer", "sdlm", "--mu", "0.5", "--out", str(tmp_path / "a.safetensors"))
    assert code == 0, err
    assert le.load(tmp_path / "a.safetensors").metadata["recipe"]["curvature_digits"] == 40
    code, out, err = run(capsys, *common, "--optimizer", "adam", "--out", str(tmp_path / "b.safetensors"))
    assert code == 2 and "curvature_digits is SDLM's" in err


def test_train_refuses_counts_out_of_range(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--arch", "modern", "--limit", "-5", "--out", "x.safetensors"])
    assert "expected a whole number >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--arch", "classic", "--curvature-digits", "0", "--out", "x.safetensors"])
    assert "expected a whole number >= 1, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--show", "-3"])
    assert "expected a whole number >= 0, got '-3'" in capsys.readouterr().err


def test_serve_refuses_a_port_past_65535(capsys):
    # uvicorn would bind 70000 - 65536 = 4464 and report 70000.
    with pytest.raises(SystemExit):
        main(["serve", "--model", "classic", "--port", "70000"])
    assert "expected a port number 0..65535, got '70000'" in capsys.readouterr().err


def test_train_divergence_is_a_one_line_error(tmp_path, mnist_root, capsys):
    code, out, err = run(capsys, "train", "--arch", "modern", "--epochs", "1", "--limit", "64",
                         "--optimizer", "sgd", "--lr", "1e38", "--data-root", str(mnist_root),
                         "--quiet", "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "diverged" in err
    assert not (tmp_path / "x.safetensors").exists()


# --- images, visualize, eval --report ------------------------------------------------------------


@pytest.fixture(scope="module")
def drawn_files(tmp_path_factory):
    """Digits drawn black on white at 200x200, as PNG, JPEG and BMP: {path: label}."""
    folder = tmp_path_factory.mktemp("drawn")
    files = {}
    for label, draw in DRAWN.items():
        image = draw()
        for fmt, suffix in (("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp")):
            path = folder / f"digit{label}.{suffix}"
            image.save(path, format=fmt)
            files[str(path)] = label
    return files


@pytest.mark.parametrize("model", ["classic", "modern"])
def test_predict_classifies_digits_drawn_black_on_white_at_200x200(model, drawn_files, tmp_path, mnist_test,
                                                                   capsys):
    files = dict(drawn_files)
    images, labels = mnist_test
    for i in range(5):  # MNIST test digits enlarged to 200x200 and inverted, as a scan would be
        path = tmp_path / f"mnist{i}.png"
        upscaled_inverted(images[i]).save(path)
        files[str(path)] = int(labels[i])
    code, out, err = run(capsys, "predict", "--model", model, "--json", *files)
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["file"], r["label"]) for r in rows] == list(files.items())
    assert all(0.5 < r["probability"] <= 1 and r["index"] == 0 for r in rows)
    code, out, err = run(capsys, "predict", "--model", model, *files)
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert code == 0 and [(f, int(label)) for f, label, _ in lines] == list(files.items())


def test_predict_mixes_images_npy_and_idx_files(tmp_path, drawn_files, mnist_test, capsys):
    images, labels = mnist_test
    png = next(p for p, label in drawn_files.items() if p.endswith(".png") and label == 7)
    npy = tmp_path / "three.npy"
    np.save(npy, images[:3])
    idx = tmp_path / "four-idx3-ubyte.gz"
    idx.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (4, 28, 28))
                                  + images[3:7].tobytes()))
    code, out, err = run(capsys, "predict", "--json", png, str(npy), str(idx))
    assert code == 0, err
    rows = json.loads(out)
    assert [r["label"] for r in rows] == [7] + [int(v) for v in labels[:7]]
    assert [(r["file"], r["index"]) for r in rows][:5] == [(png, 0), (str(npy), 0), (str(npy), 1), (str(npy), 2),
                                                          (str(idx), 0)]


def test_predict_invert_overrides_the_border_guess(tmp_path, drawn_files, capsys):
    png = next(p for p, label in drawn_files.items() if p.endswith(".png") and label == 7)
    code, out, err = run(capsys, "predict", "--invert", png)
    assert code == 0 and out.split("\t")[1] == "7"
    code, out, err = run(capsys, "predict", "--no-invert", png)
    assert code == 2 and "no digit found" in err and "--invert" in err
    light = tmp_path / "light.png"   # white on black: --invert turns it into a blank page
    Image.fromarray(255 - np.asarray(Image.open(png).convert("L"))).save(light)
    assert run(capsys, "predict", str(light))[1].split("\t")[1] == "7"
    code, out, err = run(capsys, "predict", "--invert", str(light))
    assert code == 2 and "light.png: no digit found" in err


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "bad.png: starts as a PNG file but its header is broken"),
    (b"GIF89a" + b"\x00" * 40, "not a PNG, JPEG or BMP image, a .npy array or an IDX file"),
])
def test_predict_bad_image_files_fail_cleanly(tmp_path, capsys, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    code, out, err = run(capsys, "predict", str(path))
    assert code == 2 and message in err and err.startswith("lenet-engine predict: error:") and out == ""


@pytest.mark.parametrize("model", ["classic", "modern"])
def test_visualize_writes_one_picture(model, drawn_files, tmp_path, capsys):
    require("matplotlib")
    png = next(p for p, label in drawn_files.items() if p.endswith(".png") and label == 4)
    out_path = tmp_path / "maps.png"
    code, out, err = run(capsys, "visualize", "--model", model, png, "-o", str(out_path))
    assert code == 0, err
    assert "predicted 4" in out and str(out_path) in out
    with Image.open(out_path) as picture:
        assert picture.format == "PNG" and picture.size == (1500, 820)
        # Not blank: the feature maps' reds and blues are there.
        pixels = np.asarray(picture.convert("RGB")).astype(int)
        assert ((pixels[..., 0] - pixels[..., 2]) > 100).mean() > 0.01
        assert ((pixels[..., 2] - pixels[..., 0]) > 100).mean() > 0.01


def test_visualize_picks_a_digit_of_a_batch(tmp_path, mnist_test, capsys):
    require("matplotlib")
    npy = tmp_path / "batch.npy"
    np.save(npy, mnist_test[0][:5])
    code, out, err = run(capsys, "visualize", str(npy), "--index", "4", "-o", str(tmp_path / "m.png"))
    assert code == 0 and f"batch.npy[4]: predicted {mnist_test[1][4]}" in out
    code, out, err = run(capsys, "visualize", str(npy), "--index", "5", "-o", str(tmp_path / "m.png"))
    assert code == 2 and "holds 5 digit(s): --index must be 0..4" in err
    for shape in [(), (784,)]:
        np.save(npy, np.zeros(shape, np.uint8))
        code, out, err = run(capsys, "visualize", str(npy), "-o", str(tmp_path / "m.png"))
        assert code == 2 and f"holds an array of shape {shape}, not digits" in err


def test_eval_report_writes_pictures_and_a_summary(mnist_root, tmp_path, capsys):
    require("matplotlib")
    folder = tmp_path / "report"
    code, out, err = run(capsys, "eval", "--model", "classic", "--data-root", str(mnist_root),
                         "--no-download", "--json", "--report", str(folder))
    assert code == 0, err
    result = json.loads(out)
    assert result["report"] == ["confusion_matrix.png", "misclassified.png", "summary.json"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["accuracy"] == result["accuracy"] and summary["errors"] == result["errors"]
    matrix = np.array(summary["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert matrix.trace() == 10_000 - summary["errors"] == round(10_000 * summary["accuracy"])
    assert summary["per_class_digits"] == {str(c): int(n) for c, n in enumerate(matrix.sum(axis=1))}
    for c in range(10):
        assert summary["per_class_accuracy"][str(c)] == pytest.approx(matrix[c, c] / matrix[c].sum())
    wrong = summary["misclassified"]
    assert len(wrong) == summary["errors"] and all(w["true"] != w["predicted"] for w in wrong)
    probabilities = [w["probability"] for w in wrong]
    assert probabilities == sorted(probabilities, reverse=True)
    model_info = summary["model"]
    assert model_info["arch"] == "classic" and model_info["model_name"] == "classic"
    assert model_info["test_accuracy"] == pytest.approx(summary["accuracy"])  # as recorded in the file
    # This run's numbers apart from the model's own (its training's thread count, say).
    assert summary["evaluation"]["threads"] == result["threads"] and "digits_per_second" not in model_info
    for name, size in (("confusion_matrix.png", (800, 720)), ("misclassified.png", None)):
        with Image.open(folder / name) as picture:
            assert picture.format == "PNG" and (size is None or picture.size == size)


def test_a_report_that_cannot_be_written_leaves_the_folder_as_it_was(tmp_path):
    require("matplotlib")
    from lenet_engine import report

    images, labels = load_samples()
    model = le.load("modern")
    folder = tmp_path / "report"
    report.write_report(folder, model, images, labels)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "misclassified.png").unlink()
    (folder / "misclassified.png").mkdir()  # in the way of one of the three files
    with pytest.raises(IsADirectoryError):
        report.write_report(folder, le.load("classic"), images, labels)
    assert (folder / "confusion_matrix.png").read_bytes() == before["confusion_matrix.png"]
    assert (folder / "summary.json").read_bytes() == before["summary.json"]
    summary = report.summarize(labels[:3], model.predict_proba(images[:3]))
    assert None in summary["per_class_accuracy"].values()  # classes with no digit have no accuracy
    assert report.summarize(labels[:0], np.zeros((0, 10)))["accuracy"] is None
    with pytest.raises(le.InvalidInputError, match=r"shape \(N, 10\)"):
        report.summarize(labels[:3], np.zeros((3, 9)))
    with pytest.raises(le.InvalidInputError, match="finite"):
        report.summarize(labels[:3], np.full((3, 10), np.nan))


def test_pictures_without_matplotlib_name_the_extra(monkeypatch, drawn_files, tmp_path, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib",
                                                                                            "matplotlib.figure"]:
        monkeypatch.setitem(sys.modules, name, None)
    png = next(iter(drawn_files))
    code, out, err = run(capsys, "visualize", png, "-o", str(tmp_path / "m.png"))
    assert code == 2 and "pip install 'lenet-engine[plot]'" in err
    assert not (tmp_path / "m.png").exists()


def test_a_reader_that_goes_away_stops_predict_quietly(tmp_path):
    # `lenet-engine predict digits.npy | head -1`: no "Broken pipe" error, SIGPIPE's status.
    np.save(tmp_path / "d.npy", np.resize(load_samples()[0], (3000, 28, 28)))
    process = subprocess.Popen([sys.executable, "-m", "lenet_engine.cli", "predict", str(tmp_path / "d.npy")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith(str(tmp_path / "d.npy").encode())
    process.stdout.close()
    assert process.wait(timeout=120) == 141
    assert process.stderr.read() == b""


def test_an_interrupted_train_is_one_line_naming_its_checkpoint(monkeypatch, capsys, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(le.LeNet5, "fit", interrupted)
    monkeypatch.setattr(le.datasets, "load_mnist", lambda *a, **k: load_samples())
    code = main(["train", "--arch", "modern", "--out", str(tmp_path / "m.safetensors"),
                 "--checkpoint", str(tmp_path / "run.ckpt")])
    err = capsys.readouterr().err
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err and "--resume" in err


def test_train_refuses_a_curves_format_before_training(capsys, tmp_path):
    require("matplotlib")
    code = main(["train", "--arch", "modern", "--out", str(tmp_path / "m.safetensors"),
                 "--curves", str(tmp_path / "c.jpeg2")])
    assert code == 2 and "matplotlib writes no .jpeg2 pictures" in capsys.readouterr().err


def test_visualize_writes_the_path_it_names(tmp_path, capsys):
    require("matplotlib")
    np.save(tmp_path / "one.npy", load_samples()[0][:1])
    code, out, err = run(capsys, "visualize", str(tmp_path / "one.npy"), "-o", str(tmp_path / "maps"))
    assert code == 0, err
    with Image.open(tmp_path / "maps") as picture:  # not maps.png, as matplotlib would name it
        assert picture.format == "PNG"
    assert not (tmp_path / "maps.png").exists()
    code, out, err = run(capsys, "visualize", str(tmp_path / "one.npy"), "-o", str(tmp_path))
    assert code == 2 and "is a folder" in err
    np.save(tmp_path / "none.npy", np.zeros((0, 28, 28), np.uint8))
    code, out, err = run(capsys, "visualize", str(tmp_path / "none.npy"), "-o", str(tmp_path / "m.png"))
    assert code == 2 and "holds no digits" in err
