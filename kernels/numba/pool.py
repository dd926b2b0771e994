"""Numba kernels: 2x2 average pooling and LeNet's trainable subsampling.

Twins: kernels/numpy/pool.py (the reference) and kernels/cython/pool.pyx.
"""

from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel


@kernel
def _block_sum(x, n, c, i, j):
    # Sum of the 2x2 block of map (n, c) that output pixel (i, j) covers.
    return (x[n, c, 2 * i, 2 * j] + x[n, c, 2 * i, 2 * j + 1]
            + x[n, c, 2 * i + 1, 2 * j] + x[n, c, 2 * i + 1, 2 * j + 1])


@kernel
def _spread(dx, n, c, i, j, g):
    # Write g to the four pixels of that block.
    dx[n, c, 2 * i, 2 * j] = g
    dx[n, c, 2 * i, 2 * j + 1] = g
    dx[n, c, 2 * i + 1, 2 * j] = g
    dx[n, c, 2 * i + 1, 2 * j + 1] = g


@parallel_kernel
def avgpool2x2_forward(out, x, n_threads):
    """out: (N, C, H/2, W/2)   x: (N, C, H, W)"""
    n_batch, n_maps, ho, wo = out.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = 0.25 * _block_sum(x, n, c, i, j)


@parallel_kernel
def avgpool2x2_backward(dx, dout, n_threads):
    """dx: (N, C, H, W)   dout: (N, C, H/2, W/2)"""
    n_batch, n_maps, ho, wo = dout.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(dx, n, c, i, j, 0.25 * dout[n, c, i, j])


@parallel_kernel
def subsample_forward(out, x, coef, bias, n_threads):
    """out: (N, C, H/2, W/2)   x: (N, C, H, W)   coef, bias: (C,)"""
    n_batch, n_maps, ho, wo = out.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = coef[c] * _block_sum(x, n, c, i, j) + bias[c]


@parallel_kernel
def subsample_backward(dx, dcoef, dbias, dout, x, coef, n_threads):
    """dx: (N, C, H, W)   dcoef, dbias: (C,)   dout: (N, C, H/2, W/2)"""
    n_batch, n_maps, ho, wo = dout.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(dx, n, c, i, j, coef[c] * dout[n, c, i, j])
    for c in prange(n_maps):
        coef_sum = 0.0
        bias_sum = 0.0
        for n in range(n_batch):
            for i in range(ho):
                for j in range(wo):
                    coef_sum += dout[n, c, i, j] * _block_sum(x, n, c, i, j)
                    bias_sum += dout[n, c, i, j]
        dcoef[c] = coef_sum
        dbias[c] = bias_sum


@parallel_kernel
def avgpool2x2_curvature(hx, hout, n_threads):
    """Gauss-Newton diagonal (SDLM): hx = hout / 16 on each block pixel.   Shapes as backward."""
    n_batch, n_maps, ho, wo = hout.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(hx, n, c, i, j, 0.0625 * hout[n, c, i, j])


@parallel_kernel
def subsample_curvature(hx, hcoef, hbias, hout, x, coef, n_threads):
    """Gauss-Newton diagonal of subsample_forward (SDLM).   Shapes as subsample_backward."""
    n_batch, n_maps, ho, wo = hout.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(hx, n, c, i, j, coef[c] * coef[c] * hout[n, c, i, j])
    for c in prange(n_maps):
        coef_sum = 0.0
        bias_sum = 0.0
        for n in range(n_batch):
            for i in range(ho):
                for j in range(wo):
                    s = _block_sum(x, n, c, i, j)
                    coef_sum += hout[n, c, i, j] * s * s
                    bias_sum += hout[n, c, i, j]
        hcoef[c] = coef_sum
        hbias[c] = bias_sum
