"""Numba kernel: the int8 forward pass (kernels/fused_int8.py), one digit at a time, in int32.

Each thread takes a contiguous share of the digits through every stage in
scratch of its own. Compiled without fastmath: the one float operation of the
integer stages, float32(acc) * m rounded half to even, must be the reference's
IEEE product, so that the tables are indexed alike and the outputs are equal
bit for bit. Twin: kernels/numpy/lenet5_int8.py (the reference).
"""

import functools

import numba
import numpy as np
from numba import prange

from lenet_engine.kernels.fused_int8 import BoundInt8Forward, check_int8_weights
from lenet_engine.kernels.numba._jit import EXACT, parallel_kernel
from lenet_engine.kernels.numba.rbf import rbf_forward


@numba.njit(inline="always", **EXACT)
def _lookup(acc, m, lut):
    half = (lut.shape[0] - 1) // 2
    r = np.rint(np.float32(acc) * m)
    if r > half:
        r = half
    elif r < -half:
        r = -half
    return lut[np.int64(r) + half]


@numba.njit(**EXACT)
def _pool(dst, src, lut, size):
    """src (maps, 2 size, 2 size) int8 -> dst (maps, size, size) through each map's sum table."""
    for c in range(src.shape[0]):
        for y in range(size):
            for x in range(size):
                t = (np.int32(src[c, 2 * y, 2 * x]) + np.int32(src[c, 2 * y, 2 * x + 1])
                     + np.int32(src[c, 2 * y + 1, 2 * x]) + np.int32(src[c, 2 * y + 1, 2 * x + 1]))
                dst[c, y, x] = lut[c, t + 508]


@numba.njit(**EXACT)
def _dense(dst, src, w, b, m, lut):
    for o in range(w.shape[0]):
        acc = b[o]
        for k in range(w.shape[1]):
            acc += np.int32(w[o, k]) * np.int32(src[k])
        dst[o] = _lookup(acc, m[o], lut)


@numba.njit(**EXACT)
def _digit(f6, digit, field, c1, s2, c3, s4, c5, q):
    (c1_w, c1_b, c1_m, c1_lut, s2_lut, c3_w, c3_b, c3_m, c3_lut, conn_start, conn_in, s4_lut,
     c5_w, c5_b, c5_m, c5_lut, f6_w, f6_b, f6_m, f6_lut) = q
    for y in range(28):
        for x in range(28):
            field[y + 2, x + 2] = digit[y, x]
    for c in range(6):
        for y in range(28):
            for x in range(28):
                acc = c1_b[c]
                for i in range(5):
                    for j in range(5):
                        acc += np.int32(c1_w[c, 5 * i + j]) * field[y + i, x + j]
                c1[c, y, x] = _lookup(acc, c1_m[c], c1_lut)
    _pool(s2, c1, s2_lut, 14)
    for o in range(16):
        for y in range(10):
            for x in range(10):
                acc = c3_b[o]
                for p in range(conn_start[o], conn_start[o + 1]):
                    src = conn_in[p]
                    for i in range(5):
                        for j in range(5):
                            acc += np.int32(c3_w[p, 5 * i + j]) * np.int32(s2[src, y + i, x + j])
                c3[o, y, x] = _lookup(acc, c3_m[o], c3_lut)
    _pool(s4, c3, s4_lut, 5)
    _dense(c5, s4.reshape(400), c5_w, c5_b, c5_m, c5_lut)
    _dense(f6, c5, f6_w, f6_b, f6_m, f6_lut)


@parallel_kernel(exact=True)
def _f6_codes(f6, digits, q, n_threads):
    """f6 (N, 84) int8: every digit's F6 code, the threads each taking a contiguous share."""
    n = digits.shape[0]
    share = (n + n_threads - 1) // n_threads
    for t in prange(n_threads):
        field = np.zeros((32, 32), np.int32)
        c1 = np.empty((6, 28, 28), np.int8)
        s2 = np.empty((6, 14, 14), np.int8)
        c3 = np.empty((16, 10, 10), np.int8)
        s4 = np.empty((16, 5, 5), np.int8)
        c5 = np.empty(120, np.int8)
        for i in range(t * share, min(n, (t + 1) * share)):
            _digit(f6[i], digits[i], field, c1, s2, c3, s4, c5, q)


@parallel_kernel(exact=True)
def _logits(out, f6, w, b, m, n_threads):
    for i in prange(f6.shape[0]):
        for o in range(w.shape[0]):
            acc = b[o]
            for k in range(w.shape[1]):
                acc += np.int32(w[o, k]) * np.int32(f6[i, k])
            out[i, o] = np.float32(acc) * m[o]


def lenet5_int8_codes(f6, digits, weights, n_threads):
    """As the reference's: f6 (N, 84) int8, F6's code of digits (N, 28, 28) uint8."""
    check_int8_weights(weights)
    q = weights
    integer = (q.c1_w, q.c1_b, q.c1_m, q.c1_lut, q.s2_lut, q.c3_w, q.c3_b, q.c3_m, q.c3_lut,
               q.conn_start, q.conn_in, q.s4_lut, q.c5_w, q.c5_b, q.c5_m, q.c5_lut,
               q.f6_w, q.f6_b, q.f6_m, q.f6_lut)
    _f6_codes(f6, digits, integer, max(1, min(n_threads, len(digits))))


def lenet5_int8_forward(out, digits, weights, n_threads):
    """As the reference's: out (N, 10) float32, digits (N, 28, 28) uint8, weights an Int8Weights."""
    q = weights
    f6 = np.empty((len(digits), 84), np.int8)
    lenet5_int8_codes(f6, digits, q, n_threads)
    if q.distance_output:
        rbf_forward(out, f6.astype(np.float32) * q.f6_scale, q.out_w, n_threads)
    else:
        _logits(out, f6, q.out_w, q.out_b, q.out_m, n_threads)



# lenet5_int8_forward with its weights bound once: Lenet5Int8Forward(weights)(out, digits, n_threads).
Lenet5Int8Forward = functools.partial(BoundInt8Forward, lenet5_int8_forward)
