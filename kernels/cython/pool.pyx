# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/pool.py (the reference) and kernels/numba/pool.py.
"""Cython kernels: 2x2 average pooling (modern) and LeNet's trainable subsampling (S2, S4).

Parallel over the batch; subsample's coefficient and bias gradients in
parallel over maps. Called through lenet_engine.layers.
"""

from cython.parallel cimport prange

include "_checks.pxi"


cdef inline float _block_sum(const float[:, :, :, ::1] x, Py_ssize_t n, Py_ssize_t c,
                             Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    # Sum of the 2x2 block of map (n, c) that output pixel (i, j) covers.
    return (x[n, c, 2 * i, 2 * j] + x[n, c, 2 * i, 2 * j + 1]
            + x[n, c, 2 * i + 1, 2 * j] + x[n, c, 2 * i + 1, 2 * j + 1])


cdef inline void _spread(float[:, :, :, ::1] dx, Py_ssize_t n, Py_ssize_t c,
                         Py_ssize_t i, Py_ssize_t j, float g) noexcept nogil:
    # Write g to the four pixels of that block.
    dx[n, c, 2 * i, 2 * j] = g
    dx[n, c, 2 * i, 2 * j + 1] = g
    dx[n, c, 2 * i + 1, 2 * j] = g
    dx[n, c, 2 * i + 1, 2 * j + 1] = g


cdef void _map_param_grads(float[::1] dcoef, float[::1] dbias, const float[:, :, :, ::1] dout,
                           const float[:, :, :, ::1] x, Py_ssize_t c) noexcept nogil:
    # Gradients of map c's coefficient and bias, summed over the batch in double.
    # A function, not inline code: inside prange Cython would make `s += ...` a reduction.
    cdef Py_ssize_t n, i, j
    cdef double coef_sum = 0.0, bias_sum = 0.0
    for n in range(dout.shape[0]):
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                coef_sum += dout[n, c, i, j] * _block_sum(x, n, c, i, j)
                bias_sum += dout[n, c, i, j]
    dcoef[c] = <float>coef_sum
    dbias[c] = <float>bias_sum


def avgpool2x2_forward(float[:, :, :, ::1] out not None, const float[:, :, :, ::1] x not None,
                       int n_threads):
    """out: (N, C, H/2, W/2)   x: (N, C, H, W), H and W even."""
    name = "avgpool2x2_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = out.shape[0], n_maps = out.shape[1], ho = out.shape[2], wo = out.shape[3]
    check_shape(name, "x", x.shape, 4, (n_batch, n_maps, 2 * ho, 2 * wo))

    cdef Py_ssize_t n, c, i, j
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = 0.25 * _block_sum(x, n, c, i, j)


def avgpool2x2_backward(float[:, :, :, ::1] dx not None, const float[:, :, :, ::1] dout not None,
                        int n_threads):
    """dx: (N, C, H, W)   dout: (N, C, H/2, W/2)"""
    _spread_scaled("avgpool2x2_backward", dx, dout, 0.25, n_threads)


def avgpool2x2_curvature(float[:, :, :, ::1] hx not None, const float[:, :, :, ::1] hout not None,
                         int n_threads):
    """Gauss-Newton diagonal (SDLM): hx = hout / 16 on each block pixel.   Shapes as backward."""
    _spread_scaled("avgpool2x2_curvature", hx, hout, 0.0625, n_threads)


cdef int _spread_scaled(str name, float[:, :, :, ::1] dx, const float[:, :, :, ::1] dout,
                        float scale, int n_threads) except -1:
    # dx = scale * dout on each pixel of its block.
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = dout.shape[0], n_maps = dout.shape[1], ho = dout.shape[2], wo = dout.shape[3]
    check_shape(name, "dx", dx.shape, 4, (n_batch, n_maps, 2 * ho, 2 * wo))

    cdef Py_ssize_t n, c, i, j
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(dx, n, c, i, j, scale * dout[n, c, i, j])
    return 0


def subsample_forward(float[:, :, :, ::1] out not None, const float[:, :, :, ::1] x not None,
                      const float[::1] coef not None, const float[::1] bias not None,
                      int n_threads):
    """out: (N, C, H/2, W/2)   x: (N, C, H, W)   coef, bias: (C,)"""
    name = "subsample_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = out.shape[0], n_maps = out.shape[1], ho = out.shape[2], wo = out.shape[3]
    check_shape(name, "x", x.shape, 4, (n_batch, n_maps, 2 * ho, 2 * wo))
    check_shape(name, "coef", coef.shape, 1, (n_maps,))
    check_shape(name, "bias", bias.shape, 1, (n_maps,))

    cdef Py_ssize_t n, c, i, j
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    out[n, c, i, j] = coef[c] * _block_sum(x, n, c, i, j) + bias[c]


cdef int _check_subsample_backward(str name, float[:, :, :, ::1] dx, float[::1] dcoef,
                                   float[::1] dbias, const float[:, :, :, ::1] dout,
                                   const float[:, :, :, ::1] x, const float[::1] coef,
                                   int n_threads) except -1:
    # The checks of subsample_backward and subsample_curvature (same arguments).
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = dout.shape[0], n_maps = dout.shape[1], ho = dout.shape[2], wo = dout.shape[3]
    check_shape(name, "x", x.shape, 4, (n_batch, n_maps, 2 * ho, 2 * wo))
    check_shape(name, "dx", dx.shape, 4, (n_batch, n_maps, 2 * ho, 2 * wo))
    check_shape(name, "coef", coef.shape, 1, (n_maps,))
    check_shape(name, "dcoef", dcoef.shape, 1, (n_maps,))
    check_shape(name, "dbias", dbias.shape, 1, (n_maps,))
    return 0


def subsample_backward(float[:, :, :, ::1] dx not None, float[::1] dcoef not None,
                       float[::1] dbias not None, const float[:, :, :, ::1] dout not None,
                       const float[:, :, :, ::1] x not None, const float[::1] coef not None,
                       int n_threads):
    """dx: (N, C, H, W)   dcoef, dbias: (C,)   dout: (N, C, H/2, W/2)   x, coef as forward."""
    _check_subsample_backward("subsample_backward", dx, dcoef, dbias, dout, x, coef, n_threads)
    cdef Py_ssize_t n_batch = dout.shape[0], n_maps = dout.shape[1], ho = dout.shape[2], wo = dout.shape[3]

    cdef Py_ssize_t n, c, i, j
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(dx, n, c, i, j, coef[c] * dout[n, c, i, j])
    for c in prange(n_maps, nogil=True, schedule="static", num_threads=n_threads):
        _map_param_grads(dcoef, dbias, dout, x, c)


cdef void _map_param_curvature(float[::1] hcoef, float[::1] hbias, const float[:, :, :, ::1] hout,
                               const float[:, :, :, ::1] x, Py_ssize_t c) noexcept nogil:
    # Curvature of map c's coefficient (hout * block sum^2) and bias, summed in double.
    cdef Py_ssize_t n, i, j
    cdef double coef_sum = 0.0, bias_sum = 0.0
    cdef float s
    for n in range(hout.shape[0]):
        for i in range(hout.shape[2]):
            for j in range(hout.shape[3]):
                s = _block_sum(x, n, c, i, j)
                coef_sum += hout[n, c, i, j] * s * s
                bias_sum += hout[n, c, i, j]
    hcoef[c] = <float>coef_sum
    hbias[c] = <float>bias_sum


def subsample_curvature(float[:, :, :, ::1] hx not None, float[::1] hcoef not None,
                        float[::1] hbias not None, const float[:, :, :, ::1] hout not None,
                        const float[:, :, :, ::1] x not None, const float[::1] coef not None,
                        int n_threads):
    """Gauss-Newton diagonal of subsample_forward (SDLM); shapes as subsample_backward."""
    _check_subsample_backward("subsample_curvature", hx, hcoef, hbias, hout, x, coef, n_threads)
    cdef Py_ssize_t n_batch = hout.shape[0], n_maps = hout.shape[1], ho = hout.shape[2], wo = hout.shape[3]
    cdef Py_ssize_t n, c, i, j
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(n_maps):
            for i in range(ho):
                for j in range(wo):
                    _spread(hx, n, c, i, j, coef[c] * coef[c] * hout[n, c, i, j])
    for c in prange(n_maps, nogil=True, schedule="static", num_threads=n_threads):
        _map_param_curvature(hcoef, hbias, hout, x, c)
