"""Cold start and memory of one runtime, each measured in a fresh Python process.

The parent (compare.py) calls cold_start() and memory(); they run this file
as a script, one new process per measurement, so no runtime's imports,
thread pools or allocator state pollute another's numbers.

    python benchmarks/fresh_process.py cold RUNTIME ARCH WORKDIR THREADS
    python benchmarks/fresh_process.py memory RUNTIME ARCH WORKDIR THREADS N
    python benchmarks/fresh_process.py train RUNTIME THREADS DIGITS

cold:   import the runtime, load the model (session creation, compilation,
        JIT cache loading included), predict one digit, exit. The parent
        times the whole process from outside, interpreter start included
        (the same ~30 ms for every runtime).
memory: after a warm-up call on 64 digits (which starts every thread pool and
        loads or compiles the code, none of which is counted), predict N digits in one call and print, as
        JSON, the growth of the process's resident memory (peak during the
        call minus before it; Linux's VmHWM, reset through
        /proc/self/clear_refs) and tracemalloc's peak (what NumPy and Python
        allocated: the engine's whole story, only the input conversion for
        runtimes that allocate natively).
train:  train modern with Adam, batch 128 (peers.training_epoch): a
        ten-batch warm-up, then two timed passes over the first DIGITS MNIST
        training digits; prints their seconds. A process of its own also keeps
        one runtime's spinning thread pool from slowing the next one down.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WARM_UP = 64  # digits predicted before the memory measurement starts
WARM_UP_BATCHES = 10  # training batches before the timed passes
TIMED_PASSES = 2  # a training run is many passes in one process; the first runs slower


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _child(argv):
    sys.path.insert(0, str(HERE))
    import peers

    if argv[0] == "train":
        _train_child(peers, argv[1], int(argv[2]), int(argv[3]))
        return
    mode, name, arch, workdir, threads = argv[:5]
    run = peers.runner(name, arch, workdir, int(threads))
    if mode == "cold":
        out = run(np.zeros((1, 28, 28), np.uint8))
        assert out.shape == (1, 10)
        return
    run(np.zeros((WARM_UP, 28, 28), np.uint8))  # thread pools up, code loaded: not counted
    import gc
    import tracemalloc

    n = int(argv[5])
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    gc.collect()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    tracemalloc.start()
    out = run(digits)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status_kib("VmHWM")
    print(json.dumps({"rss_before_mib": before / 1024, "rss_growth_mib": (peak - before) / 1024,
                      "tracemalloc_peak_mib": traced_peak / 2**20,
                      "input_mib": digits.nbytes / 2**20, "output_mib": out.nbytes / 2**20}))


def _train_child(peers, name, threads, n):
    import lenet_engine as le

    digits, labels = le.datasets.load_mnist("train")
    epoch = peers.training_epoch(name, threads, digits[:n], labels[:n])
    epoch(WARM_UP_BATCHES * 128)  # compilation, thread pools, the allocator's first pages: not counted
    seconds = []
    for _ in range(TIMED_PASSES):
        started = time.perf_counter()
        epoch(n)
        seconds.append(time.perf_counter() - started)
    print(json.dumps({"seconds": seconds}))


def _command(*args):
    return [sys.executable, str(Path(__file__).resolve()), *map(str, args)]


def _environment(threads):
    env = dict(os.environ)
    env["LENET_ENGINE_NUM_THREADS"] = str(threads)
    return env


def cold_start(names, arch, workdir, threads, runs):
    """{runtime: [seconds per fresh process]}: one untimed run each first (disk caches, Numba's cache),
    then `runs` rounds taking the runtimes in turn, so slow moments of a noisy machine hit them alike."""
    times = {name: [] for name in names}
    env = _environment(threads)
    for name in names:
        subprocess.run(_command("cold", name, arch, workdir, threads), check=True, env=env)
    for _ in range(runs):
        for name in names:
            started = time.perf_counter()
            subprocess.run(_command("cold", name, arch, workdir, threads), check=True, env=env)
            times[name].append(time.perf_counter() - started)
    return times


def memory(name, arch, workdir, threads, n):
    """The child's JSON report (see the module docstring) for predicting n digits with `name`."""
    done = subprocess.run(_command("memory", name, arch, workdir, threads, n), check=True,
                          env=_environment(threads), capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def training_seconds(name, threads, digits):
    """[seconds per pass] of one fresh process of `name` training on `digits` MNIST digits (see train above)."""
    done = subprocess.run(_command("train", name, threads, digits), check=True,
                          env=_environment(threads), capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


if __name__ == "__main__":
    _child(sys.argv[1:])
