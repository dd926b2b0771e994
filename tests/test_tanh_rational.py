"""The compiled backends' tanh (kernels/tanh_rational.py) is within 1 ulp of the exact tanh, and
within 7 ulp as the fused forward pass (lenet5_forward) evaluates it, in float32 (P32, Q32)."""

import numpy as np
import pytest

from conftest import COMPILED_BACKENDS
from lenet_engine.backends import get_backend
from lenet_engine.kernels import tanh_rational


def ulp_error(y, x):
    exact = np.tanh(x.astype(np.float64))
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(y.astype(np.float64) - exact) / spacing


@pytest.fixture(scope="module")
def grid():
    dense = np.linspace(-12, 12, 1_000_001, dtype=np.float32)
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, 9.0, -9.0, 9.0001, 50.0, -50.0,
                        np.finfo(np.float32).max, -np.finfo(np.float32).max,
                        np.float32(1e-45), np.float32(-1e-40), np.inf, -np.inf], dtype=np.float32)
    small = np.geomspace(1e-38, 1, 100_001, dtype=np.float32)  # the small magnitudes, densely
    return np.concatenate([dense, special, small, -small])


def test_the_numpy_model_of_the_approximation(grid):
    assert ulp_error(tanh_rational.tanh_rational(grid), grid).max() <= 1.0
    z = np.linspace(0, tanh_rational.CLAMP ** 2, 100_001)
    assert np.polyval(tanh_rational.Q[::-1], z).min() >= 1.0  # no pole on the range
    assert tanh_rational.P[0] == tanh_rational.Q[0] == 1.0     # tanh(x) = x near 0


def test_the_fused_passes_rational():
    x = np.linspace(0, tanh_rational.CLAMP, 900_001)
    z = x * x
    approx = x * np.polyval(tanh_rational.P32[::-1], z) / np.polyval(tanh_rational.Q32[::-1], z)
    assert np.abs(approx[1:] / np.tanh(x[1:]) - 1).max() < 4e-8  # float32's rounding adds the rest
    assert np.polyval(tanh_rational.Q32[::-1], z).min() >= 1.0
    assert tanh_rational.P32[0] == tanh_rational.Q32[0] == 1.0


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_compiled_tanh_within_one_ulp(backend, grid):
    out = np.full_like(grid, np.nan)
    module = get_backend(backend)
    module.tanh_forward(out, grid, np.float32(1), np.float32(1), min(2, module.MAX_THREADS))
    assert ulp_error(out, grid).max() <= 1.0
    assert np.abs(out).max() <= 1.0
    np.testing.assert_array_equal(out, tanh_rational.tanh_rational(grid))
    assert np.array_equal(np.signbit(out[grid == 0]), np.signbit(grid[grid == 0]))


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_nan_stays_nan(backend):
    x = np.array([np.nan, -np.nan, 0.5, np.nan], dtype=np.float32)
    out = np.zeros_like(x)
    get_backend(backend).tanh_forward(out, x, np.float32(1.7159), np.float32(2 / 3), 1)
    assert np.isnan(out[[0, 1, 3]]).all() and np.isfinite(out[2])


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_fused_forward_tanh_within_seven_ulp(backend, grid):
    out = grid.copy()
    get_backend(backend).lenet5_squash(out, np.float32(1), np.float32(1), 1)
    finite = np.isfinite(grid)
    errors = ulp_error(out[finite], grid[finite])
    assert errors.max() <= 7.0
    assert errors.mean() <= 1.0
    np.testing.assert_array_equal(out[~finite], np.sign(grid[~finite]))


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_fused_forward_squash_scales_and_keeps_nan(backend):
    x = np.array([np.nan, 0.5, -3.0, np.nan, 40.0, -0.0], dtype=np.float32)
    out = x.copy()
    get_backend(backend).lenet5_squash(out, np.float32(1.7159), np.float32(2 / 3), 1)
    want = x.copy()
    get_backend("numpy").lenet5_squash(want, np.float32(1.7159), np.float32(2 / 3), 1)
    assert np.isnan(out[[0, 3]]).all()
    np.testing.assert_allclose(out[[1, 2, 4, 5]], want[[1, 2, 4, 5]], rtol=1e-6, atol=0)
