"""lenet_engine.dask: predict over dask arrays, predict_files into Parquet, the CLI, and faults on a real cluster.

The default tier runs on Dask's local threads; the `slow` tier starts one
distributed.LocalCluster of 2 single-threaded worker processes for the module
and kills a worker by pid, limits the workers' memory, and runs the CLI's local:N.
"""

import gzip
import os
import signal
import threading
import time

import numpy as np
import pytest

from conftest import require

da = require("dask.array")
distributed = require("distributed")
pd = require("pandas")
require("pyarrow")

import lenet_engine as le
from lenet_engine import cli
from lenet_engine import dask as le_dask
from lenet_engine.backends import thread_limit

CHUNK_DIGITS = 4096
# A worker's memory limit. Its baseline is what it imports, about 320 MiB once dask.array pulls in
# pydata/sparse (and with it Numba and SciPy) where that is installed, as dask-ml now has it: at 400
# MiB the worker paused at 80% before the first task and the memory test stalled.
WORKER_MEMORY = 800 * 2**20
INPUT_BYTES = 3 * WORKER_MEMORY // 2  # the memory test's input: 1.2 GiB, more than a worker may hold


@pytest.fixture(scope="module")
def model():
    return le.load("modern")


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:6000]


def _write_idx(path, digits, compress=False):
    data = b"\x00\x00\x08\x03" + b"".join(int(n).to_bytes(4, "big") for n in digits.shape) + digits.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    """Good files of every kind, and bad ones: (folder, {name: digits or None for a bad file})."""
    folder = tmp_path_factory.mktemp("digits")
    np.save(folder / "a.npy", digits[:2500])
    np.save(folder / "b.npy", (digits[2500:2600] / 255.0).astype(np.float32))
    _write_idx(folder / "c.idx", digits[2600:3100])
    _write_idx(folder / "d.idx.gz", digits[3100:4000], compress=True)
    _write_idx(folder / "e.idx.gz", digits[4000:4100], compress=True)
    # Bad: not digits at all, a labels-shaped array, a gzip stream cut short, float pixels out of range.
    (folder / "f.npy").write_bytes(b"not a file of digits")
    np.save(folder / "g.npy", np.zeros(10, dtype=np.uint8))
    (folder / "h.idx.gz").write_bytes((folder / "d.idx.gz").read_bytes()[:-5000])
    np.save(folder / "i.npy", np.full((3, 28, 28), 2.0, dtype=np.float32))
    return folder


def _expected_rows(model, files):
    rows = []
    for name, digits in [("a.npy", np.load(files / "a.npy")), ("b.npy", np.load(files / "b.npy"))] + [
            (name, le.datasets.read_idx(files / name)) for name in ("c.idx", "d.idx.gz", "e.idx.gz")]:
        probs = model.predict_proba(digits)
        labels = model.predict(digits)
        rows.append(pd.DataFrame({"file": str(files / name), "index": np.arange(len(digits)), "label": labels,
                                  "probability": probs[np.arange(len(labels)), labels]}))
    return pd.concat(rows, ignore_index=True)


def _read(out):
    return pd.read_parquet(out).reset_index(drop=True)


# --- dask arrays, on local threads ------------------------------------------------


def test_predict_over_dask_arrays_equals_in_process(model, digits):
    x = da.from_array(digits, chunks=1000)
    np.testing.assert_array_equal(le_dask.predict(model, x).compute(), model.predict(digits))
    flat = da.from_array((digits / 255.0).reshape(-1, 784), chunks=(700, 392))  # split pixels are rejoined
    probs = le_dask.predict(model, flat, proba=True)
    assert probs.shape == (len(digits), 10) and probs.dtype == np.float32
    np.testing.assert_array_equal(probs.compute(), model.predict_proba(digits / 255.0))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 28, 28), dtype=np.uint8), "must be a dask array"),
    (da.zeros((4, 28, 28), dtype=np.int32), "dtype int32"),
    (da.zeros((4, 28, 27), dtype=np.uint8), r"shape \(4, 28, 27\)"),
    (da.zeros((4, 783), dtype=np.float32), r"shape \(4, 783\)"),
])
def test_predict_refuses_what_is_not_digits_before_any_kernel_runs(model, bad, message):
    with pytest.raises(le.InvalidInputError, match=message):
        le_dask.predict(model, bad)


def test_bad_float_values_fail_the_computation_naming_the_problem(model):
    lazy = le_dask.predict(model, da.full((10, 28, 28), 1.5, dtype=np.float32, chunks=5))
    with pytest.raises(le.InvalidInputError, match="divide by 255"):
        lazy.compute()


def test_thread_limit_caps_the_calling_thread_only():
    seen = {}
    with thread_limit(1):
        seen["here"] = le.get_num_threads()
        other = threading.Thread(target=lambda: seen.update(other=le.get_num_threads()))
        other.start()
        other.join()
    assert seen == {"here": 1, "other": le.get_num_threads()}


