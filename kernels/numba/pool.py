"""Numba kernels: 2x2 average pooling and LeNet's trainable subsampling.

Twins: kernels/numpy/pool.py (the reference) and kernels/cython/pool.pyx.
"""

from numba import prange

from lenet_engine.kernels.numba._jit import parallel_kernel


@parallel_kernel
def avgpool2x2_forward(out, x, n_threads):
    """out: (N, C, H/2, W/2)   x: (N, C, H, W)"""
    n_batch, n_maps, ho, wo = out.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = 0.25 * (
                        x[n, c, 2 * i, 2 * j] + x[n, c, 2 * i, 2 * j + 1]
                        + x[n, c, 2 * i + 1, 2 * j] + x[n, c, 2 * i + 1, 2 * j + 1]
                    )


@parallel_kernel
def avgpool2x2_backward(dx, dout, n_threads):
    """dx: (N, C, H, W)   dout: (N, C, H/2, W/2)"""
    n_batch, n_maps, ho, wo = dout.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    g = 0.25 * dout[n, c, i, j]
                    dx[n, c, 2 * i, 2 * j] = g
                    dx[n, c, 2 * i, 2 * j + 1] = g
                    dx[n, c, 2 * i + 1, 2 * j] = g
                    dx[n, c, 2 * i + 1, 2 * j + 1] = g


@parallel_kernel
def subsample_forward(out, x, coef, bias, n_threads):
    """out: (N, C, H/2, W/2)   x: (N, C, H, W)   coef, bias: (C,)"""
    n_batch, n_maps, ho, wo = out.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    s = (x[n, c, 2 * i, 2 * j] + x[n, c, 2 * i, 2 * j + 1]
                         + x[n, c, 2 * i + 1, 2 * j] + x[n, c, 2 * i + 1, 2 * j + 1])
                    out[n, c, i, j] = coef[c] * s + bias[c]


@parallel_kernel
def subsample_backward(dx, dcoef, dbias, dout, x, coef, n_threads):
    """dx: (N, C, H, W)   dcoef, dbias: (C,)   dout: (N, C, H/2, W/2)"""
    n_batch, n_maps, ho, wo = dout.shape
    for n in prange(n_batch):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    g = coef[c] * dout[n, c, i, j]
                    dx[n, c, 2 * i, 2 * j] = g
                    dx[n, c, 2 * i, 2 * j + 1] = g
                    dx[n, c, 2 * i + 1, 2 * j] = g
                    dx[n, c, 2 * i + 1, 2 * j + 1] = g
    for c in prange(n_maps):
        coef_sum = 0.0
        bias_sum = 0.0
        for n in range(n_batch):
            for i in range(ho):
                for j in range(wo):
                    s = (x[n, c, 2 * i, 2 * j] + x[n, c, 2 * i, 2 * j + 1]
                         + x[n, c, 2 * i + 1, 2 * j] + x[n, c, 2 * i + 1, 2 * j + 1])
                    coef_sum += dout[n, c, i, j] * s
                    bias_sum += dout[n, c, i, j]
        dcoef[c] = coef_sum
        dbias[c] = bias_sum
