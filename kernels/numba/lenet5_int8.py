"""Numba kernel: the int8 forward pass (kernels/fused_int8.py), one digit at a time.

The integer sums run through the fp32 pass's own compiled layers (lenet5.py's shifted
convolutions and grouped full layers) on the codes held as floats. Every term is an integer,
and every partial sum, bias included, is at most the sum of the terms' magnitudes: where that
bound is below 2**24 for every output (checked when the weights are bound), float32 holds each
partial sum exactly, in any order, with or without fused multiply-adds, so the sums are the
reference's int32 sums. The bound holds for any int8 weights whose biases stay below about
10 million (the largest sum of products, C5's, is 400 x 127 x 128); the shipped models reach an
eighth of it. Weights past it run the same code in float64, exact to 2**53. The one float
operation of the scheme, float32(acc) * m rounded half to even, is then the reference's IEEE
product, so the tables are indexed alike and the codes are equal bit for bit.
Twin: kernels/numpy/lenet5_int8.py (the reference); kernels/cython/lenet5_int8.pyx.
"""

import numba
import numpy as np

from lenet_engine.kernels.contracts import check_call, check_threads
from lenet_engine.kernels.fused_int8 import POOL_SUMS, check_int8_weights
from lenet_engine.kernels.numba._jit import kernel
from lenet_engine.kernels.numba._threads import run_in_chunks
from lenet_engine.kernels.numba.conv import (ACC_SCRATCH, C1_SHIFT, C1_WIDTH, C3_SHIFT, C3_WIDTH, K,
                                             by_input, convolve_shifted, shift_columns)
from lenet_engine.kernels.numba.lenet5 import FIELD, load_field
from lenet_engine.kernels.numba.linear import GROUP, _dense

EXACT_IN_FLOAT32 = 2 ** 24  # integers up to this magnitude are all float32 values
POOL_OFFSET = (POOL_SUMS - 1) // 2  # a pooling table's entry for the sum 0


@kernel
def _table_index(acc, m, half):
    """Where the sum acc reads its table: clip(rint(float32(acc) * m), -half, half) + half.
    Unsigned: a signed index costs a wraparound test at each table read (twice the time)."""
    h = np.float32(half)
    z = np.rint(np.float32(acc) * m)
    return np.uint32(np.int32(min(max(z, -h), h)) + half)


@kernel
def _table_indices(index, acc, span, m, half):
    """index[o, t], where output map o's sum acc[o, t] reads its table, for t < span. Kept apart
    from the table reads, it vectorises (the compiler vectorises no loop that reads a table)."""
    for o in range(index.shape[0]):
        mo = m[o]
        for t in range(span):
            index[o, t] = _table_index(acc[o, t], mo, half)


@kernel
def _pool_codes(dst, index, side, lut, pool_lut):
    """dst (maps, side * side) = pool_lut[o, the 2x2 block sum of map o's codes + 508], the codes
    lut[index[o, t]] of compact maps of 2 side x 2 side, read where they are summed rather than
    written out first. side is compiled in (numba.literally)."""
    numba.literally(side)
    width = 2 * side
    for o in range(dst.shape[0]):
        for i in range(side):
            top, bottom = 2 * i * width, (2 * i + 1) * width
            for j in range(side):
                s = ((np.int32(lut[index[o, top + 2 * j]]) + np.int32(lut[index[o, top + 2 * j + 1]]))
                     + (np.int32(lut[index[o, bottom + 2 * j]]) + np.int32(lut[index[o, bottom + 2 * j + 1]])))
                dst[o, i * side + j] = pool_lut[o, np.uint32(s + POOL_OFFSET)]


@kernel
def _requantize_units(acc, m, lut):
    """acc (digits, units), unit u's sums replaced by their codes through m[u] and lut."""
    half = (lut.shape[0] - 1) // 2
    for d in range(acc.shape[0]):
        for u in range(acc.shape[1]):
            acc[d, u] = lut[_table_index(acc[d, u], m[u], half)]


