# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/lenet5_int8.py (the reference, exact integers) and kernels/numba/lenet5_int8.py.
"""Cython kernel: the int8 forward pass (kernels/fused_int8.py), one digit at a time per thread.

Four passes, chosen at import from the CPU (tests switch them): where it has AVX512-VNNI the
byte pass of l5_int8_vnni.h; else, at the v3 and v4 levels, where it has AVX-VNNI the same byte
pass on 8 lanes (l5_int8_avx_vnni.h), and elsewhere the AVX2 pass of l5_int8_avx2.h (int16
pairs), both computing the squashing where a formula gives the table's every entry; at the
baseline level the int16 pass of l5_int8.h, channels-last maps (C1's 6 padded to 8, C3's 16), C3
reading each tap's six input maps as three int16 pairs. The weights are repacked once, at bind
time, into each pass's layouts. Sums are exact int32 (every order gives the same), so the outputs
equal the reference's bit for bit at every kernel level; classic's RBF distances, kept in float,
are summed in double here. The calling thread and l5_runner.h's helpers take the batch a
block of 8 digits at a time, as they come free.
"""

from libc.stdint cimport int8_t, int16_t, int32_t, uint8_t

import numpy as np

from lenet_engine.kernels.fused_int8 import check_int8_weights
from lenet_engine.kernels.tanh_rational import P8, Q8, squash_coefficients

include "_checks.pxi"
include "_runner.pxi"

cdef enum:
    DIGIT = 28
    FW = 34                       # the field's row: 32, and 2 zeros that C1's last pair reads
    C1_LANES = 8                  # C1's 6 maps, padded
    C1_PAIRS = 15                 # 5 rows x (taps 0-1, 2-3, 4 and a zero)
    S2_SIDE = 14
    C3_LANES = 16
    C3_PAIRS = 75                 # 25 taps x 3 pairs of input maps
    S4_SIZE = 400
    C5_LANES = 128
    C5_PAIRS = 200
    F6_LANES = 96
    F6_PAIRS = 60
    F6_UNITS = 84
    OUT_LANES = 16
    OUT_PAIRS = 42
    CLASSES = 10
    FIELD_SIZE = 32 * FW
    C1_SIZE = 28 * 28 * C1_LANES
    S2_SIZE = S2_SIDE * S2_SIDE * C1_LANES
    C3_SIZE = 10 * 10 * C3_LANES
    ACC_SIZE = 28 * C1_LANES + 64  # the largest stage's sums: a C1 row (224), C5 (128)
    POOL_SUMS_C = 1017            # POOL_SUMS, as a C constant
    PASS_INT16 = 0                # l5_int8.h's sums (every level)
    PASS_AVX2 = 1                 # l5_int8_avx2.h's pass
    PASS_VNNI = 2                 # l5_int8_vnni.h's pass
    BLOCK = 8                     # digits a thread takes at a time (the passes take 4 or 2 at once)
    SCRATCH16 = FIELD_SIZE + C1_SIZE + S2_SIZE + C3_SIZE + S4_SIZE + C5_LANES + F6_LANES


cdef extern from "l5_int8.h":
    int l8_use_vnni
    void l8_gemm(int32_t* acc, const int16_t* x, int stride, int n_pos, const int* off, int n_pairs,
                 const int16_t* w, const int32_t* bias, int lanes) noexcept nogil
    void l8_squash(int16_t* dst, const int32_t* acc, const float* m, const int16_t* lut,
                   int half, int n) noexcept nogil
    void l8_pool(int16_t* dst, const int16_t* src, int side, int ch_stride, int maps, const int16_t* lut,
                 int lut_len) noexcept nogil

cdef extern from "l5_int8_vnni.h":
    ctypedef struct l8v_net_t:
        const int32_t* c1_w
        const int32_t* c1_b
        const float* c1_m
        const int16_t* c1_lut
        int c1_half
        const float* c1_m_lanes
        const uint8_t* c1_steps
        int c1_stepped
        const int16_t* s2_lut
        const uint8_t* s2_steps
        unsigned s2_falling
        int s2_stepped
        const int8_t* c3_w
        const int32_t* c3_b
        const float* c3_m
        const int16_t* c3_lut
        int c3_half
        const uint8_t* c3_steps
        int c3_stepped
        const int16_t* s4_lut
        const uint8_t* s4_steps
        unsigned s4_falling
        int s4_stepped
        const int8_t* c5_w
        const int32_t* c5_b
        const float* c5_m
        const int16_t* c5_lut
        int c5_half
        const int8_t* f6_w
        const int32_t* f6_b
        const float* f6_m
        const int16_t* f6_lut
        int f6_half
    size_t l8v_scratch_bytes() noexcept nogil
    void l8v_squash_stage(int8_t* out, const int32_t* acc, int n, const float* m, int period, const int16_t* lut,
                          int half, const uint8_t* steps, int stepped) noexcept nogil
    void l8v_digit(int8_t* f6_out, const unsigned char* digit, uint8_t* scratch, const l8v_net_t* net) noexcept nogil
    void l8v_digit2(int8_t* f6_a, int8_t* f6_b, const unsigned char* digit_a, const unsigned char* digit_b,
                    uint8_t* scratch, const l8v_net_t* net) noexcept nogil
    void l8v_digit4(int8_t* const* f6_out, const unsigned char* const* digit, uint8_t* scratch,
                    const l8v_net_t* net) noexcept nogil

cdef extern from "l5_int8_avx2.h":
    ctypedef struct l8a_squash_t:
        float p[3]
        float q[3]
        float half
        float top
        int formula
        const int8_t* lut
    ctypedef struct l8a_net_t:
        const int32_t* c1_w
        const int32_t* c1_b
        const float* c1_m
        const int32_t* c1_w2
        const int32_t* c1_b2
        const float* c1_m2
        const int32_t* c1_q2
        const int8_t* s2_lut
        const int16_t* c3_w
        const int32_t* c3_b
        const float* c3_m
        const int8_t* s4_lut
        const int16_t* c5_w
        const int32_t* c5_b
        const float* c5_m
        const int16_t* f6_w
        const int32_t* f6_b
        const float* f6_m
        l8a_squash_t c1, c3, c5, f6
    int L8A_AVAILABLE
    int L8A_VPMADDWD, L8A_AVX_VNNI, L8A_AVX512_VNNI
    int l8_avx2_dot
    int l8a_formula_misses(const l8a_squash_t* sq)

