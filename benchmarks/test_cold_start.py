"""Cold start: a fresh Python process, import, load the shipped model, first prediction.

Timed from outside (process creation included), after one untimed run that
fills the Numba disk cache, so what is measured is a user's second and later
starts. The terminal summary prints the medians.
"""

import subprocess
import sys

import pytest

import lenet_engine as le

SCRIPT = (
    "import numpy as np, lenet_engine as le\n"
    "m = le.load('classic', backend='{backend}')\n"
    "m.predict(np.zeros((1, 28, 28), np.uint8))\n"
)


@pytest.mark.parametrize("backend", le.backends())
def test_cold_start(benchmark, backend):
    command = [sys.executable, "-c", SCRIPT.format(backend=backend)]
    subprocess.run(command, check=True)  # compile and cache first
    benchmark.group = "cold start: new process to first prediction"
    benchmark.extra_info.update(backend=backend)
    benchmark.pedantic(subprocess.run, args=(command,), kwargs={"check": True}, rounds=5, iterations=1)
