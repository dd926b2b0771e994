# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/conv.py (the reference) and kernels/numba/conv.py.
"""Cython kernels: valid 2-D convolution, dense and sparse (Table I).

Forward and input gradients run in parallel over the batch; weight and bias
gradients in parallel over output maps, each summing its batch serially, so
no two threads write the same element. Called through lenet_engine.layers.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t

include "_checks.pxi"
include "_dot.pxi"


# --- the per-pair loops, shared by the dense and sparse kernels -------------
# Same names and jobs as the helpers of the Numba twin. The batch sums live in
# functions rather than in the prange bodies also because Cython turns
# `s += ...` on a local inside prange into an OpenMP reduction.

cdef enum:
    # Floats in _correlate_add's stack buffer (16 KB, private to the calling thread).
    BAND = 4096


cdef void _correlate_add(float[:, ::1] acc, const float[:, ::1] xmap,
                         const float[:, ::1] wk) noexcept nogil:
    # acc += valid correlation of xmap with wk.   acc: (Ho, Wo)   xmap: (H, W)   wk: (K, K)
    # Output rows are short (10 floats in C3), too short to vectorise well one
    # at a time. So a band of output rows is summed in a buffer laid out with
    # the input's row stride W: each tap (ki, kj) is then one long axpy over a
    # contiguous run of xmap for the whole band. The W - Wo extra columns per
    # row this also computes are dropped; every read stays inside xmap. The
    # Numba twin loops row by row, as the fallback below does.
    cdef Py_ssize_t ho = acc.shape[0], wo = acc.shape[1], width = xmap.shape[1], k = wk.shape[0]
    cdef Py_ssize_t ki, kj, i, j, t, band, i0, n_rows, span
    cdef Py_ssize_t band_rows = (BAND - wo) // width + 1 if wo <= BAND else 0
    cdef float buf[BAND]
    cdef float wv
    cdef float* dst
    cdef const float* src
    if band_rows == 0:
        # Rows longer than the buffer: long enough to vectorise one at a time.
        for ki in range(k):
            for kj in range(k):
                wv = wk[ki, kj]
                for i in range(ho):
                    dst = &acc[i, 0]
                    src = &xmap[i + ki, kj]
                    for j in range(wo):
                        dst[j] += wv * src[j]
        return
    for band in range((ho + band_rows - 1) // band_rows):
        i0 = band * band_rows
        n_rows = min(band_rows, ho - i0)
        span = (n_rows - 1) * width + wo
        for t in range(span):
            buf[t] = 0.0
        for ki in range(k):
            for kj in range(k):
                wv = wk[ki, kj]
                src = &xmap[i0 + ki, kj]
                for t in range(span):
                    buf[t] += wv * src[t]
        for i in range(n_rows):
            dst = &acc[i0 + i, 0]
            for j in range(wo):
                dst[j] += buf[i * width + j]


cdef void _scatter_add(float[:, ::1] dxmap, const float[:, ::1] doutmap,
                       const float[:, ::1] wk) noexcept nogil:
    # dxmap += the gradient of _correlate_add's acc, doutmap, sent back through wk.
    cdef Py_ssize_t ho = doutmap.shape[0], wo = doutmap.shape[1], k = wk.shape[0]
    cdef Py_ssize_t ki, kj, i, j
    cdef float wv
    cdef float* dst
    cdef const float* src
    for ki in range(k):
        for kj in range(k):
            wv = wk[ki, kj]
            for i in range(ho):
                dst = &dxmap[i + ki, kj]
                src = &doutmap[i, 0]
                for j in range(wo):
                    dst[j] += wv * src[j]


cdef void _kernel_gradient(float[:, ::1] dwk, const float[:, :, ::1] dout_o,
                           const float[:, :, ::1] x_c) noexcept nogil:
    # dwk = sum over the batch of doutmap (*) xmap.   dwk: (K, K)   dout_o: (N, Ho, Wo)   x_c: (N, H, W)
    # Double across the batch, float32 within one map (its rows are vectorised dot products).
    cdef Py_ssize_t n_batch = dout_o.shape[0], ho = dout_o.shape[1], wo = dout_o.shape[2]
    cdef Py_ssize_t k = dwk.shape[0]
    cdef Py_ssize_t ki, kj, n, i
    cdef double total
    cdef float acc
    for ki in range(k):
        for kj in range(k):
            total = 0.0
            for n in range(n_batch):
                acc = 0.0
                for i in range(ho):
                    acc += dot(&dout_o[n, i, 0], &x_c[n, i + ki, kj], wo)
                total += acc
            dwk[ki, kj] = <float>total


cdef float _bias_gradient(const float[:, :, ::1] dout_o) noexcept nogil:
    # Sum of dout_o (N, Ho, Wo), in double.
    cdef Py_ssize_t n, i, j
    cdef double total = 0.0
    for n in range(dout_o.shape[0]):
        for i in range(dout_o.shape[1]):
            for j in range(dout_o.shape[2]):
                total += dout_o[n, i, j]
    return <float>total


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
    check_shape(name, "dx", dx.shape, 4, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]))
    check_shape(name, "dw", dw.shape, 4, (n_out, n_in, k, k))
    check_shape(name, "db", db.shape, 1, (n_out,))
    return 0


def conv2d_forward(float[:, :, :, ::1] out not None, const float[:, :, :, ::1] x not None,
                   const float[:, :, :, ::1] w not None, const float[::1] b not None,
                   int n_threads=1):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (Co, Ci, K, K)   b: (Co,); Ho = H - K + 1."""
    name = "conv2d_forward"
    check_threads(name, n_threads)
    check_kernel_fits(name, w.shape[2], w.shape[3], x.shape[2], x.shape[3])
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0], k = w.shape[2]
    cdef Py_ssize_t ho = x.shape[2] - k + 1, wo = x.shape[3] - k + 1
    check_shape(name, "w", w.shape, 4, (n_out, n_in, k, k))
    check_shape(name, "b", b.shape, 1, (n_out,))
    check_shape(name, "out", out.shape, 4, (n_batch, n_out, ho, wo))

    cdef Py_ssize_t n, o, c
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for o in range(n_out):
            out[n, o, :, :] = b[o]
            for c in range(n_in):
                _correlate_add(out[n, o], x[n, c], w[o, c])


