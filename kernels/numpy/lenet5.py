"""NumPy reference of the fused LeNet-5 forward pass: the layer kernels, one after another.

Twins: kernels/numba/lenet5.py and kernels/cython/lenet5.pyx, which take one
digit at a time through every layer in per-thread scratch.
"""

import numpy as np

from lenet_engine.kernels.fused import check_fused_weights
from lenet_engine.kernels.numpy.activation import tanh_forward
from lenet_engine.kernels.numpy.conv import conv2d_forward, sparse_conv2d_forward
from lenet_engine.kernels.numpy.linear import linear_forward
from lenet_engine.kernels.numpy.pool import subsample_forward
from lenet_engine.kernels.numpy.rbf import rbf_forward


def _squash(a, amplitude, slope):
    out = np.empty_like(a)
    tanh_forward(out, a, amplitude, slope, 1)
    return out


def lenet5_squash(v, amplitude, slope, n_threads):
    """v (n,) float32 squashed in place, amplitude * tanh(slope * v), as lenet5_forward squashes."""
    v[...] = _squash(v, amplitude, slope)


def lenet5_forward(out, digits, weights, n_threads):
    """LeNet-5's forward pass, either architecture, from the digits.

    out: (N, 10)   digits: (N, 28, 28), uint8 pixels (looked up in weights.table) or float32
    network input   weights: a FusedWeights (kernels/fused.py says what each array holds)
    """
    check_fused_weights(weights)
    w = weights
    n = len(digits)
    field = np.full((n, 1, 32, 32), w.table[0], np.float32)
    field[:, 0, 2:30, 2:30] = w.table[digits] if digits.dtype == np.uint8 else digits
    c1 = np.empty((n, 6, 28, 28), field.dtype)
    conv2d_forward(c1, field, w.c1_w, w.c1_b, n_threads)
    s2 = np.empty((n, 6, 14, 14), field.dtype)
    subsample_forward(s2, _squash(c1, w.amplitude, w.slope), w.s2_coef, w.s2_bias, n_threads)
    if w.squash_pooled:
        s2 = _squash(s2, w.amplitude, w.slope)
    c3 = np.empty((n, 16, 10, 10), field.dtype)
    sparse_conv2d_forward(c3, s2, w.c3_w, w.c3_b, w.conn_start, w.conn_in, n_threads)
    s4 = np.empty((n, 16, 5, 5), field.dtype)
    subsample_forward(s4, _squash(c3, w.amplitude, w.slope), w.s4_coef, w.s4_bias, n_threads)
    if w.squash_pooled:
        s4 = _squash(s4, w.amplitude, w.slope)
    c5 = np.empty((n, 120), field.dtype)
    linear_forward(c5, s4.reshape(n, 400), w.c5_w, w.c5_b, n_threads)
    f6 = np.empty((n, 84), field.dtype)
    linear_forward(f6, _squash(c5, w.amplitude, w.slope), w.f6_w, w.f6_b, n_threads)
    f6 = _squash(f6, w.amplitude, w.slope)
    if w.distance_output:
        rbf_forward(out, f6, w.out_w, n_threads)
    else:
        linear_forward(out, f6, w.out_w, w.out_b, n_threads)


class Lenet5Forward:
    """lenet5_forward with its weights bound, the twin of the compiled backends' class:
    Lenet5Forward(weights)(out, digits, n_threads) writes out and returns how many of its
    values are not finite. The arrays are held, not copied: in-place updates are seen."""

    def __init__(self, weights):
        check_fused_weights(weights)
        self.weights = weights

    def __call__(self, out, digits, n_threads):
        lenet5_forward(out, digits, self.weights, n_threads)
        return int(np.count_nonzero(~np.isfinite(out)))
