# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/conv.py (the reference) and kernels/numba/conv.py.
"""Cython kernels: valid 2-D convolution, dense and sparse (Table I).

Forward and input gradients run in parallel over the batch; weight and bias
gradients in parallel over output maps, each summing its batch serially, so
no two threads write the same element and every thread count gives the same
bits. A dense convolution is the sparse one whose table lists every (output
map, input map) pair, so both run the same loops. Called through
lenet_engine.layers.

Maps are handled flattened with the input's row stride W. An output map
(Ho, Wo) is computed, or its gradient read, as Ho rows of W floats whose last
W - Wo columns are dropped, or zero ("row-padded"). Kernel tap (ki, kj) then
links element t of that layout with input element ki * W + kj + t, so every
tap is one contiguous run of span = (Ho - 1) * W + Wo floats, where the maps'
own rows (10 floats in C3) are too short to vectorise. The hot loops are C
in l5_conv.h, over l5_simd.h's 8-float vectors, sums kept in registers.
"""

from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t

import numpy as np

from lenet_engine.kernels.tables import full_connection_table

include "_checks.pxi"
include "_dot.pxi"


cdef extern from "l5_conv.h":
    void l5_forward_map(float* out, Py_ssize_t span, const float* x, Py_ssize_t map_size,
                        const int64_t* in_map, Py_ssize_t first, Py_ssize_t stop,
                        const float* w, Py_ssize_t k, Py_ssize_t width, float bias) noexcept nogil
    void l5_input_grad_map(float* dx, Py_ssize_t map_len, const float* ext, Py_ssize_t ext_len,
                           Py_ssize_t lead, const int64_t* conn_start, const int64_t* in_map,
                           Py_ssize_t n_out, Py_ssize_t c, const float* w, Py_ssize_t k,
                           Py_ssize_t width) noexcept nogil
    void l5_dense_kernels(float* wd, const float* w, const int64_t* conn_start, const int64_t* conn_in,
                          Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t k) noexcept nogil
    void l5_input_grad_digit(float* dx, Py_ssize_t map_len, const float* ext, Py_ssize_t ext_len,
                             Py_ssize_t lead, const int64_t* conn_start, const int64_t* in_map,
                             const float* w, const float* wd, Py_ssize_t n_out, Py_ssize_t n_in,
                             Py_ssize_t k, Py_ssize_t width) noexcept nogil
    void l5_kernel_gradient_block(double* total, const float* a, Py_ssize_t a_step, const float* b,
                                  Py_ssize_t b_step, Py_ssize_t nd, Py_ssize_t k, Py_ssize_t width,
                                  Py_ssize_t span) noexcept nogil

    enum: L5_LANES
    int l5_channels_last(Py_ssize_t n_out) noexcept nogil
    Py_ssize_t l5_map_groups(Py_ssize_t n_out) noexcept nogil
    void l5_repack_channels_last(float* wr, float* bias, const float* w, const float* b,
                                 const int64_t* conn_start, const int64_t* conn_in,
                                 Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t k) noexcept nogil
    void l5_cl_forward_digit(float* out, const float* x, Py_ssize_t n_in, Py_ssize_t h,
                             Py_ssize_t width, const float* wr, const float* bias, Py_ssize_t k,
                             Py_ssize_t n_out, Py_ssize_t ho, Py_ssize_t wo) noexcept nogil
    void l5_cl_transpose(float* gt, const float* dout, Py_ssize_t n_out, Py_ssize_t positions) noexcept nogil
    void l5_cl_kernel_gradient_block(double* total, const float* gt, Py_ssize_t gt_step,
                                     const float* x, Py_ssize_t x_step, Py_ssize_t nd,
                                     Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t width) noexcept nogil

cdef enum:
    # Digits whose output gradients are row-padded together for the kernel gradients: each
    # map pair's sums then run over all of them at once (the v4 level keeps them in registers).
    GRAD_DIGITS = 32


# --- the loops shared by the dense and sparse kernels -----------------------
# A dense kernel passes its weights (Co, Ci, K, K) as Co * Ci pairs and the
# table of every pair (full_connection_table, kernels/tables.py). The batch
# sums live in functions rather than in the prange bodies also because Cython
# turns `s += ...` on a local inside prange into an OpenMP reduction.

cdef void _pad_rows(float* padded, const float* doutmap, Py_ssize_t ho, Py_ssize_t wo,
                    Py_ssize_t width) noexcept nogil:
    # padded (Ho, W) = doutmap (Ho, Wo) with zero columns Wo..W-1.
    cdef Py_ssize_t i, j
    for i in range(ho):
        for j in range(wo):
            padded[i * width + j] = doutmap[i * wo + j]
        for j in range(wo, width):
            padded[i * width + j] = 0.0


