"""NumPy reference: Euclidean RBF output units. Twins: kernels/numba/rbf.py (and kernels/cython/rbf.pyx)."""

import numpy as np


def rbf_forward(out, x, centers, n_threads):
    """out[n, i] = sum_j (x[n, j] - centers[i, j])^2.   out: (N, U)   x: (N, D)   centers: (U, D)"""
    diff = x[:, None, :] - centers[None, :, :]
    out[...] = (diff * diff).sum(axis=2)


def rbf_backward(dx, dcenters, dout, x, centers, n_threads):
    """Gradients of rbf_forward; d* shaped like their primal."""
    diff = x[:, None, :] - centers[None, :, :]
    g = 2.0 * dout[:, :, None] * diff
    dx[...] = g.sum(axis=1)
    dcenters[...] = -g.sum(axis=0)


def rbf_curvature(hx, hcenters, hout, dout, x, centers, n_threads):
    """Diagonal curvature of the loss through the RBF units (SDLM's second-order backward).

    Gauss-Newton, hout_i * (dy_i/dz)^2 with dy_i/dz = +-2 (x - c_i), plus the units'
    own curvature, dout_i * d2y_i/dz2 = 2 dout_i, summed over units (for hx) or the
    batch (for hcenters) and clamped at 0 (SDLM needs h >= 0; under the MAP loss the
    sum over units, 2 (1 - sum_i p_i) / N, is never negative).
    hx: (N, D)   hcenters: (U, D)   hout, dout: (N, U)   x, centers as rbf_forward.
    """
    diff2 = (x[:, None, :] - centers[None, :, :]) ** 2
    gauss_newton = 4.0 * hout[:, :, None] * diff2
    hx[...] = gauss_newton.sum(axis=1) + np.maximum(2.0 * dout.sum(axis=1), 0.0)[:, None]
    hcenters[...] = gauss_newton.sum(axis=0) + np.maximum(2.0 * dout.sum(axis=0), 0.0)[:, None]
