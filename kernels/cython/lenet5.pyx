# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/lenet5.py (the reference: the layer kernels in sequence) and kernels/numba/lenet5.py.
"""Cython kernel: LeNet-5's whole forward pass in per-thread scratch.

Inference only. Running the layer kernels one after another streams every
intermediate map of the whole batch through memory; here each thread takes
one digit at a time through C1 to S4, then a group of 4 digits through the
full layers (so C5's 192 KB of weights are read once per group, not per
digit), all in a scratch buffer of its own, small enough to stay in L1/L2.
Both architectures, their weights in one FusedWeights (kernels/fused.py).
Called through lenet_engine.network. The calling thread and l5_runner.h's helpers take
the batch a block at a time, as they come free.

The hot loops are register-blocked over 8-float vectors, written in C in l5_lenet5.h
over l5_simd.h's vector type (one AVX register per vector with GCC or Clang;
plain C elsewhere). C1 keeps 2 maps x 4 vectors of one
output row in registers over its 25 taps, reusing each input load twice; its
sums keep the order of the layer kernels (bias, then taps in row, column
order). C3 runs Winograd's F(2, 5) down the columns (l5_c3): each pair of
output rows takes six transformed rows of 30 taps (6 input maps x 5 kernel
columns) where the direct sum takes two of 150, 0.6x the multiply-adds; its
weights, transformed at bind time into [input map, row, kernel column, 16
output maps] (zeros for the pairs the table leaves out), stay channels-last,
ten positions x 16 maps in registers over the 30 taps. Its rounding is about
the direct sum's (within 1.2x on the shipped models' outputs). The full layers
sum in 8 lanes, as _dot.pxi does, but not in its exact order. Squashing
evaluates the tanh rational in float32.
"""

cimport cython
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp

import numpy as np

from lenet_engine.kernels.fused import check_fused_weights

include "_checks.pxi"
include "_runner.pxi"
include "_dot.pxi"
include "_tanh.pxi"

cdef enum:
    FIELD = 32                   # input field 32x32
    DIGIT = 28                   # the digit, centred in the field
    PAD = 2
    TABLE = 256                  # uint8 pixel values
    K = 5                        # every convolution is 5x5
    TAPS = K * K
    C1_MAPS = 6
    C1_SIDE = 28
    S2_SIDE = 14
    C3_MAPS = 16
    C3_SIDE = 10
    S4_SIDE = 5
    C5_UNITS = 120
    F6_UNITS = 84
    CLASSES = 10
    C1_SIZE = C1_MAPS * C1_SIDE * C1_SIDE
    S2_SIZE = C1_MAPS * S2_SIDE * S2_SIDE
    C3_SIZE = C3_SIDE * C3_SIDE * C3_MAPS
    S4_SIZE = C3_MAPS * S4_SIDE * S4_SIDE
    GROUP = 4                    # digits that go through the full layers together
    SCRATCH = C1_SIZE + S2_SIZE + C3_SIZE + GROUP * (S4_SIZE + C5_UNITS + F6_UNITS) + FIELD * FIELD
    C3_PACKED = C1_MAPS * 6 * K * C3_MAPS  # C3's weights transformed (l5_c3w_weights)


cdef extern from "l5_lenet5.h":
    ctypedef struct l5_squash_t:
        float clamp
        float limit
        float p[5]
        float q[5]
    void l5_field_row_affine(float* dst, const unsigned char* src, float scale, float offset) noexcept nogil
    int l5_affine_table(const float* table, float scale, float offset) noexcept nogil
    void l5_c1(float* out, const float* x, const float* w, const float* b) noexcept nogil
    void l5_c3(float* c3, const float* s2, const float* u, const float* b, float* work) noexcept nogil
    void l5_c3w_weights(float* u, const double* w_sum) noexcept nogil
    void l5_squash_n(float* v, int n, const l5_squash_t* sq) noexcept nogil
    void l5_dense4(float* y, const float* w, const float* b, const float* x, int n_in, int n_out) noexcept nogil
    void l5_dense1(float* y, const float* w, const float* b, const float* x, int n_in, int n_out) noexcept nogil
    void l5_s2(float* s2, const float* c1, const float* coef, const float* bias) noexcept nogil
    void l5_s4(float* s4, const float* c3, const float* coef, const float* bias, int squash,
               const l5_squash_t* sq) noexcept nogil


# Each thread's scratch (l5_runner.h): a block's.
l5_runner_init(SCRATCH * sizeof(float))