def test_int8_models_predict_over_dask_arrays_and_files_as_in_process(digits, files, tmp_path):
    q = le.load("modern", precision="int8")
    x = da.from_array(digits[:3000], chunks=700)
    np.testing.assert_array_equal(le_dask.predict(q, x).compute(), q.predict(digits[:3000]))
    np.testing.assert_array_equal(le_dask.predict(q, x, proba=True).compute(), q.predict_proba(digits[:3000]))
    out = tmp_path / "r.parquet"
    assert cli.main(["predict", "--model", "modern", "--precision", "int8", str(files / "c.idx"),
                     "--out", str(out)]) == 0
    np.testing.assert_array_equal(_read(out)["label"], q.predict(le.datasets.read_idx(files / "c.idx")))


def test_predict_refuses_what_is_not_a_model(digits):
    with pytest.raises(TypeError, match="LeNet5"):
        le_dask.predict("modern", da.from_array(digits))


# --- predict_files, on local threads ----------------------------------------------


def test_predict_files_writes_every_digit_once_and_one_error_row_per_bad_file(model, files, tmp_path):
    summary = le_dask.predict_files(model, str(files / "*"), tmp_path / "out.parquet", chunk=300)
    table = _read(tmp_path / "out.parquet")
    good = table[table.error.isna() & (table.file != str(files / "h.idx.gz"))]
    pd.testing.assert_frame_equal(good.drop(columns="error").reset_index(drop=True), _expected_rows(model, files),
                                  check_dtype=False)
    bad = table[table.error.notna()].set_index("file")
    assert sorted(bad.index) == [str(files / n) for n in ("f.npy", "g.npy", "h.idx.gz", "i.npy")]
    assert (bad.label == -1).all() and bad.probability.isna().all()
    assert bad.error[str(files / "f.npy")].startswith("UnsupportedImageError")
    assert "shape (10,)" in bad.error[str(files / "g.npy")]
    assert bad.error[str(files / "h.idx.gz")].startswith("TruncatedDatasetError")
    assert "range over [2, 2]" in bad.error[str(files / "i.npy")]
    # The truncated stream keeps the rows it scored before the break: none lost, none invented.
    scored_h = table[(table.file == str(files / "h.idx.gz")) & table.error.isna()]
    assert bad.loc[str(files / "h.idx.gz"), "index"] == len(scored_h) > 0
    assert summary == {"out": str(tmp_path / "out.parquet"), "files": 9, "parts": summary["parts"],
                       "digits": len(good) + len(scored_h), "errors": 4}


def test_on_error_raise_fails_naming_the_file_and_writes_nothing(model, files, tmp_path):
    out = tmp_path / "out.parquet"
    with pytest.raises(le.InvalidInputError, match="i.npy"):
        le_dask.predict_files(model, [files / "a.npy", files / "i.npy"], out, on_error="raise")
    with pytest.raises(le.UnsupportedImageError, match="f.npy"):
        le_dask.predict_files(model, [files / "a.npy", files / "f.npy"], out, on_error="raise")
    assert os.listdir(tmp_path) == []  # no dataset, no staging folder left behind


def test_an_existing_output_is_kept_unless_overwritten(model, files, tmp_path):
    out = tmp_path / "out.parquet"
    le_dask.predict_files(model, files / "e.idx.gz", out)
    with pytest.raises(FileExistsError, match="exists"):
        le_dask.predict_files(model, files / "c.idx", out)
    le_dask.predict_files(model, files / "c.idx", out, overwrite=True)
    assert len(_read(out)) == 500
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a dataset"):
        le_dask.predict_files(model, files / "c.idx", tmp_path / "mine", overwrite=True)


def test_patterns_that_match_nothing_and_bad_options_are_refused(model, files, tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        le_dask.predict_files(model, str(files / "*.png"), tmp_path / "o")
    with pytest.raises(ValueError, match="on_error"):
        le_dask.predict_files(model, files / "a.npy", tmp_path / "o", on_error="ignore")
    with pytest.raises(ValueError, match="chunk"):
        le_dask.predict_files(model, files / "a.npy", tmp_path / "o", chunk=0)


def test_cli_writes_the_dataset_and_exits_1_when_a_file_is_bad(files, tmp_path, capsys):
    out = tmp_path / "r.parquet"
    assert cli.main(["predict", "--model", "modern", str(files / "c.idx"), "--out", str(out)]) == 0
    assert len(_read(out)) == 500 and "500 digits from 1 files" in capsys.readouterr().out
    assert cli.main(["predict", "--model", "modern", str(files / "c.idx"), str(files / "f.npy"),
                     "--out", str(tmp_path / "s.parquet")]) == 1
    assert "could not be scored" in capsys.readouterr().err
    assert cli.main(["predict", str(files / "c.idx"), "--scheduler", "local:2"]) == 2
    assert "give --out" in capsys.readouterr().err
    assert cli.main(["predict", str(files / "c.idx"), "--scheduler", "local:0", "--out", str(tmp_path / "t")]) == 2
    assert "local:N" in capsys.readouterr().err


# --- a real cluster: 2 worker processes of one thread -----------------------------------


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  memory_limit=WORKER_MEMORY) as cluster, distributed.Client(cluster) as client:
        yield client