cdef void _store(float* dst, double* total, Py_ssize_t length) noexcept nogil:
    # dst = total as float32; total is zeroed for the next use.
    cdef Py_ssize_t t
    for t in range(length):
        dst[t] = <float>total[t]
        total[t] = 0.0


cdef float _bias_gradient(const float[:, :, :, ::1] dout, Py_ssize_t o) noexcept nogil:
    # Sum of dout[:, o] (N, Ho, Wo): float32 within one map (vectorised), double across the batch.
    cdef Py_ssize_t n, size = dout.shape[2] * dout.shape[3]
    cdef double result = 0.0
    for n in range(dout.shape[0]):
        result += float_sum(&dout[n, o, 0, 0], size)
    return <float>result


def _aligned_floats(Py_ssize_t size, dtype=np.float32):
    # A zeroed array of `size` values starting on a 64-byte boundary (a cache line): the
    # channels-last loops load whole vectors from it, and a vector that straddles two
    # cache lines costs two loads.
    raw = np.zeros(size + 64, dtype)
    start = (-raw.ctypes.data % 64) // raw.itemsize
    return raw[start:start + size]


cdef int _forward(float[:, :, :, ::1] out, const float[:, :, :, ::1] x, const float* w,
                  const float[::1] b, const int64_t[::1] conn_start, const int64_t[::1] conn_in,
                  Py_ssize_t k, int n_threads) except -1:
    # out (N, Co, Ho, Wo) = b + the pairs of the table; w: the pairs' kernels (P, K, K).
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1], ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t width = x.shape[3], map_size = x.shape[2] * x.shape[3], n_in = x.shape[1]
    cdef Py_ssize_t span = (ho - 1) * width + wo
    cdef Py_ssize_t n, o, i, j
    cdef int tid
    cdef float[::1] wr, bias
    if l5_channels_last(n_out) and n_batch > 0:
        wr = _aligned_floats(l5_map_groups(n_out) * n_in * k * k * L5_LANES)
        bias = _aligned_floats(l5_map_groups(n_out) * L5_LANES)
        l5_repack_channels_last(&wr[0], &bias[0], w, &b[0], &conn_start[0], &conn_in[0], n_out, n_in, k)
        for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
            l5_cl_forward_digit(&out[n, 0, 0, 0], &x[n, 0, 0, 0], n_in, x.shape[2], width,
                                &wr[0], &bias[0], k, n_out, ho, wo)
        return 0
    # Per-thread scratch, indexed by OpenMP thread number: one output map, row-padded.
    cdef float[:, ::1] padded = np.empty((n_threads, ho * width), np.float32)
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        for o in range(n_out):
            l5_forward_map(&padded[tid, 0], span, &x[n, 0, 0, 0], map_size, &conn_in[0],
                           conn_start[o], conn_start[o + 1], w, k, width, b[o])
            for i in range(ho):
                for j in range(wo):
                    out[n, o, i, j] = padded[tid, i * width + j]
    return 0


