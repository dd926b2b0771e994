"""Numba kernels: full (dense) layer. Twins: kernels/numpy/linear.py and kernels/cython/linear.pyx."""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel


GROUP = 4  # rows of the left operand that _dense takes at once
# Batches from these sizes take the tiled products, smaller ones plain loops, whose lower fixed
# costs win below them (break-even points at LeNet's full layers).
FORWARD_TILED_BATCH = 16
BACKWARD_TILED_BATCH = 64


@kernel
def _dense(y, w, b, x):
    """y[d] = w @ x[d] + b for the GROUP rows of x, four units at a time.

    A group of rows shares one pass over w (C5's 192 KB do not fit in L1). Four units x four
    rows are sixteen sums, which the compiler keeps in vector registers: each weight loaded
    serves four rows and each input value four units (two units a pass took a third longer
    at C5).
    """
    n_out = w.shape[0]
    for u in range(0, n_out, 4):
        # Past the last unit, the last is computed again, harmlessly.
        u1, u2, u3 = min(u + 1, n_out - 1), min(u + 2, n_out - 1), min(u + 3, n_out - 1)
        a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0.0)
        c0 = c1 = c2 = c3 = d0 = d1 = d2 = d3 = np.float32(0.0)
        for i in range(w.shape[1]):
            wa, wb, wc, wd = w[u, i], w[u1, i], w[u2, i], w[u3, i]
            x0, x1, x2, x3 = x[0, i], x[1, i], x[2, i], x[3, i]
            a0 += wa * x0
            a1 += wa * x1
            a2 += wa * x2
            a3 += wa * x3
            b0 += wb * x0
            b1 += wb * x1
            b2 += wb * x2
            b3 += wb * x3
            c0 += wc * x0
            c1 += wc * x1
            c2 += wc * x2
            c3 += wc * x3
            d0 += wd * x0
            d1 += wd * x1
            d2 += wd * x2
            d3 += wd * x3
        y[0, u], y[1, u], y[2, u], y[3, u] = a0 + b[u], a1 + b[u], a2 + b[u], a3 + b[u]
        y[0, u1], y[1, u1], y[2, u1], y[3, u1] = b0 + b[u1], b1 + b[u1], b2 + b[u1], b3 + b[u1]
        y[0, u2], y[1, u2], y[2, u2], y[3, u2] = c0 + b[u2], c1 + b[u2], c2 + b[u2], c3 + b[u2]
        y[0, u3], y[1, u3], y[2, u3], y[3, u3] = d0 + b[u3], d1 + b[u3], d2 + b[u3], d3 + b[u3]


@parallel_kernel
def _product(y, a, bt, bias, n_threads):
    """y (R, U) = a (R, K) @ bt (U, K)^T + bias (U,), GROUP rows of a per task through _dense.

    A short last group runs as a full one (its missing rows copies of its last real row), so
    every row goes through the same arithmetic, wherever it falls and whatever the thread count.
    """
    n_rows = a.shape[0]
    for t in prange((n_rows + GROUP - 1) // GROUP):
        first = t * GROUP
        n = min(GROUP, n_rows - first)
        if n == GROUP:
            _dense(y[first:first + GROUP], bt, bias, a[first:first + GROUP])
        else:
            rows = np.empty((GROUP, a.shape[1]), np.float32)
            out = np.empty((GROUP, y.shape[1]), np.float32)
            for d in range(GROUP):
                rows[d] = a[first + min(d, n - 1)]
            _dense(out, bt, bias, rows)
            y[first:first + n] = out[:n]


def linear_forward(out, x, w, b, n_threads):
    """out: (N, O)   x: (N, I)   w: (O, I)   b: (O,)

    The tiled and the plain loops sum in different orders, so a row's last bits depend on
    which side of FORWARD_TILED_BATCH its batch falls (the same batch always gives the same
    bits; the Cython twin's do not depend on the batch at all).
    """
    if len(x) >= FORWARD_TILED_BATCH:
        _product(out, x, w, b, n_threads)
    else:
        _forward_rows(out, x, w, b, n_threads)


@parallel_kernel
def _forward_rows(out, x, w, b, n_threads):
    # linear_forward one digit at a time, for small batches.
    n_batch, n_out = out.shape
    n_in = x.shape[1]
    for n in prange(n_batch):
        for o in range(n_out):
            acc = np.float32(0.0)
            for i in range(n_in):
                acc += w[o, i] * x[n, i]
            out[n, o] = acc + b[o]


def linear_backward(dx, dw, db, dout, x, w, n_threads):
    """dx: (N, I)   dw: (O, I)   db: (O,)   dout: (N, O)

    Large batches get both gradients from the forward's tiled product, dx = dout @ w and
    dw = dout^T @ x, the operands transposed by NumPy (which does it faster than a loop in the
    kernel); small ones (SDLM's single digits), one kernel of plain loops: there the products'
    fixed costs outweigh what the tiling saves.
    As in linear_forward, the last bits depend on which side of the threshold the batch is.
    """
    if len(x) >= BACKWARD_TILED_BATCH:
        no_bias = np.zeros(x.shape[1], np.float32)  # both products' units are the inputs
        _product(dx, dout, np.ascontiguousarray(w.T), no_bias, n_threads)
        _product(dw, np.ascontiguousarray(dout.T), np.ascontiguousarray(x.T), no_bias, n_threads)
        db[...] = dout.sum(axis=0, dtype=np.float64)
    else:
        _backward_rows(dx, dw, db, dout, x, w, n_threads)


@parallel_kernel
def _backward_rows(dx, dw, db, dout, x, w, n_threads):
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
