"""Numba kernels: valid 2-D convolution, dense and sparse (Table I).

Twins: kernels/numpy/conv.py (the reference) and kernels/cython/conv.pyx.
Forward and input gradients run in parallel over the batch; weight gradients
in parallel over output maps, so no two threads write the same element. A
dense convolution is the sparse one whose table lists every (output map,
input map) pair; the per-pair loops are the helpers below.
"""

import numba
import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel
from lenet_engine.kernels.tables import full_connection_table

K = 5  # the kernel size the constant-span helpers (_conv, _conv_pair, ...) are written for: LeNet's 5x5

# LeNet's two convolutions in the row-padded layout: C1 over the 32-wide field, C3 over 14-wide
# maps. The kernels below run the constant-span helpers for exactly these.
C1_WIDTH, C1_SPAN = 32, 27 * 32 + 28
C3_WIDTH, C3_SPAN = 14, 9 * 14 + 10

# The helpers work on maps flattened with the input's row stride W, as the
# Cython twin's do: an output map (Ho, Wo) is computed, or its gradient read,
# as Ho rows of W floats whose last W - Wo columns are dropped, or zero
# ("row-padded"). Tap (ki, kj) then links element t of that layout with input
# element ki * W + kj + t, so each tap is one contiguous run of
# span = (Ho - 1) * W + Wo elements, long enough to vectorise, where Ho rows of
# Wo are not. Every index stays inside the map. The loops index slices from 0:
# a sum as index would cost a wraparound check and the vectorisation.

@kernel
def _correlate_add(padded, xflat, wk, width, span):
    """padded (Ho * W,) += valid correlation of xflat (H * W,) with wk (K, K), row-padded."""
    k = wk.shape[0]
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj]
            src = xflat[ki * width + kj:ki * width + kj + span]
            for t in range(span):
                padded[t] += wv * src[t]


@kernel
def _conv(acc, span, src, stride, w):
    """acc[:span] += the valid 5x5 correlation of src (row stride `stride`) with w, at that stride.

    One pass over acc per kernel row: five multiply-adds per element loaded and stored, not one.
    span and stride are compiled in as constants (numba.literally), one version per call site's
    values: with the trip count known the loop vectorises cleanly, with no remainder, which it
    does not with a span given at run time, nor as the same five-tap loop compiled for any span.
    """
    numba.literally(span)
    numba.literally(stride)
    for ki in range(K):
        w0, w1, w2, w3, w4 = w[ki, 0], w[ki, 1], w[ki, 2], w[ki, 3], w[ki, 4]
        base = ki * stride
        for t in range(span):
            s = base + t
            acc[t] += w0 * src[s] + w1 * src[s + 1] + w2 * src[s + 2] + w3 * src[s + 3] + w4 * src[s + 4]


@kernel
def _conv_pair(acc_a, acc_b, span, src, stride, w_a, w_b):
    """_conv for two maps that read the same input: each input value loaded serves both, where
    two _conv calls would load it twice."""
    numba.literally(span)
    numba.literally(stride)
    for ki in range(K):
        a0, a1, a2, a3, a4 = w_a[ki, 0], w_a[ki, 1], w_a[ki, 2], w_a[ki, 3], w_a[ki, 4]
        b0, b1, b2, b3, b4 = w_b[ki, 0], w_b[ki, 1], w_b[ki, 2], w_b[ki, 3], w_b[ki, 4]
        base = ki * stride
        for t in range(span):
            s = base + t
            x0, x1, x2, x3, x4 = src[s], src[s + 1], src[s + 2], src[s + 3], src[s + 4]
            acc_a[t] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3 + a4 * x4
            acc_b[t] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3 + b4 * x4


@kernel
def by_input(conn_start, conn_in, n_in):
    """A connection table read by input map: (start, order, out_map), the connections that
    read input map c being order[start[c]:start[c + 1]], in increasing output map, and
    out_map[p] the output map of connection p."""
    n_out, n_conn = conn_start.shape[0] - 1, conn_in.shape[0]
    out_map = np.empty(n_conn, np.int64)
    start = np.zeros(n_in + 1, np.int64)
    for o in range(n_out):
        for p in range(conn_start[o], conn_start[o + 1]):
            out_map[p] = o
            start[conn_in[p] + 1] += 1
    for c in range(n_in):
        start[c + 1] += start[c]
    order = np.empty(n_conn, np.int64)
    filled = start[:n_in].copy()
    for p in range(n_conn):
        c = conn_in[p]
        order[filled[c]] = p
        filled[c] += 1
    return start, order, out_map