cdef int _backward(float[:, :, :, ::1] dx, float* dw, float[::1] db, const float[:, :, :, ::1] dout,
                   const float[:, :, :, ::1] x, const float* w, const int64_t[::1] conn_start,
                   const int64_t[::1] conn_in, Py_ssize_t k, int n_threads) except -1:
    # dx (None: skipped), dw (P, K, K), db from dout, for the convolution _forward computes.
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], width = x.shape[3]
    cdef Py_ssize_t n_out = dout.shape[1], ho = dout.shape[2], wo = dout.shape[3]
    cdef Py_ssize_t span = (ho - 1) * width + wo, map_len = x.shape[2] * width
    cdef Py_ssize_t lead = (k - 1) * (width + 1)
    cdef Py_ssize_t ext_len = lead + map_len
    cdef Py_ssize_t o, most_pairs = 1
    for o in range(n_out):
        most_pairs = max(most_pairs, conn_start[o + 1] - conn_start[o])
    # Per-thread scratch, indexed by OpenMP thread number. ext: every output map's
    # gradient for one digit, row-padded, behind `lead` zeros and followed by zeros
    # (never written) up to ext_len: l5_input_grad_map reads it at negative tap offsets.
    cdef float[:, ::1] ext = np.zeros((n_threads, max(n_out, 1) * ext_len), np.float32)
    cdef float[:, ::1] padded = np.empty((n_threads, GRAD_DIGITS * ho * width), np.float32)
    cdef double[:, ::1] total = np.zeros((n_threads, most_pairs * k * k), np.float64)

    cdef Py_ssize_t n, c, p, first, blk, n0, nd, d
    cdef int tid
    cdef Py_ssize_t input_grads = 0 if dx is None else n_batch
    # Every pair's kernel at its (output map, input map) place, zeros elsewhere (read at v4).
    cdef float[::1] wd = np.empty(max(n_out * n_in * k * k, 1), np.float32)
    if input_grads:
        l5_dense_kernels(&wd[0], w, &conn_start[0], &conn_in[0], n_out, n_in, k)
    for n in prange(input_grads, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        for o in range(n_out):
            _pad_rows(&ext[tid, o * ext_len + lead], &dout[n, o, 0, 0], ho, wo, width)
        l5_input_grad_digit(&dx[n, 0, 0, 0], map_len, &ext[tid, 0], ext_len, lead, &conn_start[0],
                            &conn_in[0], w, &wd[0], n_out, n_in, k, width)
    if l5_channels_last(n_out) and k == 5:
        _kernel_gradients_channels_last(dw, dout, x, conn_start, conn_in, n_threads)
        for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
            db[o] = _bias_gradient(dout, o)
        return 0
    # Each kernel p belongs to exactly one output map (conn_start is
    # non-decreasing), so splitting over o never shares a dw[p]; map o's
    # kernels are the contiguous block conn_start[o]:conn_start[o + 1].
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        db[o] = _bias_gradient(dout, o)
        first = conn_start[o]
        if conn_start[o + 1] == first:
            continue
        for blk in range((n_batch + GRAD_DIGITS - 1) // GRAD_DIGITS):
            n0 = blk * GRAD_DIGITS
            nd = min(<Py_ssize_t>GRAD_DIGITS, n_batch - n0)
            for d in range(nd):
                _pad_rows(&padded[tid, d * ho * width], &dout[n0 + d, o, 0, 0], ho, wo, width)
            for p in range(first, conn_start[o + 1]):
                l5_kernel_gradient_block(&total[tid, (p - first) * k * k], &padded[tid, 0], ho * width,
                                         &x[n0, conn_in[p], 0, 0], n_in * x.shape[2] * width, nd,
                                         k, width, span)
        _store(dw + first * k * k, &total[tid, 0], (conn_start[o + 1] - first) * k * k)
    return 0


cdef int _kernel_gradients_channels_last(float* dw, const float[:, :, :, ::1] dout,
                                         const float[:, :, :, ::1] x, const int64_t[::1] conn_start,
                                         const int64_t[::1] conn_in, int n_threads) except -1:
    # dw (P, 5, 5) with the output maps in the vector lanes (l5_conv.h): every digit's output
    # gradients transposed once, then one task per input map and group of output maps, each
    # writing the kernels of its own pairs, so no two tasks share a dw[p].
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], width = x.shape[3]
    cdef Py_ssize_t n_out = dout.shape[1], ho = dout.shape[2], wo = dout.shape[3]
    cdef Py_ssize_t groups = l5_map_groups(n_out), positions = ho * wo
    cdef Py_ssize_t digit_step = groups * positions * L5_LANES
    cdef float[::1] gt = _aligned_floats(n_batch * digit_step)
    cdef double[:, ::1] total = np.zeros((n_in * groups, 25 * L5_LANES), np.float64)
    cdef Py_ssize_t n, task, c, g, blk, n0, o, p, t
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        l5_cl_transpose(&gt[n * digit_step], &dout[n, 0, 0, 0], n_out, positions)
    for task in prange(n_in * groups, nogil=True, schedule="dynamic", num_threads=n_threads):
        c = task // groups
        g = task % groups
        for blk in range((n_batch + GRAD_DIGITS - 1) // GRAD_DIGITS):
            n0 = blk * GRAD_DIGITS
            l5_cl_kernel_gradient_block(&total[task, 0], &gt[n0 * digit_step + g * positions * L5_LANES],
                                        digit_step, &x[n0, c, 0, 0], n_in * x.shape[2] * width,
                                        min(<Py_ssize_t>GRAD_DIGITS, n_batch - n0), ho, wo, width)
        for o in range(g * L5_LANES, min(n_out, (g + 1) * L5_LANES)):
            for p in range(conn_start[o], conn_start[o + 1]):
                if conn_in[p] == c:
                    for t in range(25):
                        dw[p * 25 + t] = <float>total[task, t * L5_LANES + o - g * L5_LANES]
    return 0


# --- dense ------------------------------------------------------------------

cdef int _check_conv2d_backward(str name, float[:, :, :, ::1] dx, float[:, :, :, ::1] dw,
                                float[::1] db, const float[:, :, :, ::1] dout,
                                const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                                int n_threads) except -1:
    # The checks of conv2d_backward and conv2d_curvature (same arguments).
    check_threads(name, n_threads)
    check_kernel_fits(name, w.shape[2], w.shape[3], x.shape[2], x.shape[3])
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0], k = w.shape[2]
    cdef Py_ssize_t ho = x.shape[2] - k + 1, wo = x.shape[3] - k + 1
    check_shape(name, "w", w.shape, 4, (n_out, n_in, k, k))
    check_shape(name, "dout", dout.shape, 4, (n_batch, n_out, ho, wo))
    if dx is not None:
        check_shape(name, "dx", dx.shape, 4, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]))
    check_shape(name, "dw", dw.shape, 4, (n_out, n_in, k, k))
    check_shape(name, "db", db.shape, 1, (n_out,))
    return 0

