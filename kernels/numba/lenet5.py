"""Numba kernel: LeNet-5's whole forward pass, one digit at a time, in per-thread scratch.

Inference only. Each thread (the caller, and Python threads of a pool while the compiled
share runs without the GIL) takes chunks of the batch as it comes free (_threads.py), one
digit at a time through the convolutions and pooling, with all of that digit's maps in one
scratch buffer of its own, small enough to stay in cache, instead of
streaming the whole batch's maps through memory layer after layer; the full
layers then take GROUP digits at a time, so C5's weights are read once per
group. The convolutions read their input maps in conv.py's shifted layout, so
each kernel row is one contiguous pass of five multiply-adds over a whole
compact output map, for four output maps that read the same input at once
(C3 is walked input map by input map for that). tanh is the float32 rational
of tanh_rational.py (P32, Q32) with the squashing's amplitude and slope
folded in, evaluated in float32 (within 7 ulp).
Twins: kernels/numpy/lenet5.py (the reference) and kernels/cython/lenet5.pyx."""

import numba
import numpy as np

from lenet_engine.kernels.contracts import check_call, check_threads
from lenet_engine.kernels.fused import check_fused_weights
from lenet_engine.kernels.numba._jit import kernel
from lenet_engine.kernels.numba._threads import run_in_chunks
from lenet_engine.kernels.numba.conv import (ACC_SCRATCH, C1_SHIFT, C1_WIDTH, C3_SHIFT, C3_WIDTH, K,
                                             by_input, convolve_shifted, shift_columns)
from lenet_engine.kernels.numba.linear import GROUP, _dense  # GROUP: digits through the full layers together
from lenet_engine.kernels.tanh_rational import squash_coefficients

FIELD = C1_WIDTH  # the 32 x 32 input field


@kernel
def _squash(v, sq):
    """v squashed in place, a * tanh(s * v) as the float32 rational of tanh_rational.py (P32,
    Q32) with a and s folded in: sq is tanh_rational.squash_coefficients(a, s). Within 7 ulp
    of the exact tanh in float32, where the double evaluation the layer kernels use
    (activation.py) is within 1, at twice the lanes.

    The input is clamped, and the value too: in float32 the rational can come out a few ulp
    past the limit near the clamp, where tanh rounds to 1. Comparisons are false for NaN,
    which passes through unchanged.
    """
    clamp, limit = sq[0], sq[1]
    p0, p1, p2, p3, p4 = sq[2], sq[3], sq[4], sq[5], sq[6]
    q0, q1, q2, q3 = sq[7], sq[8], sq[9], sq[10]
    for t in range(v.shape[0]):
        x = v[t]
        x = clamp if x > clamp else x
        x = -clamp if x < -clamp else x
        z = x * x
        y = x * (p0 + z * (p1 + z * (p2 + z * (p3 + z * p4)))) / (q0 + z * (q1 + z * (q2 + z * (q3 + z))))
        y = limit if y > limit else y
        v[t] = -limit if y < -limit else y


def lenet5_squash(v, amplitude, slope, n_threads):
    """v (n,) float32 squashed in place, amplitude * tanh(slope * v), as lenet5_forward squashes
    (tanh in float32, within 7 ulp): what tests/test_tanh_rational.py checks of it. Runs on the
    calling thread, as the fused pass squashes within each thread's share."""
    if v.dtype != np.float32 or v.ndim != 1:
        raise ValueError(f"lenet5_squash: v must be a 1-D float32 array, got {v.ndim}-D {v.dtype}")
    _squash(v, squash_coefficients(amplitude, slope))


@kernel
def _pool(dst, src, side, coef, bias, squash, sq):
    """dst (maps, side * side) = coef[o] * (the 2x2 block sums of map o of src, compact maps of
    2 side x 2 side) + bias[o], squashed if `squash`. side is compiled in (numba.literally)."""
    numba.literally(side)
    maps, width = dst.shape[0], 2 * side
    for o in range(maps):
        c, b = coef[o], bias[o]
        for i in range(side):
            top, bottom = 2 * i * width, (2 * i + 1) * width
            for j in range(side):
                s = ((src[o, top + 2 * j] + src[o, top + 2 * j + 1])
                     + (src[o, bottom + 2 * j] + src[o, bottom + 2 * j + 1]))
                dst[o, i * side + j] = c * s + b
    if squash:
        _squash(dst.reshape(maps * side * side), sq)


@kernel
def _features(s4, x, shifted1, c1, s2, shifted3, c3, c1_w, c1_b, c1_table, s2_coef, s2_bias,
              c3_w, c3_b, c3_table, s4_coef, s4_bias, squash_pooled, sq):
    """One digit x (1024,) through C1, S2, C3 and S4, into s4 (16, 25). c1_table and c3_table:
    conv.by_input's readings of C1's and C3's connection tables; c1 and c3 have ACC_SCRATCH rows of
    scratch past the maps."""
    shift_columns(shifted1[0], x, C1_WIDTH, 28, C1_SHIFT, 32)
    convolve_shifted(c1, shifted1, c1_w, c1_b, c1_table, 28 * 28, 28, C1_SHIFT)
    # All maps squashed by one loop over the whole buffer, not one short loop (and its scalar
    # remainder) per map: one scalar remainder per layer instead of one per map.
    _squash(c1[:6].reshape(6 * 28 * 28), sq)
    _pool(s2, c1, 14, s2_coef, s2_bias, squash_pooled, sq)
    for o in range(6):
        shift_columns(shifted3[o], s2[o], C3_WIDTH, 10, C3_SHIFT, 16)
    convolve_shifted(c3, shifted3, c3_w, c3_b, c3_table, 10 * 10, 10, C3_SHIFT)
    _squash(c3[:16].reshape(16 * 10 * 10), sq)
    _pool(s4, c3, 5, s4_coef, s4_bias, squash_pooled, sq)