def conv2d_backward(float[:, :, :, ::1] dx not None, float[:, :, :, ::1] dw not None,
                    float[::1] db not None, const float[:, :, :, ::1] dout not None,
                    const float[:, :, :, ::1] x not None, const float[:, :, :, ::1] w not None,
                    int n_threads=1):
    """dx: (N, Ci, H, W)   dw: (Co, Ci, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo); x, w as forward."""
    _check_conv2d_backward("conv2d_backward", dx, dw, db, dout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]

    cdef Py_ssize_t n, o, c
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        dx[n, :, :, :] = 0
        for o in range(n_out):
            for c in range(n_in):
                _scatter_add(dx[n, c], dout[n, o], w[o, c])
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        db[o] = _bias_gradient(dout[:, o])
        for c in range(n_in):
            _kernel_gradient(dw[o, c], dout[:, o], x[:, c])


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
    check_shape(name, "dx", dx.shape, 4, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]))
    check_shape(name, "dw", dw.shape, 3, (w.shape[0], k, k))
    check_shape(name, "db", db.shape, 1, (n_out,))
    check_table(name, conn_start, conn_in, n_out, w.shape[0], x.shape[1])
    return 0


def sparse_conv2d_forward(float[:, :, :, ::1] out not None, const float[:, :, :, ::1] x not None,
                          const float[:, :, ::1] w not None, const float[::1] b not None,
                          const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                          int n_threads=1):
    """out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (P, K, K)   b: (Co,)
    conn_start: (Co + 1,) int64   conn_in: (P,) int64 (see constants.connection_arrays)"""
    name = "sparse_conv2d_forward"
    check_threads(name, n_threads)
    check_kernel_fits(name, w.shape[1], w.shape[2], x.shape[2], x.shape[3])
    cdef Py_ssize_t n_batch = x.shape[0], n_out = b.shape[0], k = w.shape[1]
    cdef Py_ssize_t ho = x.shape[2] - k + 1, wo = x.shape[3] - k + 1
    check_shape(name, "out", out.shape, 4, (n_batch, n_out, ho, wo))
    check_table(name, conn_start, conn_in, n_out, w.shape[0], x.shape[1])

    cdef Py_ssize_t n, o, p
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for o in range(n_out):
            out[n, o, :, :] = b[o]
            for p in range(conn_start[o], conn_start[o + 1]):
                _correlate_add(out[n, o], x[n, conn_in[p]], w[p])


def sparse_conv2d_backward(float[:, :, :, ::1] dx not None, float[:, :, ::1] dw not None,
                           float[::1] db not None, const float[:, :, :, ::1] dout not None,
                           const float[:, :, :, ::1] x not None, const float[:, :, ::1] w not None,
                           const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                           int n_threads=1):
    """dx: (N, Ci, H, W)   dw: (P, K, K)   db: (Co,)   dout: (N, Co, Ho, Wo); the rest as forward."""
    _check_sparse_conv2d_backward("sparse_conv2d_backward", dx, dw, db, dout, x, w,
                                  conn_start, conn_in, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_out = dout.shape[1]

    cdef Py_ssize_t n, o, p
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        dx[n, :, :, :] = 0
        for o in range(n_out):
            for p in range(conn_start[o], conn_start[o + 1]):
                _scatter_add(dx[n, conn_in[p]], dout[n, o], w[p])
    # Each kernel p belongs to exactly one output map (conn_start is
    # non-decreasing), so splitting over o never shares a dw[p].
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        db[o] = _bias_gradient(dout[:, o])
        for p in range(conn_start[o], conn_start[o + 1]):
            _kernel_gradient(dw[p], dout[:, o], x[:, conn_in[p]])


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
                     int n_threads=1):
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
        hb[o] = _bias_gradient(hout[:, o])
        for c in range(n_in):
            _kernel_curvature(hw[o, c], hout[:, o], x[:, c])


def sparse_conv2d_curvature(float[:, :, :, ::1] hx not None, float[:, :, ::1] hw not None,
                            float[::1] hb not None, const float[:, :, :, ::1] hout not None,
                            const float[:, :, :, ::1] x not None, const float[:, :, ::1] w not None,
                            const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                            int n_threads=1):
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
        hb[o] = _bias_gradient(hout[:, o])
        for p in range(conn_start[o], conn_start[o + 1]):
            _kernel_curvature(hw[p], hout[:, o], x[:, conn_in[p]])