ctypedef fused digit_t:
    # What lenet5_forward reads: uint8 pixels, or float32 network input.
    unsigned char
    float


cdef struct l5_net_t:
    # The weights as the loops read them: pointers into the bound arrays, and C3's
    # repacked copy (see _repack_c3).
    const float* table
    const float* c1_w
    const float* c1_b
    const float* s2_coef
    const float* s2_bias
    const float* c3_wr
    const float* c3_b
    const float* s4_coef
    const float* s4_bias
    const float* c5_w
    const float* c5_b
    const float* f6_w
    const float* f6_b
    const float* out_w
    const float* out_b
    bint distance_output
    bint squash_pooled
    l5_squash_t sq
    # Set where the table is pixel * scale + offset (see _affine_fit): pixels are then computed.
    bint affine_field
    float field_scale
    float field_offset


def lenet5_forward(out, digits, weights, n_threads):
    """out: (N, 10)   digits: (N, 28, 28) uint8 or float32   weights: a FusedWeights
    (kernels/fused.py)."""
    Lenet5Forward(weights)(out, digits, n_threads)


cdef class Lenet5Forward:
    """lenet5_forward with its weights bound: Lenet5Forward(weights)(out, digits, n_threads).

    The weights are checked and acquired once, here; a call checks and reads only
    `out` and the digits. For one digit that is most of the difference: acquiring
    and checking every weight array costs more than the digit's arithmetic. The
    weights are read afresh by every call, so updates made in place (training) are
    seen. Calls may run at the same time from several Python threads.
    """
    cdef const float[::1] table
    cdef const float[:, :, :, ::1] c1_w
    cdef const float[::1] c1_b, s2_coef, s2_bias, c3_b, s4_coef, s4_bias, c5_b, f6_b, out_b
    cdef const float[:, :, ::1] c3_w
    cdef const int64_t[::1] conn_start, conn_in
    # C3 repacked at bind time, and the c3_w it was made from: a call whose c3_w still holds
    # those bytes reads it instead of repacking (a lone digit's call saves a tenth of its time).
    cdef float[::1] c3_packed
    cdef float[::1] c3_packed_from
    cdef const float[:, ::1] c5_w, f6_w, out_w
    cdef bint distance_output, squash_pooled
    cdef l5_squash_t sq  # the squashing's coefficients, made once here (_squash_params)
    # The table as bound, and whether it is affine (_affine_fit): a call whose table still holds
    # those bytes computes its pixels instead of looking them up.
    cdef float[::1] table_bound
    cdef readonly bint affine_field
    cdef float field_scale, field_offset

    def __init__(self, weights):
        check_fused_weights(weights)
        self._bind(**weights._asdict())

    def _bind(self, const float[::1] table not None,
              const float[:, :, :, ::1] c1_w not None, const float[::1] c1_b not None,
              const float[::1] s2_coef not None, const float[::1] s2_bias not None,
              const float[:, :, ::1] c3_w not None, const float[::1] c3_b not None,
              const int64_t[::1] conn_start not None, const int64_t[::1] conn_in not None,
              const float[::1] s4_coef not None, const float[::1] s4_bias not None,
              const float[:, ::1] c5_w not None, const float[::1] c5_b not None,
              const float[:, ::1] f6_w not None, const float[::1] f6_b not None,
              const float[:, ::1] out_w not None, const float[::1] out_b not None,
              bint distance_output, bint squash_pooled, float amplitude, float slope):
        # FusedWeights' fields by name, each typed here: the memoryviews refuse a wrong dtype,
        # dimension count, layout or None; the shapes are checked below, before any loop runs.
        name = "lenet5_forward"
        check_shape(name, "table", table.shape, 1, (TABLE,))
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
        self.table, self.c1_w, self.c1_b, self.s2_coef, self.s2_bias = table, c1_w, c1_b, s2_coef, s2_bias
        self.table_bound = np.array(table, np.float32)
        self.affine_field, self.field_scale, self.field_offset = _affine_fit(table)
        self.c3_w, self.c3_b, self.conn_start, self.conn_in = c3_w, c3_b, conn_start, conn_in
        self.c3_packed_from = np.array(c3_w, np.float32).reshape(-1)
        self.c3_packed = np.empty(C3_PACKED, np.float32)
        _repack_c3(&self.c3_packed[0], c3_w, conn_start, conn_in)
        self.s4_coef, self.s4_bias, self.c5_w, self.c5_b = s4_coef, s4_bias, c5_w, c5_b
        self.f6_w, self.f6_b, self.out_w, self.out_b = f6_w, f6_b, out_w, out_b
        self.distance_output, self.squash_pooled = distance_output, squash_pooled
        self.sq = _squash_params(amplitude, slope)

    def __call__(self, float[:, ::1] out not None, digits, int n_threads):
        """Write the outputs of digits (N, 28, 28), uint8 or float32, into out (N, 10); return how
        many of them are not finite (counted here: a NumPy check costs more than one digit's
        arithmetic)."""
        name = "lenet5_forward"
        check_threads(name, n_threads)
        # Digits come in two dtypes; name a wrong one plainly instead of Cython's
        # "No matching signature found".
        if digits is None:
            raise TypeError(f"{name}: digits must be an array, not None")
        dtype = getattr(digits, "dtype", None)
        ndim = getattr(digits, "ndim", 3)
        if ndim != 3:
            raise ValueError(f"{name}: digits have {ndim} dimensions, expected 3 (N, 28, 28)")
        if dtype == np.uint8:
            _forward[cython.uchar](self, out, digits, n_threads)
        elif dtype == np.float32:
            _forward[float](self, out, digits, n_threads)
        else:
            raise ValueError(f"{name}: digits must be uint8 or float32, got {dtype}")
        return _count_not_finite(out)

    cdef l5_net_t _pointers(self, const float* c3_wr):
        cdef l5_net_t net
        net.table, net.c1_w, net.c1_b = &self.table[0], &self.c1_w[0, 0, 0, 0], &self.c1_b[0]
        net.s2_coef, net.s2_bias, net.c3_wr, net.c3_b = &self.s2_coef[0], &self.s2_bias[0], c3_wr, &self.c3_b[0]
        net.s4_coef, net.s4_bias = &self.s4_coef[0], &self.s4_bias[0]
        net.c5_w, net.c5_b, net.f6_w, net.f6_b = &self.c5_w[0, 0], &self.c5_b[0], &self.f6_w[0, 0], &self.f6_b[0]
        net.out_w, net.out_b = &self.out_w[0, 0], &self.out_b[0]
        net.distance_output, net.squash_pooled = self.distance_output, self.squash_pooled
        net.sq = self.sq
        net.affine_field = self.affine_field and memcmp(&self.table[0], &self.table_bound[0],
                                                        TABLE * sizeof(float)) == 0
        net.field_scale, net.field_offset = self.field_scale, self.field_offset
        return net


