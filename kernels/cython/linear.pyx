# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/linear.py (the reference) and kernels/numba/linear.py.
"""Cython kernels: full (dense) layer (C5, F6 and the modern Dense layers).

Forward and input gradient in parallel over the batch, four digits per task;
weight and bias gradients in parallel over output units, four per task.
Called through lenet_engine.layers.
"""

from cython.parallel cimport prange

include "_checks.pxi"

# Each kernel works on a tile of rows at once, so that every weight or input
# value loaded serves several independent sums (a lone dot product waits on
# its own multiply-adds). Every element still sees the additions of the plain
# loops in their order, so the shipped models' first passes still reproduce bit
# for bit (tests/test_shipped_weights.py).

cdef extern from "l5_linear.h":
    void l5_forward_rows(float* out, const float* x, const float* w, const float* b,
                         Py_ssize_t n0, int nd, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
    void l5_input_grad_rows(float* dx, const float* dout, const float* w, Py_ssize_t n0,
                            int nd, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
    void l5_param_grad_rows(float* dw, const float* dout, const float* x, Py_ssize_t o0,
                            int nu, Py_ssize_t n_batch, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil

cdef enum:
    TILE = 4  # digits per forward / input-gradient call, units per weight-gradient call


cdef float _bias_gradient(const float[:, ::1] dout, Py_ssize_t o) noexcept nogil:
    # db[o]: the batch sum in double.
    # A function, not inline code: inside prange Cython would make `s += ...` a reduction.
    cdef double total = 0.0
    cdef Py_ssize_t n
    for n in range(dout.shape[0]):
        total += dout[n, o]
    return <float>total


def linear_forward(float[:, ::1] out not None, const float[:, ::1] x not None,
                   const float[:, ::1] w not None, const float[::1] b not None, int n_threads):
    """out: (N, O)   x: (N, I)   w: (O, I)   b: (O,)"""
    name = "linear_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t t
    check_shape(name, "w", w.shape, 2, (n_out, n_in))
    check_shape(name, "b", b.shape, 1, (n_out,))
    check_shape(name, "out", out.shape, 2, (n_batch, n_out))

    if n_batch == 0 or n_out == 0:
        return
    for t in prange((n_batch + TILE - 1) // TILE, nogil=True, schedule="static", num_threads=n_threads):
        l5_forward_rows(&out[0, 0], &x[0, 0], &w[0, 0], &b[0], t * TILE,
                        min(<Py_ssize_t>TILE, n_batch - t * TILE), n_in, n_out)


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
                    const float[:, ::1] w not None, int n_threads):
    """dx: (N, I)   dw: (O, I)   db: (O,)   dout: (N, O); x, w as forward."""
    _check_linear_backward("linear_backward", dx, dw, db, dout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t t, o
    if n_batch == 0 or n_out == 0:
        # Empty sums (and no first element for the kernels to start from).
        dx[:, :] = 0
        dw[:, :] = 0
        db[:] = 0
        return
    for t in prange((n_batch + TILE - 1) // TILE, nogil=True, schedule="static", num_threads=n_threads):
        l5_input_grad_rows(&dx[0, 0], &dout[0, 0], &w[0, 0], t * TILE,
                           min(<Py_ssize_t>TILE, n_batch - t * TILE), n_in, n_out)
    for t in prange((n_out + TILE - 1) // TILE, nogil=True, schedule="static", num_threads=n_threads):
        l5_param_grad_rows(&dw[0, 0], &dout[0, 0], &x[0, 0], t * TILE,
                           min(<Py_ssize_t>TILE, n_out - t * TILE), n_batch, n_in, n_out)
        for o in range(t * TILE, min(t * TILE + TILE, n_out)):
            db[o] = _bias_gradient(dout, o)


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
                     const float[:, ::1] w not None, int n_threads):
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
