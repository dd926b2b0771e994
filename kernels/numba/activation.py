"""Numba kernels: the squashing function A * tanh(S * a) (A = S = 1: plain tanh).

Twins: kernels/numpy/activation.py (the reference) and kernels/cython/activation.pyx.
"""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import parallel_kernel


@parallel_kernel
def tanh_forward(out, x, amplitude, slope, n_threads):
    """out, x: (M,)"""
    for m in prange(x.shape[0]):
        out[m] = amplitude * np.tanh(slope * x[m])


@parallel_kernel
def tanh_backward(dx, dout, y, amplitude, slope, n_threads):
    """dx, dout, y: (M,); y is the forward output: d/dx = (S / A) (A^2 - y^2)."""
    scale = slope / amplitude
    a2 = amplitude * amplitude
    for m in prange(y.shape[0]):
        dx[m] = dout[m] * scale * (a2 - y[m] * y[m])
