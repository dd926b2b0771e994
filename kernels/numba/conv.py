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

K = 5  # the kernel size the constant-size helpers (_conv_pair, _conv_quad, ...) are written for: LeNet's 5x5

# LeNet's two convolutions in the row-padded layout: C1 over the 32-wide field, C3 over 14-wide
# maps. The backward kernels run the constant-span helpers for exactly these.
C1_WIDTH, C1_SPAN = 32, 27 * 32 + 28
C3_WIDTH, C3_SPAN = 14, 9 * 14 + 10

# The backward helpers work on maps flattened with the input's row stride W, as the
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


# The forward convolutions read their input maps "shifted": shift_columns lays out, for each
# kernel column kj, input columns kj .. kj + Wo - 1 of all H rows compactly (row stride Wo) at
# offset kj * shift. Tap (ki, kj) then links output element t = i * Wo + j
# with element kj * shift + ki * Wo + t, so every tap is one contiguous run over the whole
# compact output map (Ho * Wo elements): no padding columns computed, as the row-padded layout
# computes them (a third more multiply-adds at C3), for five copies of the input.
C1_SHIFT = C1_WIDTH * 28  # C1: 32 x 32 -> 28 x 28
C3_SHIFT = C3_WIDTH * 10  # C3: 14 x 14 -> 10 x 10


@kernel
def _copy16(dst, d, src, s):
    """dst[d:d + 16] = src[s:s + 16], every load before any store: the compiler then merges them
    into one vector load and store. A copy loop stays one float at a time, its loads and stores
    interleaved, as the compiler cannot move a load past a store to what may be the same array."""
    v0, v1, v2, v3 = src[s], src[s + 1], src[s + 2], src[s + 3]
    v4, v5, v6, v7 = src[s + 4], src[s + 5], src[s + 6], src[s + 7]
    v8, v9, v10, v11 = src[s + 8], src[s + 9], src[s + 10], src[s + 11]
    v12, v13, v14, v15 = src[s + 12], src[s + 13], src[s + 14], src[s + 15]
    dst[d], dst[d + 1], dst[d + 2], dst[d + 3] = v0, v1, v2, v3
    dst[d + 4], dst[d + 5], dst[d + 6], dst[d + 7] = v4, v5, v6, v7
    dst[d + 8], dst[d + 9], dst[d + 10], dst[d + 11] = v8, v9, v10, v11
    dst[d + 12], dst[d + 13], dst[d + 14], dst[d + 15] = v12, v13, v14, v15


@kernel
def shift_columns(dst, src, side_in, side_out, shift, run):
    """dst[kj * shift + r * side_out + j] = src[r * side_in + kj + j] for kj < 5, r < side_in and
    j < side_out: the shifted layout of one input map src (side_in * side_in,).

    Each row but the last is copied as `run` values (side_out rounded up to a multiple of 16):
    the values past side_out land on the next row's place, which is written after (the rows go
    in order), and are read from the same source row or the next. The last row is copied
    exactly, so nothing past the map is read, nor past the block written. Sizes compiled in.
    """
    numba.literally(side_in)
    numba.literally(side_out)
    numba.literally(shift)
    numba.literally(run)
    for kj in range(K):
        for r in range(side_in - 1):
            d, s = kj * shift + r * side_out, r * side_in + kj
            for j in range(0, run, 16):
                _copy16(dst, d + j, src, s + j)
        d, s = kj * shift + (side_in - 1) * side_out, (side_in - 1) * side_in + kj
        for j in range(side_out):
            dst[d + j] = src[s + j]


# The output maps of a pass are rows of one flat array, o * span onwards: consecutive rows at
# offsets the compiler can tell apart. Maps passed as separate rows (acc[oa], acc[ob], ...) it
# cannot, so the vectorised loop then tests every pair of them and the input for overlap at run
# time (26 tests in the four-map pass, 55 in the two-map one): a third of C3's time where the
# helper is not inlined into a caller that allocated the arrays (as when Numba loads it from its
# cache).
@kernel
def _conv_pair(acc, first, src, w, pa, pb, span, side, shift):
    """acc[first:first + span] and acc[first + span:first + 2 span] (two maps of a flat array)
    += the valid 5x5 correlations of one shifted input map src with kernels w[pa] and w[pb],
    each input value loaded serving both maps.

    One pass over the accumulators per kernel row: five multiply-adds per element loaded and
    stored. span (Ho * Wo), side (Wo) and shift are compiled in as constants (numba.literally),
    one version per call site's values: with the trip count known the loop vectorises with no
    run-time trip count checks, its remainder fixed at compile time. The rows are taken here from
    whole arrays and indices: array views passed in cost each call reference counting.
    """
    numba.literally(span)
    numba.literally(side)
    numba.literally(shift)
    w_a, w_b = w[pa], w[pb]
    rows = acc[first:first + 2 * span]  # indexed by sums of nonnegatives: no wraparound checks
    for ki in range(K):
        a0, a1, a2, a3, a4 = w_a[ki, 0], w_a[ki, 1], w_a[ki, 2], w_a[ki, 3], w_a[ki, 4]
        b0, b1, b2, b3, b4 = w_b[ki, 0], w_b[ki, 1], w_b[ki, 2], w_b[ki, 3], w_b[ki, 4]
        base = ki * side
        for t in range(span):
            s = base + t
            x0, x1, x2 = src[s], src[s + shift], src[s + 2 * shift]
            x3, x4 = src[s + 3 * shift], src[s + 4 * shift]
            rows[t] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3 + a4 * x4
            rows[span + t] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3 + b4 * x4