@kernel
def convolve_by_input(acc, span, src, stride, w, b, table):
    """acc[o, :span] = b[o] + output map o of the 5x5 convolution of the maps src (Ci, H * W,
    row stride `stride`) through the pairs' kernels w (P, 5, 5); table: by_input's reading of
    the connection table. Input map by input map, two output maps at a time (_conv_pair):
    each output map sums its inputs in increasing order, the table's order when it lists
    them so (Table I and the full table do). span and stride are compiled in as _conv's."""
    numba.literally(span)
    numba.literally(stride)
    start, order, out_map = table
    for o in range(acc.shape[0]):
        acc[o] = b[o]
    for c in range(start.shape[0] - 1):
        k = start[c]
        while k + 1 < start[c + 1]:
            p, q = order[k], order[k + 1]
            _conv_pair(acc[out_map[p]], acc[out_map[q]], span, src[c], stride, w[p], w[q])
            k += 2
        if k < start[c + 1]:
            p = order[k]
            _conv(acc[out_map[p]], span, src[c], stride, w[p])


@kernel
def _conv_back(dst, span, ext, stride, w):
    """dst += the row-padded output gradient sent back through the 5x5 kernel w, as _scatter_add;
    ext holds that gradient behind K - 1 zeros, followed by K - 1 zeros.

    Each kernel row's five taps in one pass, written as a gather (element u of dst takes its
    five terms from ext), so it vectorises as _conv does; span and stride compiled in as there.
    """
    numba.literally(span)
    numba.literally(stride)
    for ki in range(K):
        w0, w1, w2, w3, w4 = w[ki, 0], w[ki, 1], w[ki, 2], w[ki, 3], w[ki, 4]
        base = ki * stride
        for u in range(span + K - 1):
            dst[base + u] += w0 * ext[u + 4] + w1 * ext[u + 3] + w2 * ext[u + 2] + w3 * ext[u + 1] + w4 * ext[u]


@kernel
def _kernel_gradient5(total, span, padded, src, stride):
    """_kernel_gradient_add for a 5x5 kernel: two kernel rows' ten taps summed in one pass
    (each gradient value loaded serves ten), then the last row's five; span and stride
    compiled in as _conv's."""
    numba.literally(span)
    numba.literally(stride)
    for ki in range(0, K - 1, 2):
        base = ki * stride
        a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = np.float32(0.0)
        for t in range(span):
            g, s, r = padded[t], base + t, base + stride + t
            a0 += g * src[s]
            a1 += g * src[s + 1]
            a2 += g * src[s + 2]
            a3 += g * src[s + 3]
            a4 += g * src[s + 4]
            b0 += g * src[r]
            b1 += g * src[r + 1]
            b2 += g * src[r + 2]
            b3 += g * src[r + 3]
            b4 += g * src[r + 4]
        total[ki, 0] += a0
        total[ki, 1] += a1
        total[ki, 2] += a2
        total[ki, 3] += a3
        total[ki, 4] += a4
        total[ki + 1, 0] += b0
        total[ki + 1, 1] += b1
        total[ki + 1, 2] += b2
        total[ki + 1, 3] += b3
        total[ki + 1, 4] += b4
    base = (K - 1) * stride
    a0 = a1 = a2 = a3 = a4 = np.float32(0.0)
    for t in range(span):
        g, s = padded[t], base + t
        a0 += g * src[s]
        a1 += g * src[s + 1]
        a2 += g * src[s + 2]
        a3 += g * src[s + 3]
        a4 += g * src[s + 4]
    total[K - 1, 0] += a0
    total[K - 1, 1] += a1
    total[K - 1, 2] += a2
    total[K - 1, 3] += a3
    total[K - 1, 4] += a4


@kernel
def _unpad_rows(outmap, padded, width):
    """outmap (Ho, Wo) = the first Wo columns of the row-padded padded (Ho * W,)."""
    ho, wo = outmap.shape
    for i in range(ho):
        for j in range(wo):
            outmap[i, j] = padded[i * width + j]


@kernel
def _pad_rows(padded, doutmap, width):
    """padded (Ho * W,) = doutmap (Ho, Wo) with zero columns Wo..W-1."""
    ho, wo = doutmap.shape
    for i in range(ho):
        for j in range(wo):
            padded[i * width + j] = doutmap[i, j]
        for j in range(wo, width):
            padded[i * width + j] = 0.0


@kernel
def _scatter_add(dxflat, padded, wk, width, span):
    """dxflat (H * W,) += the row-padded output gradient sent back through kernel wk (K, K)."""
    k = wk.shape[0]
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj]
            dst = dxflat[ki * width + kj:ki * width + kj + span]
            for t in range(span):
                dst[t] += wv * padded[t]


