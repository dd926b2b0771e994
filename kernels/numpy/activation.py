"""NumPy reference: the squashing function A * tanh(S * a).

A = S = 1 is plain tanh (modern); A = 1.7159, S = 2/3 is the paper's (classic).
Twins: kernels/numba/activation.py (and kernels/cython/activation.pyx).
"""

import numpy as np


def tanh_forward(out, x, amplitude, slope, n_threads):
    """out = amplitude * tanh(slope * x).   out, x: (M,), any length."""
    out[...] = amplitude * np.tanh(slope * x)


def tanh_backward(dx, dout, y, amplitude, slope, n_threads):
    """Gradient of tanh_forward, from its output y (cheaper than from x).

    d/dx A tanh(S x) = A S (1 - tanh^2) = (S / A) (A^2 - y^2).   dx, dout, y: (M,)
    """
    dx[...] = dout * (slope / amplitude) * (amplitude * amplitude - y * y)


def tanh_curvature(hx, hout, y, amplitude, slope, n_threads):
    """Gauss-Newton diagonal (SDLM's second-order backward): hx = hout * f'(x)^2, f'' dropped."""
    hx[...] = hout * ((slope / amplitude) * (amplitude * amplitude - y * y)) ** 2
