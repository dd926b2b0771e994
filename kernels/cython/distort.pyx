# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/distort.py (the reference, which says what is computed) and kernels/numba/distort.py.
"""Cython kernel: resampling digits through a random geometric distortion (training augmentation).

Parallel over the batch. Called by lenet_engine.distortions.
"""

from cython.parallel cimport prange
from libc.math cimport floor, isfinite

include "_checks.pxi"


cdef inline double _pixel(const float[:, :, ::1] x, Py_ssize_t n, Py_ssize_t r,
                          Py_ssize_t c) noexcept nogil:
    # x[n, r, c], or 0 (blank paper) outside the image.
    if r < 0 or r >= x.shape[1] or c < 0 or c >= x.shape[2]:
        return 0.0
    return x[n, r, c]


cdef void _distort_one(float[:, :, ::1] out, const float[:, :, ::1] x, const float[:, :, ::1] matrices,
                       const float[:, :, :, ::1] flow, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t h = x.shape[1], w = x.shape[2], i, j, r, c
    cdef double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0
    cdef double u, v, row, col, fr, fc
    for i in range(h):
        v = i - cy
        for j in range(w):
            u = j - cx
            col = cx + matrices[n, 0, 0] * u + matrices[n, 0, 1] * v + matrices[n, 0, 2] + flow[n, 0, i, j]
            row = cy + matrices[n, 1, 0] * u + matrices[n, 1, 1] * v + matrices[n, 1, 2] + flow[n, 1, i, j]
            # Far-off points read only blank paper; clamping them keeps the casts defined.
            row = min(max(row, -2.0), h + 1.0)
            col = min(max(col, -2.0), w + 1.0)
            r = <Py_ssize_t>floor(row)
            c = <Py_ssize_t>floor(col)
            fr = row - r
            fc = col - c
            out[n, i, j] = <float>((1 - fr) * ((1 - fc) * _pixel(x, n, r, c) + fc * _pixel(x, n, r, c + 1))
                                   + fr * ((1 - fc) * _pixel(x, n, r + 1, c) + fc * _pixel(x, n, r + 1, c + 1)))


def distort_forward(float[:, :, ::1] out not None, const float[:, :, ::1] x not None,
                    const float[:, :, ::1] matrices not None, const float[:, :, :, ::1] flow not None,
                    int n_threads):
    """out, x: (N, H, W)   matrices: (N, 2, 3)   flow: (N, 2, H, W)"""
    name = "distort_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], h = x.shape[1], w = x.shape[2]
    check_shape(name, "out", out.shape, 3, (n_batch, h, w))
    check_shape(name, "matrices", matrices.shape, 3, (n_batch, 2, 3))
    check_shape(name, "flow", flow.shape, 4, (n_batch, 2, h, w))
    # A non-finite source point would turn into an arbitrary index: refuse it here.
    cdef Py_ssize_t n, a, b, c
    for n in range(n_batch):
        for a in range(2):
            for b in range(3):
                if not isfinite(matrices[n, a, b]):
                    raise ValueError(f"{name}: matrices[{n}] holds a non-finite value")
    for n in range(n_batch):
        for a in range(2):
            for b in range(h):
                for c in range(w):
                    if not isfinite(flow[n, a, b, c]):
                        raise ValueError(f"{name}: flow[{n}] holds a non-finite value")

    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        _distort_one(out, x, matrices, flow, n)