def conv2d_forward(float[:, :, :, ::1] out not None, const float[:, :, :, ::1] x not None,
                   const float[:, :, :, ::1] w not None, const float[::1] b not None,
                   int n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (Co, Ci, K, K)   b: (Co,); Ho = H - K + 1."""
    name = "conv2d_forward"
    check_threads(name, n_threads)
    check_kernel_fits(name, w.shape[2], w.shape[3], x.shape[2], x.shape[3])
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0], k = w.shape[2]
    cdef Py_ssize_t ho = x.shape[2] - k + 1, wo = x.shape[3] - k + 1
    check_shape(name, "w", w.shape, 4, (n_out, n_in, k, k))
    check_shape(name, "b", b.shape, 1, (n_out,))
    check_shape(name, "out", out.shape, 4, (n_batch, n_out, ho, wo))
    conn_start, conn_in = full_connection_table(n_out, n_in)
    _forward(out, x, &w[0, 0, 0, 0], b, conn_start, conn_in, k, n_threads)


def conv2d_backward(float[:, :, :, ::1] dx, float[:, :, :, ::1] dw not None,
                    float[::1] db not None, const float[:, :, :, ::1] dout not None,
                    const float[:, :, :, ::1] x not None, const float[:, :, :, ::1] w not None,
                    int n_threads):
    """dx: (N, Ci, H, W) or None (skipped: a network's first layer)   dw: (Co, Ci, K, K)   db: (Co,)
    dout: (N, Co, Ho, Wo); x, w as forward."""
    _check_conv2d_backward("conv2d_backward", dx, dw, db, dout, x, w, n_threads)
    conn_start, conn_in = full_connection_table(w.shape[0], w.shape[1])
    _backward(dx, &dw[0, 0, 0, 0], db, dout, x, &w[0, 0, 0, 0], conn_start, conn_in,
              w.shape[2], n_threads)


# --- sparse (Table I) -------------------------------------------------------

cdef int _check_sparse_conv2d_backward(str name, float[:, :, :, ::1] dx, float[:, :, ::1] dw,
                                       float[::1] db, const float[:, :, :, ::1] dout,
                                       const float[:, :, :, ::1] x, const float[:, :, ::1] w,
                                       const int64_t[::1] conn_start, const int64_t[::1] conn_in,
                                       int n_threads) except -1:
    # The checks of sparse_conv2d_backward and sparse_conv2d_curvature (same arguments).
    check_threads(name, n_threads)
    check_kernel_fits(name, w.shape[1], w.shape[2], x.shape[2], x.shape[3])
    cdef Py_ssize_t n_batch = x.shape[0], n_out = dout.shape[1], k = w.shape[1]
    cdef Py_ssize_t ho = x.shape[2] - k + 1, wo = x.shape[3] - k + 1
    check_shape(name, "dout", dout.shape, 4, (n_batch, n_out, ho, wo))
    if dx is not None:
        check_shape(name, "dx", dx.shape, 4, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]))
    check_shape(name, "dw", dw.shape, 3, (w.shape[0], k, k))
    check_shape(name, "db", db.shape, 1, (n_out,))
    check_table(name, conn_start, conn_in, n_out, w.shape[0], x.shape[1])
    return 0

def sparse_conv2d_forward(float[:, :, :, ::1] out not None, const float[:, :, :, ::1] x not None,
                          const float[:, :, ::1] w not None, const float[::1] b not None,
                          const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                          int n_threads):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (P, K, K)   b: (Co,)
    conn_start: (Co + 1,) int64   conn_in: (P,) int64 (see kernels/tables.py)"""
    name = "sparse_conv2d_forward"
    check_threads(name, n_threads)
    check_kernel_fits(name, w.shape[1], w.shape[2], x.shape[2], x.shape[3])
    cdef Py_ssize_t n_batch = x.shape[0], n_out = b.shape[0], k = w.shape[1]
    cdef Py_ssize_t ho = x.shape[2] - k + 1, wo = x.shape[3] - k + 1
    check_shape(name, "out", out.shape, 4, (n_batch, n_out, ho, wo))
    check_table(name, conn_start, conn_in, n_out, w.shape[0], x.shape[1])
    _forward(out, x, &w[0, 0, 0], b, conn_start, conn_in, k, n_threads)


def sparse_conv2d_backward(float[:, :, :, ::1] dx, float[:, :, ::1] dw not None,
                           float[::1] db not None, const float[:, :, :, ::1] dout not None,
                           const float[:, :, :, ::1] x not None, const float[:, :, ::1] w not None,
                           const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                           int n_threads):
    """dx: (N, Ci, H, W) or None (skipped)   dw: (P, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo);
    the rest as forward."""
    _check_sparse_conv2d_backward("sparse_conv2d_backward", dx, dw, db, dout, x, w,
                                  conn_start, conn_in, n_threads)
    _backward(dx, &dw[0, 0, 0], db, dout, x, &w[0, 0, 0], conn_start, conn_in, w.shape[1], n_threads)


# --- second-order backward (SDLM): backward with inputs and weights squared --
# Run once per pass on a few hundred digits, so written plainly.

cdef void _scatter_add_squared(float[:, ::1] hxmap, const float[:, ::1] houtmap,
                               const float[:, ::1] wk) noexcept nogil:
    # hxmap += houtmap sent back through wk**2.
    cdef Py_ssize_t ho = houtmap.shape[0], wo = houtmap.shape[1], k = wk.shape[0]
    cdef Py_ssize_t ki, kj, i, j
    cdef float wv
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj] * wk[ki, kj]
            for i in range(ho):
                for j in range(wo):
                    hxmap[i + ki, j + kj] += wv * houtmap[i, j]


cdef void _kernel_curvature(float[:, ::1] hwk, const float[:, :, ::1] hout_o,
                            const float[:, :, ::1] x_c) noexcept nogil:
    # hwk = sum over the batch of houtmap (*) xmap**2, in double.
    cdef Py_ssize_t ki, kj, n, i, j
    cdef double total
    cdef float v
    for ki in range(hwk.shape[0]):
        for kj in range(hwk.shape[1]):
            total = 0.0
            for n in range(hout_o.shape[0]):
                for i in range(hout_o.shape[1]):
                    for j in range(hout_o.shape[2]):
                        v = x_c[n, i + ki, j + kj]
                        total += hout_o[n, i, j] * v * v
            hwk[ki, kj] = <float>total


def conv2d_curvature(float[:, :, :, ::1] hx not None, float[:, :, :, ::1] hw not None,
                     float[::1] hb not None, const float[:, :, :, ::1] hout not None,
                     const float[:, :, :, ::1] x not None, const float[:, :, :, ::1] w not None,
                     int n_threads):
    """Gauss-Newton diagonal of conv2d_forward; shapes as conv2d_backward, h* for d*."""
    _check_conv2d_backward("conv2d_curvature", hx, hw, hb, hout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t n, o, c
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        hx[n, :, :, :] = 0
        for o in range(n_out):
            for c in range(n_in):
                _scatter_add_squared(hx[n, c], hout[n, o], w[o, c])
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        hb[o] = _bias_gradient(hout, o)
        for c in range(n_in):
            _kernel_curvature(hw[o, c], hout[:, o], x[:, c])


def sparse_conv2d_curvature(float[:, :, :, ::1] hx not None, float[:, :, ::1] hw not None,
                            float[::1] hb not None, const float[:, :, :, ::1] hout not None,
                            const float[:, :, :, ::1] x not None, const float[:, :, ::1] w not None,
                            const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                            int n_threads):
    """Gauss-Newton diagonal of sparse_conv2d_forward; shapes as sparse_conv2d_backward."""
    _check_sparse_conv2d_backward("sparse_conv2d_curvature", hx, hw, hb, hout, x, w,
                                  conn_start, conn_in, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_out = hout.shape[1]
    cdef Py_ssize_t n, o, p
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        hx[n, :, :, :] = 0
        for o in range(n_out):
            for p in range(conn_start[o], conn_start[o + 1]):
                _scatter_add_squared(hx[n, conn_in[p]], hout[n, o], w[p])
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        hb[o] = _bias_gradient(hout, o)
        for p in range(conn_start[o], conn_start[o + 1]):
            _kernel_curvature(hw[p], hout[:, o], x[:, conn_in[p]])
