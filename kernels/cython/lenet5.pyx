# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/lenet5.py (the reference: the layer kernels in sequence) and kernels/numba/lenet5.py.
"""Cython kernel: LeNet-5's whole forward pass, one digit at a time, in per-thread scratch.

Inference only. Running the layer kernels one after another streams every
intermediate map of the whole batch through memory; here each thread takes
one digit through every layer with all its maps (about 37 KB) in a scratch
buffer of its own, which stays in L1/L2. Both architectures: modern passes
its full C3 as a connection table that lists every pair, its average pooling
as coefficient 0.25 and bias 0, and `squash_pooled` = False. Called through
lenet_engine.network.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

include "_checks.pxi"
include "_dot.pxi"
include "_tanh.pxi"

cdef enum:
    FIELD = 32                   # input field 32x32
    K = 5                        # every convolution is 5x5
    C1_MAPS = 6
    C1_SIDE = 28
    S2_SIDE = 14
    C3_MAPS = 16
    C3_SIDE = 10
    S4_SIDE = 5
    C5_UNITS = 120
    F6_UNITS = 84
    CLASSES = 10
    # A convolution's output is kept with its input's row stride, so each tap is
    # one contiguous multiply-add over (side - 1) * stride + side floats.
    C1_SPAN = (C1_SIDE - 1) * FIELD + C1_SIDE
    C3_SPAN = (C3_SIDE - 1) * S2_SIDE + C3_SIDE
    S4_SIZE = C3_MAPS * S4_SIDE * S4_SIDE
    SCRATCH = (C1_MAPS * C1_SPAN + C1_MAPS * S2_SIDE * S2_SIDE + C3_MAPS * C3_SPAN
               + S4_SIZE + C5_UNITS + F6_UNITS)


cdef inline void _conv_tap_add(float* acc, const float* src, float w, Py_ssize_t span) noexcept nogil:
    cdef Py_ssize_t t
    for t in range(span):
        acc[t] += w * src[t]


cdef inline void _squash(float* v, Py_ssize_t length, float amplitude, float slope) noexcept nogil:
    cdef Py_ssize_t t
    for t in range(length):
        v[t] = amplitude * _tanh(slope * v[t])


cdef void _pool(float* dst, const float* src, Py_ssize_t side, Py_ssize_t stride,
                float coef, float bias, bint squash, float amplitude, float slope) noexcept nogil:
    # dst (side x side, compact) = coef * (2x2 block sums of src, row stride `stride`) + bias.
    cdef Py_ssize_t i, j
    cdef const float* row
    cdef float s
    for i in range(side):
        row = src + 2 * i * stride
        for j in range(side):
            s = (row[2 * j] + row[2 * j + 1]) + (row[stride + 2 * j] + row[stride + 2 * j + 1])
            dst[i * side + j] = coef * s + bias
    if squash:
        _squash(dst, side * side, amplitude, slope)


cdef void _digit(float* out, const float* x, float* scratch,
                 const float[:, :, :, ::1] c1_w, const float[::1] c1_b,
                 const float[::1] s2_coef, const float[::1] s2_bias,
                 const float[:, :, ::1] c3_w, const float[::1] c3_b,
                 const int64_t[::1] conn_start, const int64_t[::1] conn_in,
                 const float[::1] s4_coef, const float[::1] s4_bias,
                 const float[:, ::1] c5_w, const float[::1] c5_b,
                 const float[:, ::1] f6_w, const float[::1] f6_b,
                 const float[:, ::1] out_w, const float[::1] out_b,
                 bint distance_output, bint squash_pooled, float amplitude, float slope) noexcept nogil:
    cdef float* c1 = scratch
    cdef float* s2 = c1 + C1_MAPS * C1_SPAN
    cdef float* c3 = s2 + C1_MAPS * S2_SIDE * S2_SIDE
    cdef float* s4 = c3 + C3_MAPS * C3_SPAN
    cdef float* c5 = s4 + S4_SIZE
    cdef float* f6 = c5 + C5_UNITS
    cdef Py_ssize_t o, p, ki, kj, t, u
    cdef float* acc
    cdef const float* src
    cdef double distance, diff

    for o in range(C1_MAPS):
        acc = c1 + o * C1_SPAN
        for t in range(C1_SPAN):
            acc[t] = c1_b[o]
        for ki in range(K):
            for kj in range(K):
                _conv_tap_add(acc, x + ki * FIELD + kj, c1_w[o, 0, ki, kj], C1_SPAN)
        _squash(acc, C1_SPAN, amplitude, slope)
        _pool(s2 + o * S2_SIDE * S2_SIDE, acc, S2_SIDE, FIELD, s2_coef[o], s2_bias[o],
              squash_pooled, amplitude, slope)

    for o in range(C3_MAPS):
        acc = c3 + o * C3_SPAN
        for t in range(C3_SPAN):
            acc[t] = c3_b[o]
        for p in range(conn_start[o], conn_start[o + 1]):
            src = s2 + conn_in[p] * S2_SIDE * S2_SIDE
            for ki in range(K):
                for kj in range(K):
                    _conv_tap_add(acc, src + ki * S2_SIDE + kj, c3_w[p, ki, kj], C3_SPAN)
        _squash(acc, C3_SPAN, amplitude, slope)
        _pool(s4 + o * S4_SIDE * S4_SIDE, acc, S4_SIDE, S2_SIDE, s4_coef[o], s4_bias[o],
              squash_pooled, amplitude, slope)

    for u in range(C5_UNITS):
        c5[u] = dot(&c5_w[u, 0], s4, S4_SIZE) + c5_b[u]
    _squash(c5, C5_UNITS, amplitude, slope)
    for u in range(F6_UNITS):
        f6[u] = dot(&f6_w[u, 0], c5, C5_UNITS) + f6_b[u]
    _squash(f6, F6_UNITS, amplitude, slope)
    for u in range(CLASSES):
        if distance_output:
            out[u] = <float>sqdist(f6, &out_w[u, 0], F6_UNITS)
        else:
            out[u] = dot(&out_w[u, 0], f6, F6_UNITS) + out_b[u]


def lenet5_forward(float[:, ::1] out not None, const float[:, :, :, ::1] field not None,
                   const float[:, :, :, ::1] c1_w not None, const float[::1] c1_b not None,
                   const float[::1] s2_coef not None, const float[::1] s2_bias not None,
                   const float[:, :, ::1] c3_w not None, const float[::1] c3_b not None,
                   const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
                   const float[::1] s4_coef not None, const float[::1] s4_bias not None,
                   const float[:, ::1] c5_w not None, const float[::1] c5_b not None,
                   const float[:, ::1] f6_w not None, const float[::1] f6_b not None,
                   const float[:, ::1] out_w not None, const float[::1] out_b not None,
                   bint distance_output, bint squash_pooled, float amplitude, float slope,
                   int n_threads=1):
    """out: (N, 10)   field: (N, 1, 32, 32); the parameters as lenet5.py's reference documents."""
    name = "lenet5_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = field.shape[0]
    check_shape(name, "field", field.shape, 4, (n_batch, 1, FIELD, FIELD))
    check_shape(name, "out", out.shape, 2, (n_batch, CLASSES))
    check_shape(name, "c1_w", c1_w.shape, 4, (C1_MAPS, 1, K, K))
    for arr, label, size in ((c1_b, "c1_b", C1_MAPS), (s2_coef, "s2_coef", C1_MAPS),
                             (s2_bias, "s2_bias", C1_MAPS), (c3_b, "c3_b", C3_MAPS),
                             (s4_coef, "s4_coef", C3_MAPS), (s4_bias, "s4_bias", C3_MAPS),
                             (c5_b, "c5_b", C5_UNITS), (f6_b, "f6_b", F6_UNITS),
                             (out_b, "out_b", CLASSES)):
        if len(arr) != size:
            raise ValueError(f"{name}: {label} has length {len(arr)}, expected {size}")
    check_shape(name, "c3_w", c3_w.shape, 3, (c3_w.shape[0], K, K))
    check_table(name, conn_start, conn_in, C3_MAPS, c3_w.shape[0], C1_MAPS)
    check_shape(name, "c5_w", c5_w.shape, 2, (C5_UNITS, S4_SIZE))
    check_shape(name, "f6_w", f6_w.shape, 2, (F6_UNITS, C5_UNITS))
    check_shape(name, "out_w", out_w.shape, 2, (CLASSES, F6_UNITS))

    cdef Py_ssize_t n
    cdef float* scratch
    if n_batch == 0:
        return
    with nogil, parallel(num_threads=n_threads):
        scratch = <float*>malloc(SCRATCH * sizeof(float))
        if scratch != NULL:
            for n in prange(n_batch, schedule="static"):
                _digit(&out[n, 0], &field[n, 0, 0, 0], scratch, c1_w, c1_b, s2_coef, s2_bias,
                       c3_w, c3_b, conn_start, conn_in, s4_coef, s4_bias, c5_w, c5_b,
                       f6_w, f6_b, out_w, out_b, distance_output, squash_pooled, amplitude, slope)
            free(scratch)
        else:
            with gil:
                raise MemoryError(f"{name}: no memory for a thread's scratch")
