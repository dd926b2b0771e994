"""Inference per backend and architecture: one digit (latency) and a batch (throughput), pytest-benchmark.

Run with `pytest benchmarks/`; each group (one architecture, one batch size)
lists the backends side by side, and the terminal summary prints digits/s
and the speed-up over the NumPy reference measured in the same run. JIT
compilation happens in the warm-up call, outside the timings.
"""

import numpy as np
import pytest

import lenet_engine as le
from lenet_engine.cli import load_samples

BATCH = 1024


@pytest.fixture(scope="module")
def batch():
    images, _ = load_samples()
    reps = -(-BATCH // len(images))
    return np.ascontiguousarray(np.tile(images, (reps, 1, 1))[:BATCH])


@pytest.mark.parametrize("backend", le.backends())
@pytest.mark.parametrize("arch", ["classic", "modern"])
@pytest.mark.parametrize("n", [1, BATCH])
def test_predict(benchmark, batch, n, arch, backend):
    model = le.load(arch, backend=backend)
    model.predict(batch[:8])  # compile / warm up outside the timing
    digits = batch[:n]
    benchmark.group = f"predict {arch}, batch {n}"
    benchmark.extra_info.update(arch=arch, backend=backend, digits=n, threads=le.get_num_threads())
    labels = benchmark(model.predict, digits)
    assert labels.shape == (n,)
