# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/rbf.py (the reference) and kernels/numba/rbf.py.
"""Cython kernels: Euclidean RBF output units, y_i = sum_j (x_j - w_ij)^2 (classic's output layer).

Forward and input gradient in parallel over the batch; the centre gradient
in parallel over units. Called through lenet_engine.layers.
"""

from cython.parallel cimport prange

include "_checks.pxi"
include "_dot.pxi"


cdef double _center_grad_sum(const float[:, ::1] dout, const float[:, ::1] x,
                             const float[:, ::1] centers, Py_ssize_t u, Py_ssize_t d) noexcept nogil:
    # sum_n dout[n, u] * (x[n, d] - centers[u, d]), in double.
    # A function, not inline code: inside prange Cython would make `s += ...` a reduction.
    cdef Py_ssize_t n
    cdef double total = 0.0
    for n in range(x.shape[0]):
        total += dout[n, u] * (x[n, d] - centers[u, d])
    return total


def rbf_forward(float[:, ::1] out not None, const float[:, ::1] x not None,
                const float[:, ::1] centers not None, int n_threads=1):
    """out[n, i] = sum_j (x[n, j] - centers[i, j])^2.   out: (N, U)   x: (N, D)   centers: (U, D)"""
    name = "rbf_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], dim = x.shape[1], n_units = centers.shape[0]
    check_shape(name, "centers", centers.shape, 2, (n_units, dim))
    check_shape(name, "out", out.shape, 2, (n_batch, n_units))

    cdef Py_ssize_t n, u
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for u in range(n_units):
            out[n, u] = <float>sqdist(&x[n, 0], &centers[u, 0], dim)


def rbf_backward(float[:, ::1] dx not None, float[:, ::1] dcenters not None,
                 const float[:, ::1] dout not None, const float[:, ::1] x not None,
                 const float[:, ::1] centers not None, int n_threads=1):
    """dx: (N, D)   dcenters: (U, D)   dout: (N, U); x, centers as forward."""
    name = "rbf_backward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], dim = x.shape[1], n_units = centers.shape[0]
    check_shape(name, "centers", centers.shape, 2, (n_units, dim))
    check_shape(name, "dout", dout.shape, 2, (n_batch, n_units))
    check_shape(name, "dx", dx.shape, 2, (n_batch, dim))
    check_shape(name, "dcenters", dcenters.shape, 2, (n_units, dim))

    cdef Py_ssize_t n, u, d
    cdef float g
    cdef float* dst
    cdef const float* xrow
    cdef const float* crow
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        dst = &dx[n, 0]
        xrow = &x[n, 0]
        for d in range(dim):
            dst[d] = 0
        for u in range(n_units):
            g = 2.0 * dout[n, u]
            crow = &centers[u, 0]
            for d in range(dim):
                dst[d] += g * (xrow[d] - crow[d])
    for u in prange(n_units, nogil=True, schedule="static", num_threads=n_threads):
        for d in range(dim):
            dcenters[u, d] = <float>(-2.0 * _center_grad_sum(dout, x, centers, u, d))