cdef extern from "l5_int8_avx_vnni.h":
    int l8_avx2_dot
    size_t l8a_pass_scratch_bytes() nogil
    void l8a_pass_digit(int8_t* f6_out, const unsigned char* digit, uint8_t* scratch, const l8a_net_t* a,
                        const l8v_net_t* v) nogil
    void l8a_pass_digit2(int8_t* f6_a, int8_t* f6_b, const unsigned char* digit_a, const unsigned char* digit_b,
                         uint8_t* scratch, const l8a_net_t* a, const l8v_net_t* v) nogil

cdef extern from *:
    """
    static int l8_cpu_vnni(void) {
    #if defined(__AVX512BW__) && (defined(__GNUC__) || defined(__clang__))
        return __builtin_cpu_supports("avx512vnni");
    #else
        return 0;
    #endif
    }
    static int l8_cpu_vbmi(void) {  /* and BITALG's vpopcntb, which every CPU with VBMI but Cannon Lake has */
    #if defined(__AVX512BW__) && (defined(__GNUC__) || defined(__clang__))
        return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bitalg");
    #else
        return 0;
    #endif
    }
    static int l8_use_avx2 = 0;  /* l5_int8_avx2.h's pass, where the VNNI pass is not run */
    static void l8_set_vnni(int on) { l8_use_vnni = on; }
    static void l8_set_vbmi(int on) { l8_use_vbmi = on; }
    static void l8_set_avx2(int on) { l8_use_avx2 = on && L8A_AVAILABLE; }
    static int l8_cpu_avx_vnni(void) {
    #if defined(__AVX2__) && (defined(__GNUC__) || defined(__clang__))
        return __builtin_cpu_supports("avxvnni");
    #else
        return 0;
    #endif
    }
    static void l8_set_avx2_dot(int dot) { l8_avx2_dot = dot; }
    static const char *l8_instructions(void) {
        if (l8_use_vnni && l8_use_vbmi) return "AVX512-VNNI vpdpbusd, AVX512-VBMI vpermi2b and BITALG vpopcntb tables";
        if (l8_use_vnni) return "AVX512-VNNI vpdpbusd";
        if (l8_use_avx2 && l8_avx2_dot == L8A_AVX_VNNI) return "AVX-VNNI vpdpbusd, tanh by formula";
        if (l8_use_avx2 && l8_avx2_dot == L8A_AVX512_VNNI) return "AVX512-VNNI vpdpbusd on 8 lanes, tanh by formula";
        if (l8_use_avx2) return "AVX2 vpmaddwd, tanh by formula";
    #if defined(__AVX512BW__)
        return "AVX-512BW vpmaddwd";
    #elif defined(__AVX2__)
        return "AVX2 vpmaddwd";
    #else
        return "portable C";
    #endif
    }
    """
    int l8_use_avx2
    int l8_cpu_vnni() nogil
    int l8_cpu_vbmi() nogil
    void l8_set_vnni(int on) nogil
    void l8_set_vbmi(int on) nogil
    void l8_set_avx2(int on) nogil
    int l8_cpu_avx_vnni() nogil
    void l8_set_avx2_dot(int dot) nogil
    const char* l8_instructions() nogil

l8_set_vnni(l8_cpu_vnni())
l8_set_vbmi(l8_cpu_vbmi())
l8_set_avx2(1)
# Where the CPU has AVX-VNNI, the byte pass of l5_int8_avx_vnni.h runs in the AVX2 pass's place.
CPU_AVX_VNNI = bool(l8_cpu_avx_vnni() and L8A_AVAILABLE)
l8_set_avx2_dot(L8A_AVX_VNNI if CPU_AVX_VNNI else L8A_VPMADDWD)
# What the integer sums (and the VNNI pass's tables) run on at this level: le.info().
INT8_INSTRUCTIONS = l8_instructions().decode()


cdef struct l8_net_t:
    const int16_t* c1_w
    const int32_t* c1_b
    const float* c1_m
    const int16_t* c1_lut
    int c1_half
    const int16_t* s2_lut
    const int16_t* c3_w
    const int32_t* c3_b
    const float* c3_m
    const int16_t* c3_lut
    int c3_half
    const int16_t* s4_lut
    const int16_t* c5_w
    const int32_t* c5_b
    const float* c5_m
    const int16_t* c5_lut
    int c5_half
    const int16_t* f6_w
    const int32_t* f6_b
    const float* f6_m
    const int16_t* f6_lut
    int f6_half
    const int* c1_off
    const int* c3_off
    const int* dense_off


def _pairs(w, lanes):
    """(outputs, K) int -> (ceil(K / 2), lanes, 2) int16: pair k of output o is w[o, 2k], w[o, 2k + 1],
    zeros past K and past the outputs."""
    outputs, k = w.shape
    padded = np.zeros((lanes, k + k % 2), np.int16)
    padded[:outputs, :k] = w
    return np.ascontiguousarray(padded.reshape(lanes, -1, 2).transpose(1, 0, 2))


def _table(lut):
    """An int8 table as int16, with one entry of slack at its end: l8_squash's gathers read 4 bytes."""
    return np.append(lut.astype(np.int16), np.int16(0))