@kernel
def _full_layers(out, nd, s4, c5, f6, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
                 distance_output, sq):
    """nd (at most GROUP) digits' S4 maps, s4 (GROUP, 400), through C5, F6 and the output layer.

    A short group runs as a full one, its missing rows copies of the first: every digit goes
    through the same code whatever group it falls in, so its outputs do not depend on the
    batch size or the thread count.
    """
    for d in range(nd, GROUP):
        s4[d] = s4[0]
    _dense(c5, c5_w, c5_b, s4)
    _squash(c5.reshape(GROUP * 120), sq)
    _dense(f6, f6_w, f6_b, c5)
    _squash(f6.reshape(GROUP * 84), sq)
    for d in range(nd):
        for u in range(10):
            if distance_output:
                distance = 0.0
                for i in range(84):
                    diff = f6[d, i] - out_w[u, i]
                    distance += diff * diff
                out[d, u] = distance
            else:
                total = np.float32(0.0)
                for i in range(84):
                    total += out_w[u, i] * f6[d, i]
                out[d, u] = total + out_b[u]


@kernel
def load_field(field, digit, table):
    """field (32 * 32,) = digit (28, 28) centred in a 2-pixel border of table[0]: uint8 pixels
    looked up in table, float32 values (network input already) as they are."""
    lookup = digit.itemsize == 1  # uint8 (the branch not taken still compiles for both dtypes)
    field[:] = table[0]
    for i in range(28):
        for j in range(28):
            v = digit[i, j]
            field[(i + 2) * FIELD + j + 2] = table[np.intp(v)] if lookup else np.float32(v)


def lenet5_forward(out, digits, weights, n_threads):
    """out: (N, 10)   digits: (N, 28, 28) uint8 or float32   weights: a FusedWeights
    (kernels/fused.py)."""
    Lenet5Forward(weights)(out, digits, n_threads)


class Lenet5Forward:
    """lenet5_forward with its weights bound: Lenet5Forward(weights)(out, digits, n_threads),
    the twin of the Cython class. The arrays are held, not copied: in-place updates are seen."""

    def __init__(self, weights):
        check_fused_weights(weights)
        # The compiled kernels take the weights as positionals, in FusedWeights' order, the
        # squashing's amplitude and slope (scalars, fixed once bound) as its coefficients.
        self.weights = tuple(weights)[:-2] + (squash_coefficients(weights.amplitude, weights.slope),)

    def __call__(self, out, digits, n_threads):
        """Write the outputs of digits into out; return how many of them are not finite
        (counted in compiled code: a NumPy check costs more than one digit's arithmetic)."""
        # The compiled loops check no bounds: the arrays and thread count are checked here.
        check_call("lenet5_forward", ("digits", "out"), (digits, out))
        check_threads("lenet5_forward", n_threads, numba.config.NUMBA_NUM_THREADS)
        # Chunks of digits, each through the same compiled _forward_share as a lone share (it
        # releases the GIL): the bits of a digit's outputs cannot depend on the thread count. A
        # prange kernel calling _forward_share would hold its own compiled copy, which can round
        # differently from the serial one (Numba inlines callees compiled in this process, not
        # those loaded from its cache).
        return run_in_chunks(_forward_share, out, digits, n_threads, self.weights, GROUP)


@kernel
def _forward_share(out, digits, start, stop, table, c1_w, c1_b, s2_coef, s2_bias, c3_w, c3_b,
                   conn_start, conn_in, s4_coef, s4_bias, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
                   distance_output, squash_pooled, sq):
    # Digits start .. stop - 1 in a scratch of their own, GROUP digits at a time through the
    # full layers. Returns how many of their outputs are not finite.
    field = np.empty(FIELD * FIELD, np.float32)
    shifted1 = np.empty((1, K * C1_SHIFT), np.float32)
    c1 = np.empty((6 + ACC_SCRATCH, 28 * 28), np.float32)
    s2 = np.empty((6, 14 * 14), np.float32)
    shifted3 = np.empty((6, K * C3_SHIFT), np.float32)
    c3 = np.empty((16 + ACC_SCRATCH, 10 * 10), np.float32)
    s4 = np.empty((GROUP, 400), np.float32)
    c5 = np.empty((GROUP, 120), np.float32)
    f6 = np.empty((GROUP, 84), np.float32)
    c1_table = by_input(np.arange(7), np.zeros(6, np.int64), 1)  # 6 maps, each reading the field
    c1_kernels = c1_w.reshape(6, 5, 5)
    c3_table = by_input(conn_start, conn_in, 6)
    for first in range(start, stop, GROUP):
        nd = min(GROUP, stop - first)
        for d in range(nd):
            load_field(field, digits[first + d], table)
            _features(s4[d].reshape(16, 25), field, shifted1, c1, s2, shifted3, c3,
                      c1_kernels, c1_b, c1_table, s2_coef, s2_bias, c3_w, c3_b, c3_table,
                      s4_coef, s4_bias, squash_pooled, sq)
        _full_layers(out[first:first + nd], nd, s4, c5, f6, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
                     distance_output, sq)
    not_finite = 0
    for n in range(start, stop):
        for u in range(10):
            # x - x is 0 for finite x, NaN for NaN and infinities.
            not_finite += (out[n, u] - out[n, u]) != 0
    return not_finite