cdef tuple _affine_fit(const float[::1] table):
    # (True, scale, offset) where table[v] is v * scale + offset for every pixel value v, rounded
    # as input_table rounds it (l5_affine_table checks each, bit for bit); else (False, 0, 0).
    # The offset is table[0]; the scale, (table[255] - table[0]) / 255 give or take a few ulp.
    offset = np.float32(table[0])
    guess = np.float32((np.float32(table[255]) - offset) / np.float32(255))
    candidates = [guess]
    for direction in (np.float32(np.inf), np.float32(-np.inf)):
        near = guess
        for _ in range(4):
            near = np.nextafter(near, direction)
            candidates.append(near)
    for scale in candidates:
        if np.isfinite(scale) and l5_affine_table(&table[0], scale, offset):
            return True, float(scale), float(offset)
    return False, 0.0, 0.0


cdef l5_squash_t _squash_params(float amplitude, float slope):
    # The rational's coefficients with the slope and amplitude folded in and q made monic
    # (l5_lenet5.h's l5_squash_t), as tanh_rational.squash_coefficients makes them for every
    # backend's fused pass.
    cdef l5_squash_t sq
    cdef const float[::1] c = tanh_rational.squash_coefficients(amplitude, slope)
    cdef int k
    sq.clamp, sq.limit = c[0], c[1]
    for k in range(5):
        sq.p[k], sq.q[k] = c[2 + k], c[7 + k]
    return sq


def lenet5_squash(float[::1] v not None, float amplitude, float slope, int n_threads):
    """v (n,) float32 squashed in place, amplitude * tanh(slope * v), as lenet5_forward squashes
    (tanh in float32, within 7 ulp): what tests/test_tanh_rational.py checks of it. Runs on the
    calling thread, as the fused pass squashes within each thread's share."""
    check_threads("lenet5_squash", n_threads)
    cdef l5_squash_t sq = _squash_params(amplitude, slope)
    if v.shape[0] > INT_MAX:
        raise ValueError(f"lenet5_squash: {v.shape[0]} values, more than one call takes ({INT_MAX})")
    if v.shape[0] > 0:
        with nogil:
            l5_squash_n(&v[0], <int>v.shape[0], &sq)