@kernel
def _share(f6_codes, digits, start, stop, out, pixels, c1_w, c1_b, c1_m, c1_lut, s2_lut, c3_w,
           c3_b, c3_m, c3_lut, conn_start, conn_in, s4_lut, c5_w, c5_b, c5_m, c5_lut, f6_w, f6_b,
           f6_m, f6_lut, out_w, out_b, out_m, f6_scale, distance_output):
    """F6's codes of digits start .. stop - 1, and their outputs where out has rows, in a
    scratch of their own, in pixels' float type; GROUP digits at a time through the full layers
    (a short group runs as a full one, as in lenet5.py, so a digit's codes do not depend on the
    batch). Returns 0."""
    dtype = pixels.dtype
    field = np.empty(FIELD * FIELD, dtype)
    shifted1 = np.empty((1, K * C1_SHIFT), dtype)
    c1 = np.empty((6 + ACC_SCRATCH, 28 * 28), dtype)
    s2 = np.empty((6, 14 * 14), dtype)
    shifted3 = np.empty((6, K * C3_SHIFT), dtype)
    c3 = np.empty((16 + ACC_SCRATCH, 10 * 10), dtype)
    s4 = np.empty((GROUP, 400), dtype)
    c5 = np.empty((GROUP, 120), dtype)
    f6 = np.empty((GROUP, 84), dtype)
    index1 = np.empty((6, 28 * 28), np.uint32)
    index3 = np.empty((16, 10 * 10), np.uint32)
    c1_half, c3_half = (c1_lut.shape[0] - 1) // 2, (c3_lut.shape[0] - 1) // 2
    c1_table = by_input(np.arange(7), np.zeros(6, np.int64), 1)  # 6 maps, each reading the field
    c3_table = by_input(conn_start, conn_in, 6)
    for first in range(start, stop, GROUP):
        nd = min(GROUP, stop - first)
        for d in range(nd):
            # pixels[0] is 0: the border, C1's zero padding, is exact in the pixel domain.
            load_field(field, digits[first + d], pixels)
            shift_columns(shifted1[0], field, C1_WIDTH, 28, C1_SHIFT, 32)
            convolve_shifted(c1, shifted1, c1_w, c1_b, c1_table, 28 * 28, 28, C1_SHIFT)
            _table_indices(index1, c1, 28 * 28, c1_m, c1_half)
            _pool_codes(s2, index1, 14, c1_lut, s2_lut)
            for o in range(6):
                shift_columns(shifted3[o], s2[o], C3_WIDTH, 10, C3_SHIFT, 16)
            convolve_shifted(c3, shifted3, c3_w, c3_b, c3_table, 10 * 10, 10, C3_SHIFT)
            _table_indices(index3, c3, 10 * 10, c3_m, c3_half)
            _pool_codes(s4[d].reshape(16, 25), index3, 5, c3_lut, s4_lut)
        for d in range(nd, GROUP):
            s4[d] = s4[0]
        _dense(c5, c5_w, c5_b, s4)
        _requantize_units(c5, c5_m, c5_lut)
        _dense(f6, f6_w, f6_b, c5)
        _requantize_units(f6, f6_m, f6_lut)
        for d in range(nd):
            for u in range(84):
                f6_codes[first + d, u] = np.int8(f6[d, u])
        if out.shape[0]:
            _outputs(out[first:first + nd], f6, out_w, out_b, out_m, f6_scale, distance_output)
    return 0


@kernel
def _outputs(out, f6, out_w, out_b, out_m, f6_scale, distance_output):
    """out (nd, 10) from the first nd rows of F6's codes f6: classic's squared distances to
    out_w's rows of the codes times f6_scale, in float32; modern's logits float32(acc) * out_m,
    acc exact as C5's and F6's sums are."""
    for d in range(out.shape[0]):
        for u in range(10):
            if distance_output:
                distance = np.float32(0.0)
                for i in range(84):
                    diff = np.float32(f6[d, i]) * f6_scale - out_w[u, i]
                    distance += diff * diff
                out[d, u] = distance
            else:
                acc = out_b[u]
                for i in range(84):
                    acc += out_w[u, i] * f6[d, i]
                out[d, u] = np.float32(acc) * out_m[u]


