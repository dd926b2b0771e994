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
                const float[:, ::1] centers not None, int n_threads):
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
                 const float[:, ::1] centers not None, int n_threads):
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


# --- second-order backward (SDLM) ---------------------------------------------

cdef void _unit_curvature(float[:, ::1] hcenters, const float[:, ::1] hout, const float[:, ::1] dout,
                          const float[:, ::1] x, const float[:, ::1] centers,
                          Py_ssize_t u) noexcept nogil:
    # Row u of hcenters: Gauss-Newton sum over the batch plus the clamped own term, in double.
    cdef Py_ssize_t n, d
    cdef double own = 0.0, total
    cdef float diff
    for n in range(x.shape[0]):
        own += 2.0 * dout[n, u]
    if own < 0.0:
        own = 0.0
    for d in range(x.shape[1]):
        total = 0.0
        for n in range(x.shape[0]):
            diff = x[n, d] - centers[u, d]
            total += 4.0 * hout[n, u] * diff * diff
        hcenters[u, d] = <float>(total + own)


cdef void _sample_curvature(float[:, ::1] hx, const float[:, ::1] hout, const float[:, ::1] dout,
                            const float[:, ::1] x, const float[:, ::1] centers,
                            Py_ssize_t n) noexcept nogil:
    # Row n of hx: Gauss-Newton sum over units plus the clamped own term, in double.
    cdef Py_ssize_t u, d
    cdef double own = 0.0, total
    cdef float diff
    for u in range(centers.shape[0]):
        own += 2.0 * dout[n, u]
    if own < 0.0:
        own = 0.0
    for d in range(x.shape[1]):
        total = 0.0
        for u in range(centers.shape[0]):
            diff = x[n, d] - centers[u, d]
            total += 4.0 * hout[n, u] * diff * diff
        hx[n, d] = <float>(total + own)


def rbf_curvature(float[:, ::1] hx not None, float[:, ::1] hcenters not None,
                  const float[:, ::1] hout not None, const float[:, ::1] dout not None,
                  const float[:, ::1] x not None, const float[:, ::1] centers not None,
                  int n_threads):
    """Diagonal curvature through the RBF units (SDLM); kernels/numpy/rbf.py says what.
    hx: (N, D)   hcenters: (U, D)   hout, dout: (N, U); x, centers as forward."""
    name = "rbf_curvature"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], dim = x.shape[1], n_units = centers.shape[0]
    check_shape(name, "centers", centers.shape, 2, (n_units, dim))
    check_shape(name, "hout", hout.shape, 2, (n_batch, n_units))
    check_shape(name, "dout", dout.shape, 2, (n_batch, n_units))
    check_shape(name, "hx", hx.shape, 2, (n_batch, dim))
    check_shape(name, "hcenters", hcenters.shape, 2, (n_units, dim))

    cdef Py_ssize_t n, u
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        _sample_curvature(hx, hout, dout, x, centers, n)
    for u in prange(n_units, nogil=True, schedule="static", num_threads=n_threads):
        _unit_curvature(hcenters, hout, dout, x, centers, u)