def _quads(w, lanes):
    """(outputs, K) int8 -> (ceil(K / 4), lanes, 4) int8: quad k of output o is w[o, 4k:4k + 4],
    zeros past K and past the outputs (vpdpbusd's signed operand)."""
    outputs, k = w.shape
    padded = np.zeros((lanes, -(-k // 4) * 4), np.int8)
    padded[:outputs, :k] = w
    return np.ascontiguousarray(padded.reshape(lanes, -1, 4).transpose(1, 0, 2))


def _less_offset(bias, w, lanes):
    """The biases of a stage whose inputs are stored as value + 128: bias - 128 * sum(w) per output."""
    return _padded(bias.astype(np.int64) - 128 * w.astype(np.int64).sum(axis=1), lanes, np.int32)


def _by_steps(entries):
    """(first, changes, moves) of tables' entries (..., 1,024), for the passes that read by steps: in
    buckets of 8, each bucket's first entry and a byte whose bit j says whether its entry j differs
    from the one before; moves (..., 128, 8), each entry less the one before (0 at a table's start),
    for the callers to check."""
    moves = np.diff(entries, prepend=entries[..., :1]).reshape(entries.shape[:-1] + (128, 8))
    differs = moves != 0
    differs[..., 0] = False  # a bucket starts at its first entry
    changes = (differs.astype(np.uint16) << np.arange(8, dtype=np.uint16)).sum(axis=-1)
    return entries[..., ::8], changes.astype(np.uint8), moves


def _squash_steps(lut):
    """(bytes, stepped) for l8b_squash_bytes: an odd table's nonnegative half by steps (_by_steps;
    entries past the half: the last one repeated), each bucket's first entry, then its byte of
    rises. stepped = 0 (gathers instead) for a table that is not odd, has over 1,024 entries in its
    half, or rises other than by 0 or 1 from an entry to the next."""
    half = (len(lut) - 1) // 2
    if half >= 1024 or not np.array_equal(lut.astype(np.int16), -lut[::-1].astype(np.int16)):
        return np.zeros(256, np.uint8), 0
    pos = np.full(1024, lut[-1], np.int16)
    pos[:half + 1] = lut[half:]
    first, rises, moves = _by_steps(pos)
    if not np.isin(moves, (0, 1)).all():
        return np.zeros(256, np.uint8), 0
    return np.concatenate([first.astype(np.uint8), rises]), 1


def _pool_steps(luts):
    """(bytes (maps, 256), falling, stepped) for l8b_pool_s2 and l8b_pool_s4: each map's pooling
    table, indexed by the sum + 508, by steps (_by_steps; past its end, the last entry repeated):
    each bucket's first entry + 128, then its byte of changes. falling: bit c set where map c's
    entries fall, else they rise (or stay). stepped = 0 (gathers instead) for tables over 1,024
    entries, or one whose entries move by more than 1 from one to the next, or both up and down."""
    maps, n = luts.shape
    if n > 1024:
        return np.zeros((maps, 256), np.uint8), 0, 0
    entries = np.empty((maps, 1024), np.int16)
    entries[:, :n] = luts
    entries[:, n:] = luts[:, -1:]
    first, changes, moves = _by_steps(entries)
    rising, falling = (moves >= 0).all(axis=(1, 2)), (moves <= 0).all(axis=(1, 2))
    if not (np.abs(moves) <= 1).all() or not (rising | falling).all():
        return np.zeros((maps, 256), np.uint8), 0, 0
    falls = int(sum(1 << int(c) for c in np.flatnonzero(~rising)))
    return np.concatenate([(first + 128).astype(np.uint8), changes], axis=1), falls, 1


def _vnni_arrays(q, c3, c5):
    """The weights as l5_int8_vnni.h reads them (c3: (16, 25, 6) by output map, tap, input map; c5:
    (120, 400), S4 read position by position)."""
    # C1 as 7 quads a map: column kx's taps of rows 0-3 (kx = 0..4), row 4's taps 0-3, then its
    # tap 4 and three zeros.
    taps = q.c1_w.reshape(6, 5, 5)
    c1 = np.zeros((6, 7, 4), np.int8)
    c1[:, :5] = taps[:, :4].transpose(0, 2, 1)
    c1[:, 5] = taps[:, 4, :4]
    c1[:, 6, 0] = taps[:, 4, 4]
    # C3: a window row's 30 bytes (5 taps x 6 input maps) and 2 of slack, as 8 quads per output map.
    rows = np.zeros((16, 5, 32), np.int8)
    rows[:, :, :30] = c3.reshape(16, 5, 5, 6).reshape(16, 5, 30)
    c3_w = np.ascontiguousarray(rows.reshape(16, 5, 8, 4).transpose(1, 2, 0, 3))
    return {
        "c1_w": c1.view(np.int32).reshape(6, 7).copy(), "c1_b": q.c1_b.copy(), "c1_m": q.c1_m.copy(),
        "c1_lut": _table(q.c1_lut), "c1_m_lanes": np.repeat(q.c1_m, 32).astype(np.float32),
        "c1_steps": _squash_steps(q.c1_lut), "s2_lut": _table(q.s2_lut.reshape(-1)),
        "s2_steps": _pool_steps(q.s2_lut),
        "c3_w": c3_w, "c3_b": _less_offset(q.c3_b, c3.reshape(16, 150), 16), "c3_m": q.c3_m.copy(),
        "c3_lut": _table(q.c3_lut), "c3_steps": _squash_steps(q.c3_lut), "s4_lut": _table(q.s4_lut.reshape(-1)),
        "s4_steps": _pool_steps(q.s4_lut), "c5_w": _quads(c5, C5_LANES), "c5_b": _less_offset(q.c5_b, c5, C5_LANES),
        "c5_m": _padded(q.c5_m, C5_LANES, np.float32), "c5_lut": _table(q.c5_lut),
        "f6_w": _quads(q.f6_w, F6_LANES), "f6_b": _less_offset(q.f6_b, q.f6_w, F6_LANES),
        "f6_m": _padded(q.f6_m, F6_LANES, np.float32), "f6_lut": _table(q.f6_lut),
    }


def _amplitude_solving(target, i):
    """Per entry, the K > 0 with K tanh(i / (2 K)) = target (0 < target < i / 2; it grows with K
    towards i / 2), by bisection in log K."""
    lo, hi = np.full(i.shape, 1e-3), np.full(i.shape, 1e9)
    for _ in range(40):  # K to 3e-11 of itself: the check that follows decides, not this precision
        mid = np.sqrt(lo * hi)
        below = mid * np.tanh(i / (2 * mid)) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.sqrt(lo * hi)


def _squash_amplitude(lut):
    """K with lut[L + i] = clip(rint(K tanh(i / (2 K))), -127, 127) for i in -L..L, as
    quantize.squash_table makes its tables (K: the squashing's amplitude in output steps), or None
    where no K fits. Each entry t >= 0 bounds K from below (K tanh(i / (2 K)) >= t - 1/2) and, below
    127, from above (< t + 1/2); K is the middle of what they leave. l8a_formula_misses then checks
    every entry as the pass computes it."""
    lut = np.asarray(lut, np.int16)
    half = (len(lut) - 1) // 2
    if half < 1 or not np.array_equal(lut, -lut[::-1]):
        return None
    t, i = lut[half + 1:].astype(np.float64), np.arange(1, half + 1, dtype=np.float64)
    # Of the entries with one value, the first bounds K from below the most, the last from above.
    values, first = np.unique(t, return_index=True)
    last = len(t) - 1 - np.unique(t[::-1], return_index=True)[1]
    rising = values - 0.5 > 0
    capped = (values < 127) & (values + 0.5 < i[last] / 2)
    bounds = _amplitude_solving(np.concatenate([values[rising] - 0.5, values[capped] + 0.5]),
                                np.concatenate([i[first][rising], i[last][capped]]))
    lowest = bounds[:rising.sum()].max(initial=1e-3)
    highest = bounds[rising.sum():].min(initial=1e9)
    return float(np.sqrt(lowest * highest)) if lowest < highest else None


def _avx2_arrays(q, c3, c5, c1_quads):
    """The weights as l5_int8_avx2.h reads them (c3: (16, 150) by output map, then tap and input
    map; c5: (120, 400), S4 read position by position; c1_quads: _vnni_arrays' C1, (6, 7) int32)."""
    # C1 as 13 pairs a map: column kx's taps of rows 0-1 (kx = 0..4), of rows 2-3, then row 4's
    # taps 0-1, 2-3, and 4 with a zero.
    taps = q.c1_w.reshape(6, 5, 5).astype(np.int16)
    c1 = np.zeros((6, 13, 2), np.int16)
    c1[:, :5] = taps[:, 0:2].transpose(0, 2, 1)
    c1[:, 5:10] = taps[:, 2:4].transpose(0, 2, 1)
    row4 = np.zeros((6, 6), np.int16)
    row4[:, :5] = taps[:, 4]
    c1[:, 10:13] = row4.reshape(6, 3, 2)
    pairs = c1.view(np.int32).reshape(6, 13)
    # Positions 24-27 of maps 2 p and 2 p + 1 share a vector: lanes 0-3 the first map's, 4-7 the other's.
    lanes = np.repeat(np.arange(6).reshape(3, 2), 4, axis=1)          # (3, 8): the map of each lane
    return {
        "c1_w": pairs.copy(), "c1_b": q.c1_b.copy(), "c1_m": q.c1_m.copy(),
        "c1_w2": np.ascontiguousarray(pairs[lanes].transpose(0, 2, 1)), "c1_b2": q.c1_b[lanes].copy(),
        "c1_m2": q.c1_m[lanes].copy(), "c1_q2": np.ascontiguousarray(c1_quads[lanes].transpose(0, 2, 1)),
        "s2_lut": q.s2_lut.copy(), "c3_w": _pairs(c3, C3_LANES), "c3_b": q.c3_b.copy(), "c3_m": q.c3_m.copy(),
        "s4_lut": q.s4_lut.copy(), "c5_w": _pairs(c5, C5_LANES), "c5_b": _padded(q.c5_b, C5_LANES, np.int32),
        "c5_m": _padded(q.c5_m, C5_LANES, np.float32), "f6_w": _pairs(q.f6_w, F6_LANES),
        "f6_b": _padded(q.f6_b, F6_LANES, np.int32), "f6_m": _padded(q.f6_m, F6_LANES, np.float32),
        "luts": (q.c1_lut.copy(), q.c3_lut.copy(), q.c5_lut.copy(), q.f6_lut.copy()),
    }


cdef void _squash_params(l8a_squash_t* sq, const int8_t[::1] lut):
    """sq for a stage's table: the formula where a K fits every entry, else table reads."""
    sq.lut = &lut[0]
    half = (lut.shape[0] - 1) // 2
    sq.half = half
    saturated = np.flatnonzero(np.asarray(lut[half:]) == 127)
    # Where the table reaches 127 and stays there, the formula's indices stop (else at L).
    sq.top = saturated[0] if len(saturated) and saturated[0] == half + 1 - len(saturated) else half
    sq.formula = 0
    if not L8A_AVAILABLE:  # no AVX2 pass at this level: nothing to fit
        return
    amplitude = _squash_amplitude(lut)
    if amplitude is None:
        return
    coefficients = squash_coefficients(amplitude, 0.5 / amplitude, P8, Q8)  # clamp, limit, p, q
    for k in range(3):
        sq.p[k], sq.q[k] = coefficients[2 + k], coefficients[5 + k]
    sq.formula = l8a_formula_misses(sq) == 0


def _padded(v, lanes, dtype):
    out = np.zeros(lanes, dtype)
    out[:len(v)] = v
    return out


cdef class Lenet5Int8Forward:
    """lenet5_int8_forward with its weights checked and repacked once:
    Lenet5Int8Forward(weights)(out, digits, n_threads) writes out and returns 0 (the count of outputs
    that are not finite, as Lenet5Forward returns it: sums of finite weights never overflow)."""
    cdef object keep               # the repacked arrays, alive as long as this object
    cdef l8_net_t net
    cdef l8v_net_t vnet            # the same weights for l5_int8_vnni.h's byte pass
    cdef l8a_net_t anet            # and for l5_int8_avx2.h's pass
    cdef bint distance_output
    cdef const float[:, ::1] protos_t  # classic: (84, 16), the prototypes by unit, the classes padded
    cdef const int16_t[:, :, ::1] out_w
    cdef const int32_t[::1] out_b
    cdef const float[::1] out_m
    cdef float f6_scale

    def __init__(self, weights):
        check_int8_weights(weights)
        q = weights
        c1 = np.zeros((6, 5, 6), np.int16)            # each row's taps 0-4 and a zero: 3 pairs
        c1[:, :, :5] = q.c1_w.reshape(6, 5, 5)
        c3 = np.zeros((16, 25, 6), np.int16)          # output map, tap, input map; zeros off the table
        for o in range(16):
            for p in range(q.conn_start[o], q.conn_start[o + 1]):
                c3[o, :, q.conn_in[p]] = q.c3_w[p]
        # C5 reads S4 channels-last: its columns, (map, y, x) in the float model, to (y, x, map).
        c5 = q.c5_w.reshape(120, 16, 25).transpose(0, 2, 1).reshape(120, 400)
        arrays = {
            "c1_w": _pairs(c1.reshape(6, 30), C1_LANES), "c1_b": _padded(q.c1_b, C1_LANES, np.int32),
            # The multipliers repeat over a row's positions: l8_squash takes a whole row.
            "c1_m": np.tile(_padded(q.c1_m, C1_LANES, np.float32), 28), "c1_lut": _table(q.c1_lut),
            "s2_lut": q.s2_lut.astype(np.int16),
            "c3_w": _pairs(c3.reshape(16, 150), C3_LANES), "c3_b": q.c3_b.copy(), "c3_m": np.tile(q.c3_m, 10),
            "c3_lut": _table(q.c3_lut), "s4_lut": q.s4_lut.astype(np.int16),
            "c5_w": _pairs(c5, C5_LANES), "c5_b": _padded(q.c5_b, C5_LANES, np.int32),
            "c5_m": _padded(q.c5_m, C5_LANES, np.float32), "c5_lut": _table(q.c5_lut),
            "f6_w": _pairs(q.f6_w, F6_LANES), "f6_b": _padded(q.f6_b, F6_LANES, np.int32),
            "f6_m": _padded(q.f6_m, F6_LANES, np.float32), "f6_lut": _table(q.f6_lut),
            # Where each pair starts, in int16 steps from a position's first input.
            "c1_off": np.array([i * FW + 2 * j for i in range(5) for j in range(3)], np.intc),
            "c3_off": np.array([(i * S2_SIDE + j) * C1_LANES + 2 * c
                                for i in range(5) for j in range(5) for c in range(3)], np.intc),
            "dense_off": np.arange(0, 2 * C5_PAIRS, 2, dtype=np.intc),
        }
        vnni = _vnni_arrays(q, c3.astype(np.int8), c5)
        avx2 = _avx2_arrays(q, c3.reshape(16, 150), c5, vnni["c1_w"])
        self.keep = (arrays, vnni, avx2)
        self._point(**arrays)
        self._point_vnni(**vnni)
        self._point_avx2(**avx2)
        self.distance_output = q.distance_output
        self.f6_scale = q.f6_scale
        if q.distance_output:
            protos_t = np.zeros((F6_UNITS, OUT_LANES), np.float32)
            protos_t[:, :CLASSES] = q.out_w.T
            self.protos_t = protos_t
        else:
            self.out_w = _pairs(q.out_w, OUT_LANES)
            self.out_b = _padded(q.out_b, OUT_LANES, np.int32)
            self.out_m = _padded(q.out_m, OUT_LANES, np.float32)

    def __call__(self, float[:, ::1] out not None, const unsigned char[:, :, ::1] digits not None, int n_threads):
        name = "lenet5_int8_forward"
        check_shape(name, "out", out.shape, 2, (digits.shape[0], CLASSES))
        self._run(NULL, digits, n_threads, name, &out[0, 0] if out.shape[0] else NULL)
        return 0

    def _point(self, const int16_t[:, :, ::1] c1_w, const int32_t[::1] c1_b, const float[::1] c1_m,
               const int16_t[::1] c1_lut, const int16_t[:, ::1] s2_lut, const int16_t[:, :, ::1] c3_w,
               const int32_t[::1] c3_b, const float[::1] c3_m, const int16_t[::1] c3_lut,
               const int16_t[:, ::1] s4_lut, const int16_t[:, :, ::1] c5_w, const int32_t[::1] c5_b,
               const float[::1] c5_m, const int16_t[::1] c5_lut, const int16_t[:, :, ::1] f6_w,
               const int32_t[::1] f6_b, const float[::1] f6_m, const int16_t[::1] f6_lut,
               const int[::1] c1_off, const int[::1] c3_off, const int[::1] dense_off):
        n = &self.net
        n.c1_w, n.c1_b, n.c1_m, n.c1_lut = &c1_w[0, 0, 0], &c1_b[0], &c1_m[0], &c1_lut[0]
        n.c1_half = (c1_lut.shape[0] - 2) // 2  # 2 L + 1 entries and the slack
        n.s2_lut = &s2_lut[0, 0]
        n.c3_w, n.c3_b, n.c3_m, n.c3_lut = &c3_w[0, 0, 0], &c3_b[0], &c3_m[0], &c3_lut[0]
        n.c3_half = (c3_lut.shape[0] - 2) // 2  # 2 L + 1 entries and the slack
        n.s4_lut = &s4_lut[0, 0]
        n.c5_w, n.c5_b, n.c5_m, n.c5_lut = &c5_w[0, 0, 0], &c5_b[0], &c5_m[0], &c5_lut[0]
        n.c5_half = (c5_lut.shape[0] - 2) // 2  # 2 L + 1 entries and the slack
        n.f6_w, n.f6_b, n.f6_m, n.f6_lut = &f6_w[0, 0, 0], &f6_b[0], &f6_m[0], &f6_lut[0]
        n.f6_half = (f6_lut.shape[0] - 2) // 2  # 2 L + 1 entries and the slack
        n.c1_off, n.c3_off, n.dense_off = &c1_off[0], &c3_off[0], &dense_off[0]

    def _point_vnni(self, const int32_t[:, ::1] c1_w, const int32_t[::1] c1_b, const float[::1] c1_m,
                    const int16_t[::1] c1_lut, const float[::1] c1_m_lanes, tuple c1_steps,
                    const int16_t[::1] s2_lut, tuple s2_steps, const int8_t[:, :, :, ::1] c3_w,
                    const int32_t[::1] c3_b, const float[::1] c3_m, const int16_t[::1] c3_lut, tuple c3_steps,
                    const int16_t[::1] s4_lut, tuple s4_steps, const int8_t[:, :, ::1] c5_w, const int32_t[::1] c5_b,
                    const float[::1] c5_m, const int16_t[::1] c5_lut, const int8_t[:, :, ::1] f6_w,
                    const int32_t[::1] f6_b, const float[::1] f6_m, const int16_t[::1] f6_lut):
        v = &self.vnet
        v.c1_w, v.c1_b, v.c1_m, v.c1_lut = &c1_w[0, 0], &c1_b[0], &c1_m[0], &c1_lut[0]
        v.c1_half, v.s2_lut = self.net.c1_half, &s2_lut[0]
        v.c1_m_lanes = &c1_m_lanes[0]
        cdef const uint8_t[::1] steps = c1_steps[0]
        v.c1_steps, v.c1_stepped = &steps[0], c1_steps[1]
        cdef const uint8_t[:, ::1] pool_steps = s2_steps[0]
        v.s2_steps, v.s2_falling, v.s2_stepped = &pool_steps[0, 0], s2_steps[1], s2_steps[2]
        pool_steps = s4_steps[0]
        v.s4_steps, v.s4_falling, v.s4_stepped = &pool_steps[0, 0], s4_steps[1], s4_steps[2]
        v.c3_w, v.c3_b, v.c3_m, v.c3_lut = &c3_w[0, 0, 0, 0], &c3_b[0], &c3_m[0], &c3_lut[0]
        v.c3_half, v.s4_lut = self.net.c3_half, &s4_lut[0]
        steps = c3_steps[0]
        v.c3_steps, v.c3_stepped = &steps[0], c3_steps[1]
        v.c5_w, v.c5_b, v.c5_m, v.c5_lut = &c5_w[0, 0, 0], &c5_b[0], &c5_m[0], &c5_lut[0]
        v.c5_half = self.net.c5_half
        v.f6_w, v.f6_b, v.f6_m, v.f6_lut = &f6_w[0, 0, 0], &f6_b[0], &f6_m[0], &f6_lut[0]
        v.f6_half = self.net.f6_half

    def _point_avx2(self, const int32_t[:, ::1] c1_w, const int32_t[::1] c1_b, const float[::1] c1_m,
                    const int32_t[:, :, ::1] c1_w2, const int32_t[:, ::1] c1_b2, const float[:, ::1] c1_m2,
                    const int32_t[:, :, ::1] c1_q2,
                    const int8_t[:, ::1] s2_lut, const int16_t[:, :, ::1] c3_w, const int32_t[::1] c3_b,
                    const float[::1] c3_m, const int8_t[:, ::1] s4_lut, const int16_t[:, :, ::1] c5_w,
                    const int32_t[::1] c5_b, const float[::1] c5_m, const int16_t[:, :, ::1] f6_w,
                    const int32_t[::1] f6_b, const float[::1] f6_m, tuple luts):
        a = &self.anet
        a.c1_w, a.c1_b, a.c1_m, a.s2_lut = &c1_w[0, 0], &c1_b[0], &c1_m[0], &s2_lut[0, 0]
        a.c1_w2, a.c1_b2, a.c1_m2, a.c1_q2 = &c1_w2[0, 0, 0], &c1_b2[0, 0], &c1_m2[0, 0], &c1_q2[0, 0, 0]
        a.c3_w, a.c3_b, a.c3_m, a.s4_lut = &c3_w[0, 0, 0], &c3_b[0], &c3_m[0], &s4_lut[0, 0]
        a.c5_w, a.c5_b, a.c5_m = &c5_w[0, 0, 0], &c5_b[0], &c5_m[0]
        a.f6_w, a.f6_b, a.f6_m = &f6_w[0, 0, 0], &f6_b[0], &f6_m[0]
        _squash_params(&a.c1, luts[0])
        _squash_params(&a.c3, luts[1])
        _squash_params(&a.c5, luts[2])
        _squash_params(&a.f6, luts[3])

    @property
    def squash_by_formula(self):
        """Per stage (C1, C3, C5, F6), whether l5_int8_avx2.h's pass computes its table's entries
        (True) or reads them (False)."""
        return tuple(bool(sq.formula) for sq in (self.anet.c1, self.anet.c3, self.anet.c5, self.anet.f6))

    def codes(self, int8_t[:, ::1] f6 not None, const unsigned char[:, :, ::1] digits not None, int n_threads,
              str name="lenet5_int8_codes"):
        """f6 (N, 84) int8: F6's code of each digit (N, 28, 28) uint8; errors name the kernel `name`."""
        check_shape(name, "f6", f6.shape, 2, (digits.shape[0], F6_UNITS))
        self._run(&f6[0, 0] if f6.shape[0] else NULL, digits, n_threads, name, NULL)

    cdef _run(self, int8_t* f6, const unsigned char[:, :, ::1] digits, int n_threads, str name, float* out):
        """Each digit's F6 code into f6 (N, 84) where f6 is not NULL, else into its thread's scratch, and its
        (10,) outputs into out where out is not NULL, on the thread that made its code."""
        check_threads(name, n_threads)
        cdef Py_ssize_t n = digits.shape[0]
        check_shape(name, "digits", digits.shape, 3, (n, DIGIT, DIGIT))
        if n == 0:
            return
        # Read once: the scratch's size and the pass must agree.
        cdef int kind = PASS_VNNI if l8_use_vnni else (PASS_AVX2 if l8_use_avx2 else PASS_INT16)
        cdef l8_batch_t batch
        batch.forward, batch.f6, batch.digits, batch.n = <void*>self, f6, &digits[0, 0, 0], n
        batch.kind, batch.out = kind, out
        # A chunk is a block of BLOCK digits (l5_runner.h); a digit's code does not depend on
        # which thread makes it, nor beside which. Each pass keeps its borders and padding zero,
        # in its own layout: a thread's scratch is zeroed when the pass changes.
        cdef l5_work_t work
        work.run, work.ctx = _run_block, &batch
        work.n_chunks, work.scratch_bytes = (n + BLOCK - 1) // BLOCK, _scratch_bytes(kind)
        # The AVX2 pass's scratch is laid out as its dot instruction reads it.
        work.scratch_kind = kind * 4 + (l8_avx2_dot if kind == PASS_AVX2 else 0)
        cdef int failed
        with nogil:
            failed = l5_run_chunks(&work, n_threads)
        if failed:
            raise MemoryError(f"{name}: no memory for the scratch")

    cdef void _share(self, int8_t* f6, const unsigned char* digits, Py_ssize_t first, Py_ssize_t stop,
                     uint8_t* scratch, int kind, float* out) noexcept nogil:
        """Digits first .. stop - 1: the VNNI pass takes them four at a time, then two, and the AVX2
        pass two at a time (C5 and F6 read their weights once for all of them), the int16 pass one at
        a time."""
        cdef Py_ssize_t i = first
        cdef int8_t* code_a = <int8_t*>(scratch + _pass_bytes(kind))
        cdef int8_t* code_b = code_a + F6_LANES
        cdef int8_t* codes[4]
        cdef const unsigned char* inputs[4]
        cdef int d
        while i < stop:
            if kind == PASS_VNNI and i + 3 < stop:
                for d in range(4):
                    codes[d] = f6 + (i + d) * F6_UNITS if f6 != NULL else code_a + d * F6_LANES
                    inputs[d] = digits + (i + d) * DIGIT * DIGIT
                l8v_digit4(codes, inputs, scratch, &self.vnet)
                if out != NULL:
                    for d in range(4):
                        self._output(out + (i + d) * CLASSES, codes[d])
                i += 4
                continue
            if f6 != NULL:
                code_a, code_b = f6 + i * F6_UNITS, f6 + (i + 1) * F6_UNITS
            if kind != PASS_INT16 and i + 1 < stop:
                if kind == PASS_VNNI:
                    l8v_digit2(code_a, code_b, digits + i * DIGIT * DIGIT, digits + (i + 1) * DIGIT * DIGIT, scratch, &self.vnet)
                else:
                    l8a_pass_digit2(code_a, code_b, digits + i * DIGIT * DIGIT, digits + (i + 1) * DIGIT * DIGIT, scratch, &self.anet,
                                    &self.vnet)
                if out != NULL:
                    self._output(out + i * CLASSES, code_a)
                    self._output(out + (i + 1) * CLASSES, code_b)
                i += 2
                continue
            if kind == PASS_VNNI:
                l8v_digit(code_a, digits + i * DIGIT * DIGIT, scratch, &self.vnet)
            elif kind == PASS_AVX2:
                l8a_pass_digit(code_a, digits + i * DIGIT * DIGIT, scratch, &self.anet, &self.vnet)
            else:
                _digit(code_a, digits + i * DIGIT * DIGIT, <int16_t*>scratch, <int32_t*>(<int16_t*>scratch + SCRATCH16), &self.net)
            if out != NULL:
                self._output(out + i * CLASSES, code_a)
            i += 1

    cdef void _output(self, float* out, const int8_t* f6) noexcept nogil:
        """out (10,) of one F6 code: modern's logits, or classic's RBF distances, each class's sum of
        squares in double (the classes in the inner loop, so the compiler vectorises over them)."""
        cdef int o, k
        cdef float x
        cdef double d
        cdef double s[OUT_LANES]
        cdef int16_t codes[F6_UNITS]
        cdef int32_t acc[OUT_LANES]
        if self.distance_output:
            for o in range(OUT_LANES):
                s[o] = 0.0
            for k in range(F6_UNITS):
                x = <float>f6[k] * self.f6_scale
                for o in range(OUT_LANES):
                    d = x - self.protos_t[k, o]
                    s[o] += d * d
            for o in range(CLASSES):
                out[o] = <float>s[o]
        else:
            for k in range(F6_UNITS):
                codes[k] = f6[k]
            l8_gemm(acc, codes, 0, 1, self.net.dense_off, OUT_PAIRS, &self.out_w[0, 0, 0], &self.out_b[0],
                    OUT_LANES)
            for o in range(CLASSES):
                out[o] = <float>acc[o] * self.out_m[o]


cdef size_t _pass_bytes(int kind) noexcept nogil:
    """The scratch one digit's pass needs: the VNNI pass's, the AVX2 or AVX-VNNI pass's, or the int16 pass's."""
    if kind == PASS_VNNI:
        return l8v_scratch_bytes()
    if kind == PASS_AVX2:
        return l8a_pass_scratch_bytes()
    return SCRATCH16 * sizeof(int16_t) + ACC_SIZE * sizeof(int32_t)


cdef size_t _scratch_bytes(int kind) noexcept nogil:
    """A thread's scratch for the pass `kind`, with room for four F6 codes at its end."""
    return _pass_bytes(kind) + 4 * F6_LANES


cdef struct l8_batch_t:
    # What a chunk of a call reads: the bound Lenet5Int8Forward (borrowed: the call holds it),
    # _run's arguments, and the pass.
    void* forward
    int8_t* f6
    const unsigned char* digits
    Py_ssize_t n
    int kind
    float* out


cdef void _run_block(void* ctx, long block, void* scratch) noexcept nogil:
    # l5_runner.h's chunk: digits block * BLOCK .. of the batch ctx.
    cdef const l8_batch_t* batch = <const l8_batch_t*>ctx
    cdef Py_ssize_t first = block * BLOCK
    (<Lenet5Int8Forward>batch.forward)._share(batch.f6, batch.digits, first, min(batch.n, first + BLOCK),
                                              <uint8_t*>scratch, batch.kind, batch.out)


# Each thread's scratch (l5_runner.h): the largest pass's.
l5_runner_init(max(_scratch_bytes(PASS_VNNI), _scratch_bytes(PASS_AVX2), _scratch_bytes(PASS_INT16)))


cdef void _digit(int8_t* f6_out, const unsigned char* digit, int16_t* scratch, int32_t* acc,
                 const l8_net_t* net) noexcept nogil:
    cdef int16_t* field = scratch
    cdef int16_t* c1 = field + FIELD_SIZE
    cdef int16_t* s2 = c1 + C1_SIZE
    cdef int16_t* c3 = s2 + S2_SIZE
    cdef int16_t* s4 = c3 + C3_SIZE
    cdef int16_t* c5 = s4 + S4_SIZE
    cdef int16_t* f6 = c5 + C5_LANES
    cdef int y, x, k
    for y in range(DIGIT):
        for x in range(DIGIT):
            field[(y + 2) * FW + x + 2] = digit[y * DIGIT + x]
    for y in range(28):
        l8_gemm(acc, field + y * FW, 1, 28, net.c1_off, C1_PAIRS, net.c1_w, net.c1_b, C1_LANES)
        l8_squash(c1 + y * 28 * C1_LANES, acc, net.c1_m, net.c1_lut, net.c1_half, 28 * C1_LANES)
    l8_pool(s2, c1, S2_SIDE, C1_LANES, 6, net.s2_lut, POOL_SUMS_C)
    for y in range(10):
        l8_gemm(acc, s2 + y * S2_SIDE * C1_LANES, C1_LANES, 10, net.c3_off, C3_PAIRS, net.c3_w, net.c3_b, C3_LANES)
        l8_squash(c3 + y * 10 * C3_LANES, acc, net.c3_m, net.c3_lut, net.c3_half, 10 * C3_LANES)
    l8_pool(s4, c3, 5, C3_LANES, 16, net.s4_lut, POOL_SUMS_C)
    l8_gemm(acc, s4, 0, 1, net.dense_off, C5_PAIRS, net.c5_w, net.c5_b, C5_LANES)
    l8_squash(c5, acc, net.c5_m, net.c5_lut, net.c5_half, 120)
    l8_gemm(acc, c5, 0, 1, net.dense_off, F6_PAIRS, net.f6_w, net.f6_b, F6_LANES)
    l8_squash(f6, acc, net.f6_m, net.f6_lut, net.f6_half, F6_UNITS)
    for k in range(F6_UNITS):
        f6_out[k] = <int8_t>f6[k]


def lenet5_int8_codes(f6, digits, weights, n_threads):
    """As the reference's: f6 (N, 84) int8, F6's code of digits (N, 28, 28) uint8."""
    Lenet5Int8Forward(weights).codes(f6, digits, n_threads)


def lenet5_int8_forward(out, digits, weights, n_threads):
    """As the reference's: out (N, 10) float32, digits (N, 28, 28) uint8, weights an Int8Weights."""
    Lenet5Int8Forward(weights)(out, digits, n_threads)


def _set_vnni(bint on):
    """Tests: run the AVX-512 sums with vpdpbusd (on, where the CPU has it) or vpmaddwd (off)."""
    global INT8_INSTRUCTIONS
    l8_set_vnni(on and l8_cpu_vnni())
    INT8_INSTRUCTIONS = l8_instructions().decode()


def _set_avx2(bint on):
    """Tests: run l5_int8_avx2.h's pass (on, where this level has it and the VNNI pass is off) or the
    int16 pass of l5_int8.h's sums (off)."""
    global INT8_INSTRUCTIONS
    l8_set_avx2(on)
    INT8_INSTRUCTIONS = l8_instructions().decode()


def _set_avx2_dot(instruction):
    """Tests: at the v3 and v4 levels, where _set_avx2 and _set_vnni leave them the pass, the AVX2 pass
    ("vpmaddwd") or the AVX-VNNI byte pass, with vpdpbusd in its VEX form ("avx-vnni") or its EVEX form
    on 8 lanes ("avx512-vnni"); None: as chosen at import. Refused where this CPU lacks it."""
    global INT8_INSTRUCTIONS
    if instruction is None:
        instruction = "avx-vnni" if CPU_AVX_VNNI else "vpmaddwd"
    dots = {"vpmaddwd": (L8A_VPMADDWD, True), "avx-vnni": (L8A_AVX_VNNI, l8_cpu_avx_vnni()),
            "avx512-vnni": (L8A_AVX512_VNNI, l8_cpu_vnni())}
    if instruction not in dots:
        raise ValueError(f"_set_avx2_dot: {instruction!r} is none of {sorted(dots)}")
    dot, runs = dots[instruction]
    if not (runs and L8A_AVAILABLE):
        raise ValueError(f"_set_avx2_dot: this CPU or level has no {instruction} for the AVX2 pass")
    l8_set_avx2_dot(dot)
    INT8_INSTRUCTIONS = l8_instructions().decode()


def _set_vbmi(bint on):
    """Tests: read the VNNI pass's tables (C1's and C3's squashing, S2's pooling) with vpermi2b (on, where
    the CPU has VBMI) or gathers (off)."""
    global INT8_INSTRUCTIONS
    l8_set_vbmi(on and l8_cpu_vbmi())
    INT8_INSTRUCTIONS = l8_instructions().decode()


def _vnni_squash(const int32_t[::1] acc not None, const float[::1] m not None, lut):
    """Tests: the VNNI pass's squashing of a stage's sums, as the pass runs it (by steps where the CPU
    has VBMI and BITALG and the table allows, else gathers): acc (a multiple of 64 sums), lane i's multiplier
    m[i % 16], lut (2 L + 1,) int8. Returns the int8 codes."""
    if not l8_use_vnni:
        raise RuntimeError("_vnni_squash: the VNNI pass is not in use (this level or CPU lacks it, or it is off)")
    cdef Py_ssize_t n = acc.shape[0]
    if n % 64 or m.shape[0] != 16:
        raise ValueError(f"_vnni_squash: acc must hold a multiple of 64 sums and m 16, got {n} and {m.shape[0]}")
    lut = np.ascontiguousarray(lut, np.int8)
    cdef const int16_t[::1] table = _table(lut)
    steps_bytes, stepped = _squash_steps(lut)
    cdef const uint8_t[::1] steps = steps_bytes
    out = np.empty(n, np.int8)
    cdef int8_t[::1] codes = out
    if n:
        l8v_squash_stage(&codes[0], &acc[0], <int>n, &m[0], 16, &table[0], (len(lut) - 1) // 2, &steps[0], stepped)
    return out
