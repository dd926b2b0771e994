"""NumPy reference of the int8 forward pass, in exact integer arithmetic (kernels/fused_int8.py).

Twin: kernels/numba/lenet5_int8.py, which must equal it bit for bit.
"""

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lenet_engine.kernels.fused_int8 import BoundInt8Forward, check_int8_weights
from lenet_engine.kernels.numpy.rbf import rbf_forward


def squash_lookup(acc, mult, lut):
    """int8 outputs of int32 accumulators (channel on axis 1): lut[clip(rint(float32(acc) * m)) + L]."""
    half = (len(lut) - 1) // 2
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    z = acc.astype(np.float32) * mult.reshape(shape)     # float32 times float32: one IEEE rounding
    return lut[np.clip(np.rint(z), -half, half).astype(np.intp) + half]


def pool_lookup(a, lut):
    """(N, C, H, W) int8 -> (N, C, H/2, W/2) int8: each 2x2 sum looked up in its map's table."""
    a = a.astype(np.int32)
    sums = a[:, :, 0::2, 0::2] + a[:, :, 0::2, 1::2] + a[:, :, 1::2, 0::2] + a[:, :, 1::2, 1::2]
    maps = np.arange(a.shape[1]).reshape(1, -1, 1, 1)
    return lut[maps, sums + 508]


def _conv_acc(x, w):
    """(N, H, W) int, (25,) int8 -> (N, H - 4, W - 4) int64 valid correlation."""
    patches = sliding_window_view(x, (5, 5), axis=(1, 2)).reshape(*x.shape[:1], x.shape[1] - 4,
                                                                  x.shape[2] - 4, 25)
    return patches.astype(np.int64) @ w.astype(np.int64)


def int8_layers(digits, q):
    """Each stage's integer output: {"c1", "s2", "c3", "s4", "c5", "f6"} int8 arrays."""
    n = len(digits)
    field = np.zeros((n, 32, 32), np.int64)
    field[:, 2:30, 2:30] = digits
    acc1 = np.stack([_conv_acc(field, q.c1_w[c]) for c in range(6)], axis=1) + q.c1_b.reshape(1, 6, 1, 1)
    c1 = squash_lookup(acc1, q.c1_m, q.c1_lut)
    s2 = pool_lookup(c1, q.s2_lut)
    acc3 = np.zeros((n, 16, 10, 10), np.int64)
    for o in range(16):
        for p in range(q.conn_start[o], q.conn_start[o + 1]):
            acc3[:, o] += _conv_acc(s2[:, q.conn_in[p]], q.c3_w[p])
    c3 = squash_lookup(acc3 + q.c3_b.reshape(1, 16, 1, 1), q.c3_m, q.c3_lut)
    s4 = pool_lookup(c3, q.s4_lut)
    acc5 = s4.reshape(n, 400).astype(np.int64) @ q.c5_w.T.astype(np.int64) + q.c5_b
    c5 = squash_lookup(acc5, q.c5_m, q.c5_lut)
    acc6 = c5.astype(np.int64) @ q.f6_w.T.astype(np.int64) + q.f6_b
    f6 = squash_lookup(acc6, q.f6_m, q.f6_lut)
    return {"c1": c1, "s2": s2, "c3": c3, "s4": s4, "c5": c5, "f6": f6}


def lenet5_int8_codes(f6, digits, weights, n_threads):
    """f6 (N, 84) int8: the integer stages' last output, F6's code, of digits (N, 28, 28) uint8."""
    check_int8_weights(weights)
    f6[...] = int8_layers(digits, weights)["f6"]


def lenet5_int8_forward(out, digits, weights, n_threads):
    """LeNet-5's int8 forward pass, either architecture: out (N, 10) float32, digits (N, 28, 28) uint8."""
    q = weights
    f6 = np.empty((len(digits), 84), np.int8)
    lenet5_int8_codes(f6, digits, q, n_threads)
    if q.distance_output:
        rbf_forward(out, f6.astype(np.float32) * q.f6_scale, q.out_w, n_threads)
    else:
        acc = f6.astype(np.int64) @ q.out_w.T.astype(np.int64) + q.out_b
        out[...] = acc.astype(np.float32) * q.out_m



# lenet5_int8_forward with its weights bound once: Lenet5Int8Forward(weights)(out, digits, n_threads).
Lenet5Int8Forward = functools.partial(BoundInt8Forward, lenet5_int8_forward)
