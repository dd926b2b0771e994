# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/activation.py (the reference) and kernels/numba/activation.py.
"""Cython kernels: the squashing function A * tanh(S * a).

A = S = 1 is plain tanh (modern); A = 1.7159, S = 2/3 is the paper's
(classic). Elementwise over a flattened activation, in parallel over
elements. tanh is the rational function of kernels/tanh_rational.py (within
1 ulp of the exact value), which gcc vectorises where tanhf would be a scalar
call. Called through lenet_engine.layers.
"""

from cython.parallel cimport prange

include "_checks.pxi"
include "_tanh.pxi"

def tanh_forward(float[::1] out not None, const float[::1] x not None, float amplitude, float slope,
                 int n_threads):
    """out = amplitude * tanh(slope * x).   out, x: (M,)"""
    name = "tanh_forward"
    check_threads(name, n_threads)
    check_shape(name, "out", out.shape, 1, (x.shape[0],))

    cdef Py_ssize_t m
    for m in prange(x.shape[0], nogil=True, schedule="static", num_threads=n_threads):
        out[m] = amplitude * _tanh(slope * x[m])


def tanh_backward(float[::1] dx not None, const float[::1] dout not None, const float[::1] y not None,
                  float amplitude, float slope, int n_threads):
    """dx, dout, y: (M,); y is the forward output, so d/dx = (S / A) (A^2 - y^2)."""
    name = "tanh_backward"
    check_threads(name, n_threads)
    check_shape(name, "dout", dout.shape, 1, (y.shape[0],))
    check_shape(name, "dx", dx.shape, 1, (y.shape[0],))

    cdef float scale = slope / amplitude
    cdef float a2 = amplitude * amplitude
    cdef Py_ssize_t m
    for m in prange(y.shape[0], nogil=True, schedule="static", num_threads=n_threads):
        dx[m] = dout[m] * scale * (a2 - y[m] * y[m])


def tanh_curvature(float[::1] hx not None, const float[::1] hout not None, const float[::1] y not None,
                   float amplitude, float slope, int n_threads):
    """Gauss-Newton diagonal (SDLM): hx = hout * f'(x)^2.   hx, hout, y: (M,)"""
    name = "tanh_curvature"
    check_threads(name, n_threads)
    check_shape(name, "hout", hout.shape, 1, (y.shape[0],))
    check_shape(name, "hx", hx.shape, 1, (y.shape[0],))

    cdef float scale = slope / amplitude
    cdef float a2 = amplitude * amplitude
    cdef float d
    cdef Py_ssize_t m
    for m in prange(y.shape[0], nogil=True, schedule="static", num_threads=n_threads):
        d = scale * (a2 - y[m] * y[m])
        hx[m] = hout[m] * d * d