def largest_sum(weights):
    """The largest magnitude a partial sum of any integer stage can reach, bias included: the
    inputs are pixels (0..255) at C1, codes (-128..127) after it."""
    w = weights

    def magnitudes(kernels):  # each row's sum of |weight|
        return np.abs(kernels.astype(np.int64)).sum(axis=1)

    def bound(weight_magnitudes, bias, largest_input):
        return int((weight_magnitudes * largest_input + np.abs(bias.astype(np.int64))).max())

    per_connection = magnitudes(w.c3_w)
    c3 = np.array([per_connection[w.conn_start[o]:w.conn_start[o + 1]].sum() for o in range(16)])
    largest = max(bound(magnitudes(w.c1_w), w.c1_b, 255), bound(c3, w.c3_b, 128),
                  bound(magnitudes(w.c5_w), w.c5_b, 128), bound(magnitudes(w.f6_w), w.f6_b, 128))
    return largest if w.distance_output else max(largest, bound(magnitudes(w.out_w), w.out_b, 128))


class Lenet5Int8Forward:
    """lenet5_int8_forward with its weights bound: Lenet5Int8Forward(weights)(out, digits,
    n_threads), the twin of the Cython class. Binding checks the weights and casts the integer
    ones to the float type their sums are exact in (float32, or float64 past 2**24)."""

    def __init__(self, weights):
        check_int8_weights(weights)
        self.weights = w = weights
        self.dtype = np.float32 if largest_sum(w) <= EXACT_IN_FLOAT32 else np.float64

        def cast(a):
            return np.ascontiguousarray(a, self.dtype)

        # The compiled share's arguments after (f6_codes, digits, start, stop, out).
        self._args = (
            np.arange(256).astype(self.dtype),
            cast(w.c1_w).reshape(6, 5, 5), cast(w.c1_b), w.c1_m, w.c1_lut, cast(w.s2_lut),
            cast(w.c3_w).reshape(-1, 5, 5), cast(w.c3_b), w.c3_m, w.c3_lut,
            w.conn_start, w.conn_in, cast(w.s4_lut),
            cast(w.c5_w), cast(w.c5_b), w.c5_m, cast(w.c5_lut),
            cast(w.f6_w), cast(w.f6_b), w.f6_m, cast(w.f6_lut),
            w.out_w if w.distance_output else cast(w.out_w), cast(w.out_b), w.out_m,
            np.float32(w.f6_scale), bool(w.distance_output))

    def codes(self, f6, digits, n_threads):
        """f6 (N, 84) int8: F6's code of digits (N, 28, 28) uint8."""
        check_call("lenet5_int8_codes", ("digits", "f6"), (digits, f6))
        self._run("lenet5_int8_codes", f6, digits, np.empty((0, 10), np.float32), n_threads)

    def __call__(self, out, digits, n_threads):
        """Write the outputs of digits into out; return 0, the count of outputs that are not
        finite (sums of finite weights never overflow)."""
        check_call("lenet5_int8_forward", ("out", "digits"), (out, digits))
        self._run("lenet5_int8_forward", np.empty((len(digits), 84), np.int8), digits, out, n_threads)
        return 0

    def _run(self, name, f6, digits, out, n_threads):
        # One share on the calling thread, or chunks on n_threads threads, as lenet5.py's pass:
        # each chunk through the same compiled _share, so the bits do not depend on the threads.
        check_threads(name, n_threads, numba.config.NUMBA_NUM_THREADS)
        args = (out,) + self._args
        run_in_chunks(_share, f6, digits, n_threads, args, GROUP)


def lenet5_int8_codes(f6, digits, weights, n_threads):
    """As the reference's: f6 (N, 84) int8, F6's code of digits (N, 28, 28) uint8."""
    Lenet5Int8Forward(weights).codes(f6, digits, n_threads)


def lenet5_int8_forward(out, digits, weights, n_threads):
    """As the reference's: out (N, 10) float32, digits (N, 28, 28) uint8, weights an Int8Weights."""
    Lenet5Int8Forward(weights)(out, digits, n_threads)