@kernel
def _kernel_gradient_add(total, padded, xflat, width, span):
    """total (K, K) += the row-padded output gradient (*) xflat (H * W,): float32 within
    one map (a vectorised dot product per tap), double across the batch."""
    k = total.shape[0]
    for ki in range(k):
        for kj in range(k):
            src = xflat[ki * width + kj:ki * width + kj + span]
            acc = np.float32(0.0)
            for t in range(span):
                acc += padded[t] * src[t]
            total[ki, kj] += acc


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
def sparse_conv2d_forward(out, x, w, b, conn_start, conn_in, n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (P, K, K)   b: (Co,)
    conn_start: (Co + 1,) int64   conn_in: (P,) int64 (see kernels/tables.py)"""
    n_batch, n_in, height, width = x.shape
    n_out, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    span = (ho - 1) * width + wo
    # LeNet's two 5x5 convolutions (C1 over 32-wide maps, C3 over 14-wide ones) run loops
    # compiled for their exact span (see _conv), two output maps per pass; other shapes the
    # generic one.
    k = w.shape[1]
    lenet_c1 = k == K and width == C1_WIDTH and span == C1_SPAN
    lenet_c3 = k == K and width == C3_WIDTH and span == C3_SPAN
    xf = x.reshape(n_batch, n_in, height * width)
    table = by_input(conn_start, conn_in, n_in)
    for n in prange(n_batch):
        if lenet_c1 or lenet_c3:
            maps = np.empty((n_out, ho * width), dtype=np.float32)
            if lenet_c1:
                convolve_by_input(maps, C1_SPAN, xf[n], C1_WIDTH, w, b, table)
            else:
                convolve_by_input(maps, C3_SPAN, xf[n], C3_WIDTH, w, b, table)
            for o in range(n_out):
                _unpad_rows(out[n, o], maps[o], width)
        else:
            padded = np.empty(ho * width, dtype=np.float32)
            for o in range(n_out):
                padded[:] = b[o]
                for p in range(conn_start[o], conn_start[o + 1]):
                    _correlate_add(padded, xf[n, conn_in[p]], w[p], width, span)
                _unpad_rows(out[n, o], padded, width)


@parallel_kernel
def sparse_conv2d_backward(dx, dw, db, dout, x, w, conn_start, conn_in, n_threads):
    """dx: (N, Ci, H, W) or None (skipped)   dw: (P, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo);
    the rest as forward."""
    n_batch, n_in, height, width = x.shape
    n_out, ho, wo = dout.shape[1], dout.shape[2], dout.shape[3]
    span = (ho - 1) * width + wo
    k = w.shape[1]
    lenet_c1 = k == K and width == C1_WIDTH and span == C1_SPAN
    lenet_c3 = k == K and width == C3_WIDTH and span == C3_SPAN
    xf = x.reshape(n_batch, n_in, height * width)
    if dx is not None:  # None: not wanted (a network's first layer); Numba prunes the branch
        for n in prange(n_batch):
            # The row-padded gradient of one output map, behind and followed by K - 1 zeros
            # (_conv_back reads them; _pad_rows never writes them).
            ext = np.zeros(ho * width + 2 * (K - 1), dtype=np.float32)
            padded = ext[K - 1:K - 1 + ho * width]
            dx[n, :, :, :] = 0
            for o in range(n_out):
                _pad_rows(padded, dout[n, o], width)
                for p in range(conn_start[o], conn_start[o + 1]):
                    if lenet_c3:
                        _conv_back(dx[n, conn_in[p]].reshape(-1), C3_SPAN, ext, C3_WIDTH, w[p])
                    else:
                        _scatter_add(dx[n, conn_in[p]].reshape(-1), padded, w[p], width, span)
    # Each kernel p belongs to exactly one output map (conn_start is
    # non-decreasing), so splitting over o never shares a dw[p].
    for o in prange(n_out):
        first, stop = conn_start[o], conn_start[o + 1]
        padded = np.empty(ho * width, dtype=np.float32)
        total = np.zeros((stop - first,) + dw.shape[1:], dtype=np.float64)
        db[o] = _bias_gradient(dout, o)
        for n in range(n_batch):
            _pad_rows(padded, dout[n, o], width)
            for p in range(first, stop):
                if lenet_c1:
                    _kernel_gradient5(total[p - first], C1_SPAN, padded, xf[n, conn_in[p]], C1_WIDTH)
                elif lenet_c3:
                    _kernel_gradient5(total[p - first], C3_SPAN, padded, xf[n, conn_in[p]], C3_WIDTH)
                else:
                    _kernel_gradient_add(total[p - first], padded, xf[n, conn_in[p]], width, span)
        for p in range(first, stop):
            dw[p] = total[p - first]


def conv2d_forward(out, x, w, b, n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (Co, Ci, K, K)   b: (Co,)

    The sparse kernel over the table of every (output map, input map) pair, as in the Cython twin.
    """
    conn_start, conn_in = full_connection_table(w.shape[0], w.shape[1])
    sparse_conv2d_forward(out, x, _pairs(w), b, conn_start, conn_in, n_threads)


def conv2d_backward(dx, dw, db, dout, x, w, n_threads):
    """dx: (N, Ci, H, W) or None (skipped)   dw: (Co, Ci, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo)"""
    conn_start, conn_in = full_connection_table(w.shape[0], w.shape[1])
    sparse_conv2d_backward(dx, _pairs(dw), db, dout, x, _pairs(w), conn_start, conn_in, n_threads)


def _pairs(w):
    """(Co, Ci, K, K) -> the (Co * Ci, K, K) view the sparse kernels index by pair."""
    if not w.flags.c_contiguous:  # a reshape would copy, and gradients written to it be lost
        raise ValueError(f"conv2d kernels take C-contiguous weights and gradients, got strides {w.strides}")
    return w.reshape(w.shape[0] * w.shape[1], w.shape[2], w.shape[3])


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
