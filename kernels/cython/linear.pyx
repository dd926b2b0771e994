# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/linear.py (the reference) and kernels/numba/linear.py.
"""Cython kernels: full (dense) layer (C5, F6 and the modern Dense layers).

Forward and input gradient in parallel over the batch; weight and bias
gradients in parallel over output units. Called through lenet_engine.layers.
"""

from cython.parallel cimport prange

include "_checks.pxi"
include "_dot.pxi"

cdef enum:
    # Columns of a weight-gradient row summed at once: their double
    # accumulators live on the stack of the thread that owns the row.
    CHUNK = 64


cdef void _param_grads(float[:, ::1] dw, float[::1] db, const float[:, ::1] dout,
                       const float[:, ::1] x, Py_ssize_t o) noexcept nogil:
    # Row o of dw and db[o]: sums over the batch, in double.
    # A function, not inline code: inside prange Cython would make `s += ...` a reduction.
    cdef Py_ssize_t n, i, block, start, width
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1]
    cdef double acc[CHUNK]
    cdef double bias_sum = 0.0
    cdef float g
    cdef const float* row
    for n in range(n_batch):
        bias_sum += dout[n, o]
    db[o] = <float>bias_sum
    for block in range((n_in + CHUNK - 1) // CHUNK):
        start = block * CHUNK
        width = min(<Py_ssize_t>CHUNK, n_in - start)
        for i in range(width):
            acc[i] = 0.0
        for n in range(n_batch):
            g = dout[n, o]
            row = &x[n, start]
            for i in range(width):
                acc[i] += g * row[i]
        for i in range(width):
            dw[o, start + i] = <float>acc[i]


def linear_forward(float[:, ::1] out not None, const float[:, ::1] x not None,
                   const float[:, ::1] w not None, const float[::1] b not None, int n_threads=1):
    """out: (N, O)   x: (N, I)   w: (O, I)   b: (O,)"""
    name = "linear_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    check_shape(name, "w", w.shape, 2, (n_out, n_in))
    check_shape(name, "b", b.shape, 1, (n_out,))
    check_shape(name, "out", out.shape, 2, (n_batch, n_out))

    cdef Py_ssize_t n, o
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for o in range(n_out):
            out[n, o] = dot(&w[o, 0], &x[n, 0], n_in) + b[o]


cdef int _check_linear_backward(str name, float[:, ::1] dx, float[:, ::1] dw, float[::1] db,
                                const float[:, ::1] dout, const float[:, ::1] x,
                                const float[:, ::1] w, int n_threads) except -1:
    # The checks of linear_backward and linear_curvature (same arguments).
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    check_shape(name, "w", w.shape, 2, (n_out, n_in))
    check_shape(name, "dout", dout.shape, 2, (n_batch, n_out))
    check_shape(name, "dx", dx.shape, 2, (n_batch, n_in))
    check_shape(name, "dw", dw.shape, 2, (n_out, n_in))
    check_shape(name, "db", db.shape, 1, (n_out,))
    return 0


def linear_backward(float[:, ::1] dx not None, float[:, ::1] dw not None, float[::1] db not None,
                    const float[:, ::1] dout not None, const float[:, ::1] x not None,
                    const float[:, ::1] w not None, int n_threads=1):
    """dx: (N, I)   dw: (O, I)   db: (O,)   dout: (N, O); x, w as forward."""
    _check_linear_backward("linear_backward", dx, dw, db, dout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]

    cdef Py_ssize_t n, o, i
    cdef float g
    cdef float* dst
    cdef const float* src
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        dst = &dx[n, 0]
        for i in range(n_in):
            dst[i] = 0
        for o in range(n_out):
            g = dout[n, o]
            src = &w[o, 0]
            for i in range(n_in):
                dst[i] += g * src[i]
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        _param_grads(dw, db, dout, x, o)


# --- second-order backward (SDLM): linear_backward with x and w squared ------

cdef void _param_curvature(float[:, ::1] hw, float[::1] hb, const float[:, ::1] hout,
                           const float[:, ::1] x, Py_ssize_t o) noexcept nogil:
    # Row o of hw and hb[o]: sums over the batch, in double (run once per pass, so plain).
    cdef Py_ssize_t n, i
    cdef double total
    total = 0.0
    for n in range(x.shape[0]):
        total += hout[n, o]
    hb[o] = <float>total
    for i in range(x.shape[1]):
        total = 0.0
        for n in range(x.shape[0]):
            total += hout[n, o] * x[n, i] * x[n, i]
        hw[o, i] = <float>total


def linear_curvature(float[:, ::1] hx not None, float[:, ::1] hw not None, float[::1] hb not None,
                     const float[:, ::1] hout not None, const float[:, ::1] x not None,
                     const float[:, ::1] w not None, int n_threads=1):
    """Gauss-Newton diagonal of linear_forward; shapes as linear_backward, h* for d*."""
    _check_linear_backward("linear_curvature", hx, hw, hb, hout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t n, o, i
    cdef float h
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for i in range(n_in):
            hx[n, i] = 0
        for o in range(n_out):
            h = hout[n, o]
            for i in range(n_in):
                hx[n, i] += h * w[o, i] * w[o, i]
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        _param_curvature(hw, hb, hout, x, o)
