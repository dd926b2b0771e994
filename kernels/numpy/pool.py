"""NumPy reference: 2x2 average pooling and LeNet's trainable subsampling.

Twins: kernels/numba/pool.py (and kernels/cython/pool.pyx).
"""

import numpy as np


def _block_sums(x):
    # (N, C, H, W) -> (N, C, H/2, W/2): the sum of each non-overlapping 2x2 block.
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).sum(axis=(3, 5))


def _spread(d):
    # Each pooled gradient goes back to the four pixels of its block.
    return np.repeat(np.repeat(d, 2, axis=2), 2, axis=3)


def avgpool2x2_forward(out, x, n_threads):
    """out = mean of each 2x2 block. out: (N, C, H/2, W/2)   x: (N, C, H, W), H and W even."""
    out[...] = 0.25 * _block_sums(x)


def avgpool2x2_backward(dx, dout, n_threads):
    """Gradient of avgpool2x2_forward. dx: (N, C, H, W)   dout: (N, C, H/2, W/2)."""
    dx[...] = 0.25 * _spread(dout)


def subsample_forward(out, x, coef, bias, n_threads):
    """LeNet's S2/S4: out = coef[c] * (sum of each 2x2 block) + bias[c].

    out: (N, C, H/2, W/2)   x: (N, C, H, W)   coef, bias: (C,)
    """
    out[...] = coef[:, None, None] * _block_sums(x) + bias[:, None, None]


def subsample_backward(dx, dcoef, dbias, dout, x, coef, n_threads):
    """Gradients of subsample_forward; d* shaped like their primal."""
    dcoef[...] = np.einsum("nchw,nchw->c", dout, _block_sums(x))
    dbias[...] = dout.sum(axis=(0, 2, 3))
    dx[...] = _spread(dout * coef[:, None, None])


def avgpool2x2_curvature(hx, hout, n_threads):
    """Gauss-Newton diagonal (SDLM's second-order backward): hx = hout * (1/4)^2 on each block pixel."""
    hx[...] = 0.0625 * _spread(hout)


def subsample_curvature(hx, hcoef, hbias, hout, x, coef, n_threads):
    """Gauss-Newton diagonal of subsample_forward: each input and parameter gets hout * (dout/dz)^2."""
    hcoef[...] = np.einsum("nchw,nchw->c", hout, _block_sums(x) ** 2)
    hbias[...] = hout.sum(axis=(0, 2, 3))
    hx[...] = _spread(hout * (coef * coef)[:, None, None])