def _peak_rss_reset():
    # Writing 5 to clear_refs resets the kernel's peak-RSS record (VmHWM) of this process.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _noise_digits(block_info=None):
    shape = block_info[None]["chunk-shape"]
    seed = block_info[None]["chunk-location"][0]
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.slow
def test_cluster_predicts_as_in_process_and_sends_the_model_once_per_worker(client, model, digits):
    assert len(client.scheduler_info()["workers"]) == 2
    labels = le_dask.predict(model, da.from_array(digits, chunks=250))
    np.testing.assert_array_equal(labels.compute(), model.predict(digits))
    incoming = client.run(lambda dask_worker: [str(key) for entry in dask_worker.transfer_incoming_log
                                               for key in entry["keys"]])
    fetched = [key for keys in incoming.values() for key in keys if key.startswith("lenet5-model-")]
    assert len(fetched) <= 1  # 24 tasks, 2 workers: the model moved at most once, to the worker without it


@pytest.mark.slow
def test_worker_memory_stays_bounded_by_the_chunk_on_inputs_larger_than_a_worker(client, model):
    n = INPUT_BYTES // 784  # more than a worker's whole memory limit
    x = da.map_blocks(_noise_digits, dtype=np.uint8, chunks=((CHUNK_DIGITS,) * (n // CHUNK_DIGITS), (28,), (28,)))
    pids = client.run(os.getpid)
    client.run(_peak_rss_reset)
    before = client.run(_status, "VmRSS")
    counts = da.bincount(le_dask.predict(model, x), minlength=10).compute()
    peaks = client.run(_status, "VmHWM")
    assert counts.sum() == x.shape[0] > INPUT_BYTES / 784 - CHUNK_DIGITS
    assert client.run(os.getpid) == pids  # no worker was restarted for its memory
    chunk_bytes = CHUNK_DIGITS * 784
    for address, peak in peaks.items():
        # The worker's peak while scoring 1.2 GB: its baseline plus a few chunks, far below the input.
        print(f"worker {address}: peak RSS {peak / 2**20:.0f} MiB scoring {x.nbytes / 2**20:.0f} MiB "
              f"(RSS before {before[address] / 2**20:.0f} MiB, chunk {chunk_bytes / 2**20:.1f} MiB)")
        assert peak - before[address] < 20 * chunk_bytes < x.nbytes / 16  # measured: about 20 MiB


@pytest.fixture
def unlimited_client():
    """A cluster of its own, without memory limits: the module's cluster, after the memory test,
    can sit near its memory limit, and a worker paused there stalled the fault test in CI."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  memory_limit=0) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.slow
def test_a_worker_killed_mid_job_still_gives_every_digit_once(unlimited_client, model, mnist_train, tmp_path):
    client = unlimited_client
    digits = mnist_train[0][:40000]
    np.save(tmp_path / "train.npy", digits)
    out = tmp_path / "out.parquet"
    job = {}
    thread = threading.Thread(target=lambda: job.update(summary=le_dask.predict_files(
        le.load("modern"), tmp_path / "train.npy", out, chunk=1000)))
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:  # a worker with a part in hand, after some are done
        done = list(tmp_path.glob(".out.parquet.partial-*/part-*.parquet"))
        busy = [w for w, keys in client.processing().items() if any("write_part" in str(k) for k in keys)]
        if len(done) >= 3 and busy:
            victim = busy[0]
        time.sleep(0.01)
    assert victim is not None, "the job ended before a worker could be killed mid-job"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=180)
    assert not list(tmp_path.glob(".out.parquet.partial-*")), "the job did not finish"
    assert job["summary"]["digits"] == len(digits) and job["summary"]["errors"] == 0
    table = _read(out)
    assert table.error.isna().all()
    np.testing.assert_array_equal(table["index"], np.arange(len(digits)))  # each digit once, in order
    np.testing.assert_array_equal(table.label, model.predict(digits))
    probs = model.predict_proba(digits)
    np.testing.assert_array_equal(table.probability, probs[np.arange(len(digits)), table.label])
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed one


@pytest.mark.slow
def test_cli_scores_on_a_local_cluster_of_worker_processes(files, tmp_path, capsys):
    out = tmp_path / "r.parquet"
    assert cli.main(["predict", "--model", "modern", str(files / "a.npy"), str(files / "d.idx.gz"),
                     "--scheduler", "local:2", "--chunk", "1000", "--out", str(out)]) == 0
    assert len(_read(out)) == 3400 and "3,400 digits from 2 files" in capsys.readouterr().out