@kernel
def _conv_quad(acc, first, src, w, pa, pb, pc, pd, span, side, shift):
    """_conv_pair for four maps (acc[first:first + 4 span]): each input value loaded serves four
    (20 weights held in registers), the accumulators' loads and stores a smaller share of the
    work."""
    numba.literally(span)
    numba.literally(side)
    numba.literally(shift)
    w_a, w_b, w_c, w_d = w[pa], w[pb], w[pc], w[pd]
    rows = acc[first:first + 4 * span]
    for ki in range(K):
        a0, a1, a2, a3, a4 = w_a[ki, 0], w_a[ki, 1], w_a[ki, 2], w_a[ki, 3], w_a[ki, 4]
        b0, b1, b2, b3, b4 = w_b[ki, 0], w_b[ki, 1], w_b[ki, 2], w_b[ki, 3], w_b[ki, 4]
        c0, c1, c2, c3, c4 = w_c[ki, 0], w_c[ki, 1], w_c[ki, 2], w_c[ki, 3], w_c[ki, 4]
        d0, d1, d2, d3, d4 = w_d[ki, 0], w_d[ki, 1], w_d[ki, 2], w_d[ki, 3], w_d[ki, 4]
        base = ki * side
        for t in range(span):
            s = base + t
            x0, x1, x2 = src[s], src[s + shift], src[s + 2 * shift]
            x3, x4 = src[s + 3 * shift], src[s + 4 * shift]
            rows[t] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3 + a4 * x4
            rows[span + t] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3 + b4 * x4
            rows[2 * span + t] += c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4
            rows[3 * span + t] += d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3 + d4 * x4


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


ACC_SCRATCH = 4  # rows past the output maps that convolve_shifted's accumulators need


@kernel
def _first_row(k, order, out_map, n):
    """The first output map of pass k (connections order[k] .. order[k + n - 1]) where its n maps
    are consecutive, else -1; -1 for a lone map too, as the pair that computes it writes two."""
    if n == 1:
        return -1
    first = out_map[order[k]]
    for j in range(1, n):
        if out_map[order[k + j]] != first + j:
            return -1
    return first


@kernel
def _add_rows(flat, maps, k, order, out_map, n, span):
    """Pass k's n sums, made in the scratch rows past the maps, added to its output maps (in
    order: a map the table lists twice gets both)."""
    for j in range(n):
        o, r = out_map[order[k + j]] * span, (maps + j) * span
        dst, src = flat[o:o + span], flat[r:r + span]
        for t in range(span):
            dst[t] += src[t]


@kernel
def convolve_shifted(acc, src, w, b, table, span, side, shift):
    """acc[o, :span] = b[o] + output map o (Ho x Wo, compact) of the 5x5 convolution of the
    shifted input maps src (Ci, 5 * shift) through the pairs' kernels w (P, 5, 5); table:
    by_input's reading of the connection table. acc (maps + ACC_SCRATCH, span) is C-contiguous:
    its last rows are scratch (their values are not outputs).

    Input map by input map, four output maps at a time, then two, then one: each output map sums
    its inputs in increasing order, the table's order when it lists them so (Table I and the full
    table do). A pass works on consecutive rows: its output maps themselves where they are (the
    full table's passes, C1's), else the scratch rows, from zero, then added to its maps. span,
    side and shift are compiled in as _conv_pair's.
    """
    numba.literally(span)
    numba.literally(side)
    numba.literally(shift)
    start, order, out_map = table
    maps = acc.shape[0] - ACC_SCRATCH
    for o in range(maps):
        acc[o] = b[o]
    flat = acc.reshape(acc.shape[0] * span)
    for c in range(start.shape[0] - 1):
        k, stop, src_c = start[c], start[c + 1], src[c]
        while k < stop:
            n = 4 if k + 4 <= stop else min(2, stop - k)
            first = _first_row(k, order, out_map, n)
            if first < 0:  # the scratch rows the pass writes, from zero
                flat[maps * span:(maps + max(n, 2)) * span] = 0
            row = (first if first >= 0 else maps) * span
            p = order[k]
            if n == 4:
                _conv_quad(flat, row, src_c, w, p, order[k + 1], order[k + 2], order[k + 3],
                           span, side, shift)
            else:  # a lone last map (n = 1) is paired with a scratch row (its own kernel again)
                _conv_pair(flat, row, src_c, w, p, order[k + n - 1], span, side, shift)
            if first < 0:
                _add_rows(flat, maps, k, order, out_map, n, span)
            k += n


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
    # LeNet's two 5x5 convolutions (C1 over 32-wide maps, C3 over 14-wide ones) run in the
    # shifted layout, loops compiled for their exact sizes (see _conv_pair), four output maps
    # per pass; other shapes the generic loop.
    k = w.shape[1]
    lenet_c1 = k == K and width == C1_WIDTH and span == C1_SPAN
    lenet_c3 = k == K and width == C3_WIDTH and span == C3_SPAN
    xf = x.reshape(n_batch, n_in, height * width)
    table = by_input(conn_start, conn_in, n_in)
    for n in prange(n_batch):
        if lenet_c1 or lenet_c3:
            maps = np.empty((n_out + ACC_SCRATCH, ho * wo), dtype=np.float32)
            shifted = np.empty((n_in, K * height * wo), dtype=np.float32)
            for c in range(n_in):
                if lenet_c1:
                    shift_columns(shifted[c], xf[n, c], C1_WIDTH, 28, C1_SHIFT, 32)
                else:
                    shift_columns(shifted[c], xf[n, c], C3_WIDTH, 10, C3_SHIFT, 16)
            if lenet_c1:
                convolve_shifted(maps, shifted, w, b, table, 28 * 28, 28, C1_SHIFT)
            else:
                convolve_shifted(maps, shifted, w, b, table, 10 * 10, 10, C3_SHIFT)
            for o in range(n_out):
                out[n, o] = maps[o].reshape(ho, wo)
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
