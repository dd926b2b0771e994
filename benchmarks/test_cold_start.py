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
def test_cold_start(benchmark, backend, tmp_path):
    command = [sys.executable, "-c", SCRIPT.format(backend=backend)]
    # From an empty folder: run from a checkout, `python -c` would import the source tree's
    # lenet_engine (first on sys.path) instead of the installed one.
    options = {"check": True, "cwd": tmp_path}
    subprocess.run(command, **options)  # compile and cache first
    benchmark.group = "cold start: new process to first prediction"
    benchmark.extra_info.update(backend=backend)
    benchmark.pedantic(subprocess.run, args=(command,), kwargs=options, rounds=5, iterations=1)
