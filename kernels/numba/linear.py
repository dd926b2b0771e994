"""Numba kernels: full (dense) layer. Twins: kernels/numpy/linear.py and kernels/cython/linear.pyx."""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import parallel_kernel


@parallel_kernel
def linear_forward(out, x, w, b, n_threads):
    """out: (N, O)   x: (N, I)   w: (O, I)   b: (O,)"""
    n_batch, n_out = out.shape
    n_in = x.shape[1]
    for n in prange(n_batch):
        for o in range(n_out):
            acc = np.float32(0.0)
            for i in range(n_in):
                acc += w[o, i] * x[n, i]
            out[n, o] = acc + b[o]


@parallel_kernel
def linear_backward(dx, dw, db, dout, x, w, n_threads):
    """dx: (N, I)   dw: (O, I)   db: (O,)   dout: (N, O)"""
    n_batch, n_out = dout.shape
    n_in = x.shape[1]
    for n in prange(n_batch):
        dx[n, :] = 0
        for o in range(n_out):
            g = dout[n, o]
            for i in range(n_in):
                dx[n, i] += g * w[o, i]
    for o in prange(n_out):
        dw[o, :] = 0
        bias_sum = 0.0
        for n in range(n_batch):
            g = dout[n, o]
            bias_sum += g
            for i in range(n_in):
                dw[o, i] += g * x[n, i]
        db[o] = bias_sum


@parallel_kernel
def linear_curvature(hx, hw, hb, hout, x, w, n_threads):
    """Gauss-Newton diagonal (SDLM): linear_backward with x and w squared.   Shapes as there."""
    n_batch, n_out = hout.shape
    n_in = x.shape[1]
    for n in prange(n_batch):
        hx[n, :] = 0
        for o in range(n_out):
            h = hout[n, o]
            for i in range(n_in):
                hx[n, i] += h * w[o, i] * w[o, i]
    for o in prange(n_out):
        bias_sum = 0.0
        for n in range(n_batch):
            bias_sum += hout[n, o]
        hb[o] = bias_sum
        for i in range(n_in):
            acc = 0.0
            for n in range(n_batch):
                acc += hout[n, o] * x[n, i] * x[n, i]
            hw[o, i] = acc
