"""Numba kernels: the squashing function A * tanh(S * a) (A = S = 1: plain tanh).

tanh is the rational function of kernels/tanh_rational.py (within 1 ulp of
the exact value), which vectorises where np.tanh would be a scalar call.
Twins: kernels/numpy/activation.py (the reference) and kernels/cython/activation.pyx.
"""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel
from lenet_engine.kernels.tanh_rational import CLAMP, P, Q

P0, P1, P2, P3, P4, P5, P6 = P
Q0, Q1, Q2, Q3, Q4, Q5, Q6 = Q


@kernel
def _tanh(v):
    x = min(max(np.float64(v), -CLAMP), CLAMP)
    z = x * x
    p = P0 + z * (P1 + z * (P2 + z * (P3 + z * (P4 + z * (P5 + z * P6)))))
    q = Q0 + z * (Q1 + z * (Q2 + z * (Q3 + z * (Q4 + z * (Q5 + z * Q6)))))
    t = np.float32(x * p / q)
    # Past the clamp the float32 tanh is +-1; comparisons keep NaN as NaN.
    if v > CLAMP:
        t = np.float32(1.0)
    elif v < -CLAMP:
        t = np.float32(-1.0)
    return t


@parallel_kernel
def tanh_forward(out, x, amplitude, slope, n_threads):
    """out, x: (M,)"""
    for m in prange(x.shape[0]):
        out[m] = amplitude * _tanh(slope * x[m])


@parallel_kernel
def tanh_backward(dx, dout, y, amplitude, slope, n_threads):
    """dx, dout, y: (M,); y is the forward output: d/dx = (S / A) (A^2 - y^2)."""
    scale = slope / amplitude
    a2 = amplitude * amplitude
    for m in prange(y.shape[0]):
        dx[m] = dout[m] * scale * (a2 - y[m] * y[m])


@parallel_kernel
def tanh_curvature(hx, hout, y, amplitude, slope, n_threads):
    """Gauss-Newton diagonal (SDLM): hx = hout * f'(x)^2.   hx, hout, y: (M,)"""
    scale = slope / amplitude
    a2 = amplitude * amplitude
    for m in prange(y.shape[0]):
        d = scale * (a2 - y[m] * y[m])
        hx[m] = hout[m] * d * d
