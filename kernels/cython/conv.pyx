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
below, over _simd.pxi's 8-float vectors, sums kept in registers.
"""

from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t

import numpy as np

from lenet_engine.kernels.tables import full_connection_table

include "_checks.pxi"
include "_dot.pxi"
include "_simd.pxi"


cdef extern from *:
    """
    /* The 8-float vectors starting at u0 + 8 v (v < nv) of a run of `length` floats (>= 8);
       a vector that would cross the end starts at length - 8 instead (overlapping the one
       before it, with the same values), so nothing past the run is read or written. */
    static inline Py_ssize_t l5_vector_start(Py_ssize_t u0, int v, Py_ssize_t length) {
        Py_ssize_t u = u0 + 8 * v;
        return u + 8 <= length ? u : length - 8;
    }

    /* Forward, one output map in row-padded layout, nv vectors from u0:
       out[u] = bias + sum over pairs p in [first, stop) and taps of w[p][tap] * map_p[tap offset + u],
       map_p = x + in_map[p] * map_size. The sum runs in the reference's order: bias, then pairs,
       kernel rows, kernel columns. */
    L5_ALWAYS_INLINE void l5_forward_block(float *out, Py_ssize_t u0, const int nv, Py_ssize_t length,
                                           const float *x, Py_ssize_t map_size, const int64_t *in_map,
                                           Py_ssize_t first, Py_ssize_t stop, const float *w,
                                           Py_ssize_t k, Py_ssize_t width, float bias) {
        Py_ssize_t at[8];
        l5_v8 acc[8];
        for (int v = 0; v < nv; v++) { at[v] = l5_vector_start(u0, v, length); acc[v] = l5_set1(bias); }
        for (Py_ssize_t p = first; p < stop; p++) {
            const float *xm = x + in_map[p] * map_size, *wp = w + p * k * k;
            for (Py_ssize_t ki = 0; ki < k; ki++)
                for (Py_ssize_t kj = 0; kj < k; kj++) {
                    l5_v8 wv = l5_set1(wp[ki * k + kj]);
                    const float *src = xm + ki * width + kj;
                    for (int v = 0; v < nv; v++) acc[v] = l5_fma(wv, l5_load(src + at[v]), acc[v]);
                }
        }
        for (int v = 0; v < nv; v++) l5_store(out + at[v], acc[v]);
    }

    static void l5_forward_map(float *out, Py_ssize_t span, const float *x, Py_ssize_t map_size,
                               const int64_t *in_map, Py_ssize_t first, Py_ssize_t stop,
                               const float *w, Py_ssize_t k, Py_ssize_t width, float bias) {
        if (span < 8) {  /* maps too small for one vector */
            for (Py_ssize_t u = 0; u < span; u++) {
                float acc = bias;
                for (Py_ssize_t p = first; p < stop; p++)
                    for (Py_ssize_t t = 0; t < k * k; t++)
                        acc += w[p * k * k + t] * x[in_map[p] * map_size + (t / k) * width + t % k + u];
                out[u] = acc;
            }
            return;
        }
        /* Eight vectors at a time: each tap's multiply-add into a vector waits for the one
           before it (the multiply-add's latency), so eight independent sums keep both FMA
           units busy where four would leave them waiting. */
        Py_ssize_t u0 = 0;
        for (; u0 + 64 <= span; u0 += 64)
            l5_forward_block(out, u0, 8, span, x, map_size, in_map, first, stop, w, k, width, bias);
        for (; u0 + 32 <= span; u0 += 32)
            l5_forward_block(out, u0, 4, span, x, map_size, in_map, first, stop, w, k, width, bias);
        for (; u0 < span; u0 += 8)
            l5_forward_block(out, u0, 1, span, x, map_size, in_map, first, stop, w, k, width, bias);
    }

    /* Input gradient of input map c, nv vectors from u0 of the map (H * W floats):
       dx[u] = sum over the pairs p reading map c, and taps, of w[p][tap] * g_p[u - tap offset],
       g_p the row-padded output gradient of the output map o that pair p belongs to
       (conn_start[o] <= p < conn_start[o + 1]), stored at ext + o * ext_len
       + lead behind `lead` zeros and followed by zeros up to ext_len. The same terms in the same
       order as sending each output gradient back through its kernels one after another. */
    L5_ALWAYS_INLINE void l5_input_grad_block(float *dx, Py_ssize_t u0, const int nv, Py_ssize_t length,
                                              const float *ext, Py_ssize_t ext_len, Py_ssize_t lead,
                                              const int64_t *conn_start, const int64_t *in_map,
                                              Py_ssize_t n_out, Py_ssize_t c, const float *w,
                                              Py_ssize_t k, Py_ssize_t width) {
        Py_ssize_t at[8];
        l5_v8 acc[8];
        for (int v = 0; v < nv; v++) { at[v] = l5_vector_start(u0, v, length); acc[v] = l5_set1(0.0f); }
        for (Py_ssize_t o = 0; o < n_out; o++)
          for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++) {
            if (in_map[p] != c) continue;
            const float *g = ext + o * ext_len + lead, *wp = w + p * k * k;
            for (Py_ssize_t ki = 0; ki < k; ki++)
                for (Py_ssize_t kj = 0; kj < k; kj++) {
                    l5_v8 wv = l5_set1(wp[ki * k + kj]);
                    const float *src = g - ki * width - kj;
                    for (int v = 0; v < nv; v++) acc[v] = l5_fma(wv, l5_load(src + at[v]), acc[v]);
                }
        }
        for (int v = 0; v < nv; v++) l5_store(dx + at[v], acc[v]);
    }

    static void l5_input_grad_map(float *dx, Py_ssize_t map_len, const float *ext, Py_ssize_t ext_len,
                                  Py_ssize_t lead, const int64_t *conn_start, const int64_t *in_map,
                                  Py_ssize_t n_out, Py_ssize_t c, const float *w, Py_ssize_t k,
                                  Py_ssize_t width) {
        if (map_len < 8) {
            for (Py_ssize_t u = 0; u < map_len; u++) {
                float acc = 0.0f;
                for (Py_ssize_t o = 0; o < n_out; o++)
                    for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++) {
                        if (in_map[p] != c) continue;
                        for (Py_ssize_t t = 0; t < k * k; t++)
                            acc += w[p * k * k + t] * ext[o * ext_len + lead + u - (t / k) * width - t % k];
                    }
                dx[u] = acc;
            }
            return;
        }
        Py_ssize_t u0 = 0;  /* eight vectors at a time, as l5_forward_map */
        for (; u0 + 64 <= map_len; u0 += 64)
            l5_input_grad_block(dx, u0, 8, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
        for (; u0 + 32 <= map_len; u0 += 32)
            l5_input_grad_block(dx, u0, 4, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
        for (; u0 < map_len; u0 += 8)
            l5_input_grad_block(dx, u0, 1, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
    }

    /* Kernel gradient, `rows` (1 or 2) kernel rows of k taps: total[r * k + kj] +=
       sum_{i < length} a[i] * b[r * width + i + kj], a the row-padded output gradient, b the input
       map at the first row's first tap. Up to five taps of each row at a time share each load
       of a, their sums in registers: float32 in 8 lanes restarted every 256 elements (as
       _dot.pxi's dot), then double. Two rows give ten independent sums: one row's five left the
       FMA units waiting on each other's results. Each sum sees the same terms in the same
       order either way. */
    L5_ALWAYS_INLINE void l5_taps_add(double *total, Py_ssize_t k, const float *a, const float *b,
                                      Py_ssize_t width, Py_ssize_t length, const int n, const int rows) {
        for (Py_ssize_t start = 0; start < length; start += 256) {
            Py_ssize_t stop = start + 256 < length ? start + 256 : length, i = start;
            l5_v8 s[2][5];
            float tail[2][5] = {{0.0f}};
            for (int r = 0; r < rows; r++)
                for (int q = 0; q < n; q++) s[r][q] = l5_set1(0.0f);
            for (; i + 8 <= stop; i += 8) {
                l5_v8 va = l5_load(a + i);
                for (int r = 0; r < rows; r++)
                    for (int q = 0; q < n; q++) s[r][q] = l5_fma(va, l5_load(b + r * width + i + q), s[r][q]);
            }
            for (; i < stop; i++)
                for (int r = 0; r < rows; r++)
                    for (int q = 0; q < n; q++) tail[r][q] += a[i] * b[r * width + i + q];
            /* The rows x n sums reduced eight at a time (l5_hsum8); unused slots hold zeros. */
            l5_v8 all[16];
            float sums[16];
            for (int j = 0; j < 16; j++) all[j] = j < rows * n ? s[j / n][j % n] : l5_set1(0.0f);
            l5_hsum8(all, sums);
            if (rows * n > 8) l5_hsum8(all + 8, sums + 8);
            for (int r = 0; r < rows; r++)
                for (int q = 0; q < n; q++) total[r * k + q] += (double)(sums[r * n + q] + tail[r][q]);
        }
    }

    /* Inlined into each call with its `rows` a constant, on purpose: left to the compiler,
       whether it specialises the function for each call depends on the whole file's size,
       and the specialised and generic versions round differently. */
    L5_ALWAYS_INLINE void l5_rows_taps_add(double *total, const float *a, const float *b, Py_ssize_t width,
                                           Py_ssize_t length, Py_ssize_t k, const int rows) {
        Py_ssize_t kj = 0;
        for (; kj + 5 <= k; kj += 5) l5_taps_add(total + kj, k, a, b + kj, width, length, 5, rows);
        switch (k - kj) {
            case 4: l5_taps_add(total + kj, k, a, b + kj, width, length, 4, rows); break;
            case 3: l5_taps_add(total + kj, k, a, b + kj, width, length, 3, rows); break;
            case 2: l5_taps_add(total + kj, k, a, b + kj, width, length, 2, rows); break;
            case 1: l5_taps_add(total + kj, k, a, b + kj, width, length, 1, rows); break;
        }
    }

    /* Kernel gradient of one map pair: total (k x k) += the row-padded output gradient a
       correlated with the input map b, two kernel rows at a time. */
    static void l5_kernel_gradient_add(double *total, const float *a, const float *b, Py_ssize_t k,
                                       Py_ssize_t width, Py_ssize_t span) {
        Py_ssize_t ki = 0;
        for (; ki + 2 <= k; ki += 2) l5_rows_taps_add(total + ki * k, a, b + ki * width, width, span, k, 2);
        if (ki < k) l5_rows_taps_add(total + ki * k, a, b + ki * width, width, span, k, 1);
    }
    """
    void l5_forward_map(float* out, Py_ssize_t span, const float* x, Py_ssize_t map_size,
                        const int64_t* in_map, Py_ssize_t first, Py_ssize_t stop,
                        const float* w, Py_ssize_t k, Py_ssize_t width, float bias) noexcept nogil
    void l5_input_grad_map(float* dx, Py_ssize_t map_len, const float* ext, Py_ssize_t ext_len,
                           Py_ssize_t lead, const int64_t* conn_start, const int64_t* in_map,
                           Py_ssize_t n_out, Py_ssize_t c, const float* w, Py_ssize_t k,
                           Py_ssize_t width) noexcept nogil
    void l5_kernel_gradient_add(double* total, const float* a, const float* b, Py_ssize_t k,
                                Py_ssize_t width, Py_ssize_t span) noexcept nogil


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


cdef int _forward(float[:, :, :, ::1] out, const float[:, :, :, ::1] x, const float* w,
                  const float[::1] b, const int64_t[::1] conn_start, const int64_t[::1] conn_in,
                  Py_ssize_t k, int n_threads) except -1:
    # out (N, Co, Ho, Wo) = b + the pairs of the table; w: the pairs' kernels (P, K, K).
    cdef Py_ssize_t n_batch = out.shape[0], n_out = out.shape[1], ho = out.shape[2], wo = out.shape[3]
    cdef Py_ssize_t width = x.shape[3], map_size = x.shape[2] * x.shape[3]
    cdef Py_ssize_t span = (ho - 1) * width + wo
    # Per-thread scratch, indexed by OpenMP thread number: one output map, row-padded.
    cdef float[:, ::1] padded = np.empty((n_threads, ho * width), np.float32)
    cdef Py_ssize_t n, o, i, j
    cdef int tid
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
    cdef float[:, ::1] padded = np.empty((n_threads, ho * width), np.float32)
    cdef double[:, ::1] total = np.zeros((n_threads, most_pairs * k * k), np.float64)

    cdef Py_ssize_t n, c, p, first
    cdef int tid
    cdef Py_ssize_t input_grads = 0 if dx is None else n_batch
    for n in prange(input_grads, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        for o in range(n_out):
            _pad_rows(&ext[tid, o * ext_len + lead], &dout[n, o, 0, 0], ho, wo, width)
        for c in range(n_in):
            l5_input_grad_map(&dx[n, c, 0, 0], map_len, &ext[tid, 0], ext_len, lead,
                              &conn_start[0], &conn_in[0], n_out, c, w, k, width)
    # Each kernel p belongs to exactly one output map (conn_start is
    # non-decreasing), so splitting over o never shares a dw[p]; map o's
    # kernels are the contiguous block conn_start[o]:conn_start[o + 1].
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        db[o] = _bias_gradient(dout, o)
        first = conn_start[o]
        if conn_start[o + 1] == first:
            continue
        for n in range(n_batch):
            _pad_rows(&padded[tid, 0], &dout[n, o, 0, 0], ho, wo, width)
            for p in range(first, conn_start[o + 1]):
                l5_kernel_gradient_add(&total[tid, (p - first) * k * k], &padded[tid, 0],
                                       &x[n, conn_in[p], 0, 0], k, width, span)
        _store(dw + first * k * k, &total[tid, 0], (conn_start[o + 1] - first) * k * k)
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