cdef Py_ssize_t _count_not_finite(const float[:, ::1] out) noexcept:
    cdef Py_ssize_t n, u, bad = 0
    for n in range(out.shape[0]):
        for u in range(out.shape[1]):
            # x - x is 0 for finite x, NaN for NaN and infinities.
            bad += (out[n, u] - out[n, u]) != 0
    return bad


cdef int _forward(Lenet5Forward self, float[:, ::1] out, const digit_t[:, :, ::1] digits,
                  int n_threads) except -1:
    name = "lenet5_forward"
    cdef Py_ssize_t n_batch = digits.shape[0]
    check_shape(name, "digits", digits.shape, 3, (n_batch, DIGIT, DIGIT))
    check_shape(name, "out", out.shape, 2, (n_batch, CLASSES))
    if n_batch == 0:
        return 0
    cdef const float* c3_w = &self.c3_w[0, 0, 0]
    cdef size_t c3_bytes = self.c3_packed_from.shape[0] * sizeof(float)
    cdef l5_net_t net = self._pointers(&self.c3_packed[0])
    cdef l5_batch_t batch
    batch.net, batch.out, batch.digits = &net, &out[0, 0], &digits[0, 0, 0]
    batch.floats, batch.n_groups = digit_t is float, n_batch // GROUP
    # A chunk is a block: a group of GROUP digits, or past the groups, one of the last
    # n_batch % GROUP digits.
    cdef l5_work_t work
    work.run, work.ctx = _run_block, &batch
    work.n_chunks, work.scratch_bytes = batch.n_groups + n_batch % GROUP, SCRATCH * sizeof(float)
    work.scratch_kind = -1  # the pass keeps nothing in its scratch between digits
    cdef float* repacked = NULL  # C3's weights repacked afresh where they have changed in place
    cdef int failed             # since the bind (training)
    try:
        with nogil:
            if memcmp(c3_w, &self.c3_packed_from[0], c3_bytes) != 0:
                repacked = <float*>malloc(C3_PACKED * sizeof(float))
                if repacked == NULL:
                    with gil:
                        raise MemoryError(f"{name}: no memory for the repacked C3 weights")
                _repack_c3(repacked, self.c3_w, self.conn_start, self.conn_in)
                net.c3_wr = repacked
            failed = l5_run_chunks(&work, n_threads)
    finally:
        free(repacked)
    if failed:
        raise MemoryError(f"{name}: no memory for the scratch")
    return 0


cdef struct l5_batch_t:
    # What a chunk of a call reads: the weights, the outputs, the digits (N, 28, 28) of one
    # of digit_t's types, and how many full groups of GROUP digits they hold.
    const l5_net_t* net
    float* out
    const void* digits
    bint floats
    Py_ssize_t n_groups


cdef void _run_block(void* ctx, long block, void* scratch) noexcept nogil:
    # l5_runner.h's chunk: block `block` of the batch ctx.
    cdef const l5_batch_t* batch = <const l5_batch_t*>ctx
    if batch.floats:
        _block(batch.net, batch.out, <const float*>batch.digits, block, batch.n_groups, <float*>scratch)
    else:
        _block(batch.net, batch.out, <const unsigned char*>batch.digits, block, batch.n_groups,
               <float*>scratch)


cdef void _block(const l5_net_t* net, float* out, const digit_t* digits, Py_ssize_t block,
                 Py_ssize_t n_groups, float* scratch) noexcept nogil:
    # Block `block`: the block-th group of GROUP digits, or past the groups, one of the
    # last n_batch % GROUP digits.
    cdef Py_ssize_t first, d
    cdef int nd
    cdef float* field = scratch + SCRATCH - FIELD * FIELD
    cdef float* s4 = scratch + C1_SIZE + S2_SIZE + C3_SIZE
    if block < n_groups:
        first, nd = block * GROUP, GROUP
    else:
        first, nd = n_groups * GROUP + (block - n_groups), 1
    for d in range(nd):
        _load_field(field, digits + (first + d) * DIGIT * DIGIT, net)
        _features(s4 + d * S4_SIZE, field, scratch, net)
    _full_layers(out + first * CLASSES, nd, s4, net)


