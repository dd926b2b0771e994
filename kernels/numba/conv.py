"""Numba kernels: valid 2-D convolution, dense and sparse (Table I).

Twins: kernels/numpy/conv.py (the reference) and kernels/cython/conv.pyx.
Forward and input gradients run in parallel over the batch; weight gradients
in parallel over output maps, so no two threads write the same element.
"""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import parallel_kernel


@parallel_kernel
def conv2d_forward(out, x, w, b, n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (Co, Ci, K, K)   b: (Co,)"""
    n_batch, n_out, ho, wo = out.shape
    n_in, k = x.shape[1], w.shape[2]
    for n in prange(n_batch):
        for o in range(n_out):
            acc = out[n, o]
            acc[:, :] = b[o]
            for c in range(n_in):
                for ki in range(k):
                    for kj in range(k):
                        wv = w[o, c, ki, kj]
                        for i in range(ho):
                            for jj in range(wo):
                                acc[i, jj] += wv * x[n, c, i + ki, jj + kj]


@parallel_kernel
def conv2d_backward(dx, dw, db, dout, x, w, n_threads):
    """dx: (N, Ci, H, W)   dw: (Co, Ci, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo)"""
    n_batch, n_out, ho, wo = dout.shape
    n_in, k = x.shape[1], w.shape[2]
    for n in prange(n_batch):
        dx[n, :, :, :] = 0
        for o in range(n_out):
            for c in range(n_in):
                for ki in range(k):
                    for kj in range(k):
                        wv = w[o, c, ki, kj]
                        for i in range(ho):
                            for jj in range(wo):
                                dx[n, c, i + ki, jj + kj] += wv * dout[n, o, i, jj]
    for o in prange(n_out):
        bias_sum = 0.0
        for n in range(n_batch):
            for i in range(ho):
                for jj in range(wo):
                    bias_sum += dout[n, o, i, jj]
        db[o] = bias_sum
        for c in range(n_in):
            for ki in range(k):
                for kj in range(k):
                    total = 0.0
                    for n in range(n_batch):
                        acc = np.float32(0.0)
                        for i in range(ho):
                            for jj in range(wo):
                                acc += dout[n, o, i, jj] * x[n, c, i + ki, jj + kj]
                        total += acc
                    dw[o, c, ki, kj] = total


@parallel_kernel
def sparse_conv2d_forward(out, x, w, b, conn_start, conn_in, n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (P, K, K)   b: (Co,)
    conn_start: (Co + 1,) int64   conn_in: (P,) int64 (see constants.connection_arrays)"""
    n_batch, n_out, ho, wo = out.shape
    k = w.shape[1]
    for n in prange(n_batch):
        for o in range(n_out):
            acc = out[n, o]
            acc[:, :] = b[o]
            for p in range(conn_start[o], conn_start[o + 1]):
                c = conn_in[p]
                for ki in range(k):
                    for kj in range(k):
                        wv = w[p, ki, kj]
                        for i in range(ho):
                            for jj in range(wo):
                                acc[i, jj] += wv * x[n, c, i + ki, jj + kj]


@parallel_kernel
def sparse_conv2d_backward(dx, dw, db, dout, x, w, conn_start, conn_in, n_threads):
    """dx: (N, Ci, H, W)   dw: (P, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo); the rest as forward."""
    n_batch, n_out, ho, wo = dout.shape
    k = w.shape[1]
    for n in prange(n_batch):
        dx[n, :, :, :] = 0
        for o in range(n_out):
            for p in range(conn_start[o], conn_start[o + 1]):
                c = conn_in[p]
                for ki in range(k):
                    for kj in range(k):
                        wv = w[p, ki, kj]
                        for i in range(ho):
                            for jj in range(wo):
                                dx[n, c, i + ki, jj + kj] += wv * dout[n, o, i, jj]
    for o in prange(n_out):
        bias_sum = 0.0
        for n in range(n_batch):
            for i in range(ho):
                for jj in range(wo):
                    bias_sum += dout[n, o, i, jj]
        db[o] = bias_sum
        for p in range(conn_start[o], conn_start[o + 1]):
            c = conn_in[p]
            for ki in range(k):
                for kj in range(k):
                    total = 0.0
                    for n in range(n_batch):
                        acc = np.float32(0.0)
                        for i in range(ho):
                            for jj in range(wo):
                                acc += dout[n, o, i, jj] * x[n, c, i + ki, jj + kj]
                        total += acc
                    dw[p, ki, kj] = total
