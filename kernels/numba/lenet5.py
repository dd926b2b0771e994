"""Numba kernel: LeNet-5's whole forward pass, one digit at a time, in per-thread scratch.

Inference only. Each thread takes its share of the batch one digit at a time
through every layer, with all of that digit's maps in one scratch buffer of
its own (about 37 KB, so it stays in cache), instead of streaming the whole
batch's maps through memory layer after layer. A convolution's output keeps
its input's row stride, so each tap is one contiguous multiply-add.
Twins: kernels/numpy/lenet5.py (the reference) and kernels/cython/lenet5.pyx.
"""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel
from lenet_engine.kernels.numba.activation import _tanh

FIELD, K = 32, 5
C1_SPAN = 27 * FIELD + 28   # C1 maps, 28 x 28 at row stride 32
C3_SPAN = 9 * 14 + 10       # C3 maps, 10 x 10 at row stride 14


@kernel
def _conv(acc, span, src, src_stride, w):
    """acc[:span] += the valid 5x5 correlation of src (row stride src_stride) with w, at that stride."""
    for ki in range(K):
        for kj in range(K):
            wv = w[ki, kj]
            base = ki * src_stride + kj
            for t in range(span):
                acc[t] += wv * src[base + t]


@kernel
def _squash(v, amplitude, slope):
    for t in range(v.shape[0]):
        v[t] = amplitude * _tanh(slope * v[t])


@kernel
def _pool(dst, src, side, stride, coef, bias, squash, amplitude, slope):
    """dst (side * side, compact) = coef * (2x2 block sums of src, row stride `stride`) + bias."""
    for i in range(side):
        row = 2 * i * stride
        for j in range(side):
            s = (src[row + 2 * j] + src[row + 2 * j + 1]) + (src[row + stride + 2 * j] + src[row + stride + 2 * j + 1])
            dst[i * side + j] = coef * s + bias
    if squash:
        _squash(dst, amplitude, slope)


@kernel
def _digit(out, x, c1, s2, c3, s4, c5, f6, c1_w, c1_b, s2_coef, s2_bias, c3_w, c3_b,
           conn_start, conn_in, s4_coef, s4_bias, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
           distance_output, squash_pooled, amplitude, slope):
    for o in range(6):
        acc = c1[o]
        acc[:] = c1_b[o]
        _conv(acc, C1_SPAN, x, FIELD, c1_w[o, 0])
        _squash(acc, amplitude, slope)
        _pool(s2[o], acc, 14, FIELD, s2_coef[o], s2_bias[o], squash_pooled, amplitude, slope)
    for o in range(16):
        acc = c3[o]
        acc[:] = c3_b[o]
        for p in range(conn_start[o], conn_start[o + 1]):
            _conv(acc, C3_SPAN, s2[conn_in[p]], 14, c3_w[p])
        _squash(acc, amplitude, slope)
        _pool(s4[o], acc, 5, 14, s4_coef[o], s4_bias[o], squash_pooled, amplitude, slope)
    flat = s4.reshape(400)
    for u in range(120):
        total = np.float32(0.0)
        for i in range(400):
            total += c5_w[u, i] * flat[i]
        c5[u] = total + c5_b[u]
    _squash(c5, amplitude, slope)
    for u in range(84):
        total = np.float32(0.0)
        for i in range(120):
            total += f6_w[u, i] * c5[i]
        f6[u] = total + f6_b[u]
    _squash(f6, amplitude, slope)
    for u in range(10):
        if distance_output:
            distance = 0.0
            for i in range(84):
                diff = f6[i] - out_w[u, i]
                distance += diff * diff
            out[u] = distance
        else:
            total = np.float32(0.0)
            for i in range(84):
                total += out_w[u, i] * f6[i]
            out[u] = total + out_b[u]


@parallel_kernel
def lenet5_forward(out, field, c1_w, c1_b, s2_coef, s2_bias, c3_w, c3_b, conn_start, conn_in,
                   s4_coef, s4_bias, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
                   distance_output, squash_pooled, amplitude, slope, n_threads):
    """out: (N, 10)   field: (N, 1, 32, 32); the parameters as kernels/numpy/lenet5.py documents."""
    n_batch = field.shape[0]
    # One contiguous share of the batch per thread, each with its own scratch.
    for t in prange(n_threads):
        c1 = np.empty((6, C1_SPAN), np.float32)
        s2 = np.empty((6, 196), np.float32)
        c3 = np.empty((16, C3_SPAN), np.float32)
        s4 = np.empty((16, 25), np.float32)
        c5 = np.empty(120, np.float32)
        f6 = np.empty(84, np.float32)
        for n in range(t * n_batch // n_threads, (t + 1) * n_batch // n_threads):
            _digit(out[n], field[n, 0].reshape(FIELD * FIELD), c1, s2, c3, s4, c5, f6,
                   c1_w, c1_b, s2_coef, s2_bias, c3_w, c3_b, conn_start, conn_in,
                   s4_coef, s4_bias, c5_w, c5_b, f6_w, f6_b, out_w, out_b,
                   distance_output, squash_pooled, amplitude, slope)
