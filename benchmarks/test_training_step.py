"""One training step per backend and architecture: a batch of 128 through forward, backward and Adam.

Timed through `LeNet5.fit` on exactly one batch (epochs=1, batch_size=128), so
the benchmark follows whatever fit runs; fit's own bookkeeping around the
step (a copy of the 60,000 weights, finiteness checks) costs well under 1% of
it. A first, untimed fit compiles (numba) or loads the kernels.
"""

import numpy as np
import pytest

import lenet_engine as le
from lenet_engine.cli import load_samples

BATCH = 128


@pytest.fixture(scope="module")
def batch():
    images, labels = load_samples()
    return np.resize(images, (BATCH, 28, 28)), np.resize(labels, BATCH)


@pytest.mark.parametrize("backend", le.backends())
@pytest.mark.parametrize("arch", ["classic", "modern"])
def test_training_step(benchmark, batch, arch, backend):
    x, y = batch
    model = le.LeNet5(arch, seed=0, backend=backend)
    step = dict(epochs=1, batch_size=BATCH, optimizer="adam", verbose=0)
    model.fit(x, y, **step)  # compile / warm up outside the timing
    benchmark.group = f"training step {arch}, batch {BATCH} (forward + backward + Adam)"
    benchmark.extra_info.update(arch=arch, backend=backend, digits=BATCH, threads=le.get_num_threads())
    benchmark(model.fit, x, y, **step)
