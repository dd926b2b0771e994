"""NumPy reference of the fused LeNet-5 forward pass: the layer kernels, one after another.

Twins: kernels/numba/lenet5.py and kernels/cython/lenet5.pyx, which take one
digit at a time through every layer in per-thread scratch.
"""

import numpy as np

from lenet_engine.kernels.numpy.activation import tanh_forward
from lenet_engine.kernels.numpy.conv import conv2d_forward, sparse_conv2d_forward
from lenet_engine.kernels.numpy.linear import linear_forward
from lenet_engine.kernels.numpy.pool import subsample_forward
from lenet_engine.kernels.numpy.rbf import rbf_forward


def _squash(a, amplitude, slope):
    out = np.empty_like(a)
    tanh_forward(out, a, amplitude, slope)
    return out


def lenet5_squash(v, amplitude, slope):
    """v (n,) float32 squashed in place, amplitude * tanh(slope * v), as lenet5_forward squashes."""
    v[...] = _squash(v, amplitude, slope)


def lenet5_forward(out, digits, table, c1_w, c1_b, s2_coef, s2_bias, c3_w, c3_b, conn_start, conn_in,
                   s4_coef, s4_bias, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
                   distance_output, squash_pooled, amplitude, slope, n_threads=1):
    """LeNet-5's forward pass, either architecture, from the digits.

    out: (N, 10)   digits: (N, 28, 28), uint8 pixels or float32 network input
    table: (256,) float32, the network input of each uint8 pixel value; the 32x32 input
    field is the digit centred in a 2-pixel border of table[0] (the background)
    c1_w: (6, 1, 5, 5)   c1_b, s2_coef, s2_bias: (6,)
    c3_w: (P, 5, 5) with the table conn_start (17,), conn_in (P,)   c3_b, s4_coef, s4_bias: (16,)
    c5_w: (120, 400)   c5_b: (120,)   f6_w: (84, 120)   f6_b: (84,)   out_w: (10, 84)   out_b: (10,)
    distance_output: RBF distances to the rows of out_w (classic) or out_w @ x + out_b (modern).
    squash_pooled: squash after S2 and S4 too (classic; modern's average pooling is linear).
    Modern passes its full C3 as a table listing all 96 pairs and its pooling as coefficient
    0.25, bias 0.
    """
    n = len(digits)
    field = np.full((n, 1, 32, 32), table[0], np.float32)
    field[:, 0, 2:30, 2:30] = table[digits] if digits.dtype == np.uint8 else digits
    c1 = np.empty((n, 6, 28, 28), field.dtype)
    conv2d_forward(c1, field, c1_w, c1_b)
    s2 = np.empty((n, 6, 14, 14), field.dtype)
    subsample_forward(s2, _squash(c1, amplitude, slope), s2_coef, s2_bias)
    if squash_pooled:
        s2 = _squash(s2, amplitude, slope)
    c3 = np.empty((n, 16, 10, 10), field.dtype)
    sparse_conv2d_forward(c3, s2, c3_w, c3_b, conn_start, conn_in)
    s4 = np.empty((n, 16, 5, 5), field.dtype)
    subsample_forward(s4, _squash(c3, amplitude, slope), s4_coef, s4_bias)
    if squash_pooled:
        s4 = _squash(s4, amplitude, slope)
    c5 = np.empty((n, 120), field.dtype)
    linear_forward(c5, s4.reshape(n, 400), c5_w, c5_b)
    f6 = np.empty((n, 84), field.dtype)
    linear_forward(f6, _squash(c5, amplitude, slope), f6_w, f6_b)
    f6 = _squash(f6, amplitude, slope)
    if distance_output:
        rbf_forward(out, f6, out_w)
    else:
        linear_forward(out, f6, out_w, out_b)
