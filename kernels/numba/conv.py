"""Numba kernels: valid 2-D convolution, dense and sparse (Table I).

Twins: kernels/numpy/conv.py (the reference) and kernels/cython/conv.pyx.
Forward and input gradients run in parallel over the batch; weight gradients
in parallel over output maps, so no two threads write the same element. The
dense and sparse kernels differ only in which (input map, kernel) pairs feed
an output map; the per-pair loops are the helpers below.
"""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel


@kernel
def _correlate_add(acc, xmap, wk):
    """acc += valid correlation of xmap with wk.   acc: (Ho, Wo)   xmap: (H, W)   wk: (K, K)"""
    ho, wo = acc.shape
    k = wk.shape[0]
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj]
            for i in range(ho):
                for j in range(wo):
                    acc[i, j] += wv * xmap[i + ki, j + kj]


@kernel
def _scatter_add(dxmap, doutmap, wk):
    """dxmap += the gradient of _correlate_add's acc, doutmap, sent back through wk."""
    ho, wo = doutmap.shape
    k = wk.shape[0]
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj]
            for i in range(ho):
                for j in range(wo):
                    dxmap[i + ki, j + kj] += wv * doutmap[i, j]


@kernel
def _kernel_gradient(dwk, dout, o, x, c):
    """dwk = sum over the batch of dout[:, o] (*) x[:, c].   dwk: (K, K)

    Takes whole arrays and map indices: slices across the batch axis would not
    be contiguous, and Numba would not vectorise the inner loop.
    """
    n_batch, ho, wo = dout.shape[0], dout.shape[2], dout.shape[3]
    k = dwk.shape[0]
    for ki in range(k):
        for kj in range(k):
            total = 0.0  # double across the batch; float32 within one map (vectorises)
            for n in range(n_batch):
                acc = np.float32(0.0)
                for i in range(ho):
                    for j in range(wo):
                        acc += dout[n, o, i, j] * x[n, c, i + ki, j + kj]
                total += acc
            dwk[ki, kj] = total


@kernel
def _bias_gradient(dout, o):
    """Sum of dout[:, o] over the batch and the map, in double."""
    total = 0.0
    for n in range(dout.shape[0]):
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                total += dout[n, o, i, j]
    return total


@parallel_kernel
def conv2d_forward(out, x, w, b, n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (Co, Ci, K, K)   b: (Co,)"""
    n_batch, n_out = out.shape[0], out.shape[1]
    for n in prange(n_batch):
        for o in range(n_out):
            out[n, o, :, :] = b[o]
            for c in range(x.shape[1]):
                _correlate_add(out[n, o], x[n, c], w[o, c])


@parallel_kernel
def conv2d_backward(dx, dw, db, dout, x, w, n_threads):
    """dx: (N, Ci, H, W)   dw: (Co, Ci, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo)"""
    n_batch, n_out = dout.shape[0], dout.shape[1]
    for n in prange(n_batch):
        dx[n, :, :, :] = 0
        for o in range(n_out):
            for c in range(x.shape[1]):
                _scatter_add(dx[n, c], dout[n, o], w[o, c])
    for o in prange(n_out):
        db[o] = _bias_gradient(dout, o)
        for c in range(x.shape[1]):
            _kernel_gradient(dw[o, c], dout, o, x, c)


@parallel_kernel
def sparse_conv2d_forward(out, x, w, b, conn_start, conn_in, n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (P, K, K)   b: (Co,)
    conn_start: (Co + 1,) int64   conn_in: (P,) int64 (see constants.connection_arrays)"""
    n_batch, n_out = out.shape[0], out.shape[1]
    for n in prange(n_batch):
        for o in range(n_out):
            out[n, o, :, :] = b[o]
            for p in range(conn_start[o], conn_start[o + 1]):
                _correlate_add(out[n, o], x[n, conn_in[p]], w[p])


@parallel_kernel
def sparse_conv2d_backward(dx, dw, db, dout, x, w, conn_start, conn_in, n_threads):
    """dx: (N, Ci, H, W)   dw: (P, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo); the rest as forward."""
    n_batch, n_out = dout.shape[0], dout.shape[1]
    for n in prange(n_batch):
        dx[n, :, :, :] = 0
        for o in range(n_out):
            for p in range(conn_start[o], conn_start[o + 1]):
                _scatter_add(dx[n, conn_in[p]], dout[n, o], w[p])
    for o in prange(n_out):
        db[o] = _bias_gradient(dout, o)
        for p in range(conn_start[o], conn_start[o + 1]):
            _kernel_gradient(dw[p], dout, o, x, conn_in[p])


# --- second-order backward (SDLM): backward with inputs and weights squared ---

@kernel
def _scatter_add_squared(dxmap, doutmap, wk):
    """dxmap += doutmap sent back through wk**2."""
    ho, wo = doutmap.shape
    k = wk.shape[0]
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj] * wk[ki, kj]
            for i in range(ho):
                for j in range(wo):
                    dxmap[i + ki, j + kj] += wv * doutmap[i, j]


@kernel
def _kernel_curvature(hwk, hout, o, x, c):
    """hwk = sum over the batch of hout[:, o] (*) x[:, c]**2.   hwk: (K, K)"""
    n_batch, ho, wo = hout.shape[0], hout.shape[2], hout.shape[3]
    k = hwk.shape[0]
    for ki in range(k):
        for kj in range(k):
            total = 0.0
            for n in range(n_batch):
                for i in range(ho):
                    for j in range(wo):
                        v = x[n, c, i + ki, j + kj]
                        total += hout[n, o, i, j] * v * v
            hwk[ki, kj] = total


@parallel_kernel
def conv2d_curvature(hx, hw, hb, hout, x, w, n_threads):
    """Gauss-Newton diagonal of conv2d_forward; shapes as conv2d_backward, h* for d*."""
    n_batch, n_out = hout.shape[0], hout.shape[1]
    for n in prange(n_batch):
        hx[n, :, :, :] = 0
        for o in range(n_out):
            for c in range(x.shape[1]):
                _scatter_add_squared(hx[n, c], hout[n, o], w[o, c])
    for o in prange(n_out):
        hb[o] = _bias_gradient(hout, o)
        for c in range(x.shape[1]):
            _kernel_curvature(hw[o, c], hout, o, x, c)


@parallel_kernel
def sparse_conv2d_curvature(hx, hw, hb, hout, x, w, conn_start, conn_in, n_threads):
    """Gauss-Newton diagonal of sparse_conv2d_forward; shapes as sparse_conv2d_backward."""
    n_batch, n_out = hout.shape[0], hout.shape[1]
    for n in prange(n_batch):
        hx[n, :, :, :] = 0
        for o in range(n_out):
            for p in range(conn_start[o], conn_start[o + 1]):
                _scatter_add_squared(hx[n, conn_in[p]], hout[n, o], w[p])
    for o in prange(n_out):
        hb[o] = _bias_gradient(hout, o)
        for p in range(conn_start[o], conn_start[o + 1]):
            _kernel_curvature(hw[p], hout, o, x, conn_in[p])