cdef void _load_field(float* field, const digit_t* digit, const l5_net_t* net) noexcept nogil:
    # field (32 x 32) = the digit (28 x 28) centred in a 2-pixel border of table[0] (the
    # background): uint8 pixels looked up in the table, or computed where it is affine; float32
    # values as they are.
    cdef Py_ssize_t i, j
    cdef float background = net.table[0]  # a local: the stores into field cannot change it
    cdef float* row
    for i in range(FIELD * FIELD):
        field[i] = background
    for i in range(DIGIT):
        row = field + (i + PAD) * FIELD + PAD
        if digit_t is float:
            for j in range(DIGIT):
                row[j] = digit[i * DIGIT + j]
        elif net.affine_field:
            l5_field_row_affine(row, digit + i * DIGIT, net.field_scale, net.field_offset)
        else:
            for j in range(DIGIT):
                row[j] = net.table[digit[i * DIGIT + j]]


cdef void _repack_c3(float* wr, const float[:, :, ::1] c3_w, const int64_t[::1] conn_start,
                     const int64_t[::1] conn_in) noexcept nogil:
    # wr: C3's weights as l5_c3 reads them (l5_c3w_weights), from the kernel each (input map,
    # output map) pair applies: 0 where the table lists none, summed where it lists one twice. At
    # bind time, and in a call whose c3_w has changed in place since (training).
    cdef double w_sum[C1_MAPS * C3_MAPS * TAPS]
    cdef Py_ssize_t o, p, t, c
    for t in range(C1_MAPS * C3_MAPS * TAPS):
        w_sum[t] = 0.0
    for o in range(C3_MAPS):
        for p in range(conn_start[o], conn_start[o + 1]):
            c = conn_in[p]
            for t in range(TAPS):
                w_sum[(c * C3_MAPS + o) * TAPS + t] += c3_w[p, t // K, t % K]
    l5_c3w_weights(wr, w_sum)


cdef void _features(float* s4, const float* x, float* scratch, const l5_net_t* net) noexcept nogil:
    # One digit x (32 x 32) through C1, S2, C3 and S4: s4 (16 x 5 x 5, channels-first).
    cdef float* c1 = scratch
    cdef float* s2 = c1 + C1_SIZE
    cdef float* c3 = s2 + S2_SIZE
    cdef const l5_squash_t* sq = &net.sq
    l5_c1(c1, x, net.c1_w, net.c1_b)
    l5_squash_n(c1, C1_SIZE, sq)
    l5_s2(s2, c1, net.s2_coef, net.s2_bias)
    if net.squash_pooled:
        l5_squash_n(s2, S2_SIZE, sq)
    # C1's maps are spent: their room is C3's work. (C3 reads 2 floats past S2: C3's own room.)
    l5_c3(c3, s2, net.c3_wr, net.c3_b, c1)
    l5_squash_n(c3, C3_SIZE, sq)
    l5_s4(s4, c3, net.s4_coef, net.s4_bias, net.squash_pooled, sq)


cdef void _full_layers(float* out, int nd, float* s4, const l5_net_t* net) noexcept nogil:
    # nd (GROUP or 1) digits' S4 maps (s4, one after the other) through C5, F6 and the output
    # layer, into out (nd x 10). C5's 192 KB of weights do not fit in L1: read once per group
    # of digits instead of once per digit.
    cdef float* c5 = s4 + GROUP * S4_SIZE
    cdef float* f6 = c5 + GROUP * C5_UNITS
    cdef const l5_squash_t* sq = &net.sq
    cdef Py_ssize_t d, u
    if nd == GROUP:
        l5_dense4(c5, net.c5_w, net.c5_b, s4, S4_SIZE, C5_UNITS)
        l5_squash_n(c5, GROUP * C5_UNITS, sq)
        l5_dense4(f6, net.f6_w, net.f6_b, c5, C5_UNITS, F6_UNITS)
        l5_squash_n(f6, GROUP * F6_UNITS, sq)
    else:
        l5_dense1(c5, net.c5_w, net.c5_b, s4, S4_SIZE, C5_UNITS)
        l5_squash_n(c5, C5_UNITS, sq)
        l5_dense1(f6, net.f6_w, net.f6_b, c5, C5_UNITS, F6_UNITS)
        l5_squash_n(f6, F6_UNITS, sq)
    for d in range(nd):
        for u in range(CLASSES):
            if net.distance_output:
                out[d * CLASSES + u] = <float>sqdist(f6 + d * F6_UNITS, net.out_w + u * F6_UNITS, F6_UNITS)
            else:
                out[d * CLASSES + u] = dot(net.out_w + u * F6_UNITS, f6 + d * F6_UNITS, F6_UNITS) + net.out_b[u]
