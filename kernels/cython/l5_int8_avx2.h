/* The int8 pass on AVX2 with FMA (lenet5_int8.pyx runs it at the v3 and v4 levels where the CPU
   has neither AVX512-VNNI nor AVX-VNNI): vpmaddwd multiplies pairs of int16 and adds each pair's
   products into an int32 lane, 16 multiply-adds per instruction, exact (|products| <= 255 * 127).
   With the vpaddd that accumulates it, about 24 multiply-adds a cycle on a Zen 4 core against 16
   for fp32 FMAs. Its squashing, full layers and multiply-add serve l5_int8_avx_vnni.h's byte
   pass too.

   Layouts (weights repacked by lenet5_int8.pyx), activations int16, pixels 0..255:
   - C1 puts 8 neighbouring positions of one map in the lanes. Each lane reads 13 pairs: for each
     column of the 5x5 window the pixels of rows 0-1 and of rows 2-3 (vertical pairs, made once per
     digit), then row 4's pixels 0-1, 2-3 and 4 (horizontal pairs, the last against a weight pair
     of one tap and a zero), each times one broadcast weight pair. A row is 3 blocks of 8 positions
     per map and positions 24-27 of two maps per vector.
   - S2 is stored position by position, 6 maps each: a row of C3's 5x5 window is 30 consecutive
     int16, 15 pairs, the 16 output maps in two vectors' lanes. C3's output, S4, C5 and F6 put the
     maps or units in the lanes.
   The squashing: the index rint(float32(acc) * m), clamped to +-L, as l5_int8.h computes it. Where
   the stage can (l8a_squash_t.formula) the table's entry there is computed, as
   rint(K tanh(index / (2 K))) with the float32 rational P8 / Q8 of kernels/tanh_rational.py, K
   fitted to the table (quantize.squash_table makes its tables so: K is the squashing's amplitude
   in output steps); the formula is checked against every entry of the table, through this file's
   own code, when the weights are loaded, and a table it misses is read instead (8 reads cost about
   3 times the formula). The pooling tables are read one entry at a time. */
#ifndef L5_INT8_AVX2_H
#define L5_INT8_AVX2_H
#include "l5_int8.h"

#if defined(__AVX2__) && defined(__FMA__)
#define L8A_AVAILABLE 1

enum { L8A_FIELD_W = 48, L8A_PAIRS_W = 40, L8A_C1_ROW = 6 * 32 };

typedef struct {
    float p[3], q[3];      /* kernels/tanh_rational.squash_coefficients(K, 1 / (2 K), P8, Q8)'s
                              p and q (q monic: its leading 1 is not stored) */
    float half;            /* L: the table has 2 L + 1 entries */
    float top;             /* the formula's indices are clamped to +-top: where the table reaches
                              +-127 and stays (so no value needs clamping), else L */
    int formula;           /* 1: every entry is the formula's (checked at load); 0: table reads */
    const int8_t *lut;
} l8a_squash_t;

typedef struct {
    const int32_t *c1_w;    /* [6][13] weight pairs, as the inputs' pairs above */
    const int32_t *c1_b;    /* [6] */
    const float *c1_m;      /* [6] */
    const int32_t *c1_w2;   /* [3][13][8]: maps 2 p and 2 p + 1's pairs, 4 lanes each (positions 24-27) */
    const int32_t *c1_b2;   /* [3][8] */
    const float *c1_m2;     /* [3][8] */
    const int32_t *c1_q2;   /* [3][7][8]: c1_w2 for l5_int8_avx_vnni.h's quads (l8v_net_t.c1_w's) */
    const int8_t *s2_lut;   /* [6][1017] */
    const int16_t *c3_w;    /* [75 pairs][16 maps][2]: pair i * 15 + j * 3 + c reads window row i,
                               column j, input maps 2c and 2c + 1 */
    const int32_t *c3_b;    /* [16] */
    const float *c3_m;      /* [16] */
    const int8_t *s4_lut;   /* [16][1017] */
    const int16_t *c5_w;    /* [200 pairs][128 units][2], S4 read position by position */
    const int32_t *c5_b;    /* [128] */
    const float *c5_m;      /* [128] */
    const int16_t *f6_w;    /* [60 pairs][96 units][2] */
    const int32_t *f6_b;    /* [96] */
    const float *f6_m;      /* [96] */
    l8a_squash_t c1, c3, c5, f6;
} l8a_net_t;

/* The table entries of 4 vectors of indices (integral floats within +-top) by the formula, in
   lockstep, step by step: each is a chain of some 40 cycles of dependent steps, and issued one
   after another the scheduler fills with waiting steps before the next chain's can start. Every
   step is written as the instruction it is (no product feeds a plain add that the compiler could
   fuse), so the load-time check and the pass compute the same bits. */
static inline void l8a_formula4(__m256 x[4], const __m256 p0, const __m256 p1, const __m256 p2,
                                const __m256 q0, const __m256 q1, const __m256 q2) {
    __m256 z[4], p[4], q[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) z[v] = _mm256_mul_ps(x[v], x[v]);
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        p[v] = _mm256_fmadd_ps(z[v], p2, p1);
        q[v] = _mm256_fmadd_ps(x[v], x[v], q2);
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        p[v] = _mm256_fmadd_ps(z[v], p[v], p0);
        q[v] = _mm256_fmadd_ps(z[v], q[v], q1);
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) q[v] = _mm256_fmadd_ps(z[v], q[v], q0);
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) x[v] = _mm256_div_ps(_mm256_mul_ps(x[v], p[v]), q[v]);
}

/* n vectors of sums squashed in place: acc[v] lane j becomes the table's entry at
   rint(float32(acc[v][j]) * m[v][j]) clamped to +-L (by the formula: to +-top, the same entry).
   The clamps take the product first: max and min return their second operand for NaN, so an index
   stays in the table whatever the multipliers (check_int8_weights refuses those that are not
   finite, besides). Not inlined: the compiler would keep the formula's constants in registers
   across the stages' sums, which then spill. */
static __attribute__((noinline)) void l8a_squash_n(__m256i *acc, const __m256 *m, int n, const l8a_squash_t *sq) {
    if (sq->formula) {
        const __m256 top = _mm256_set1_ps(sq->top), bottom = _mm256_set1_ps(-sq->top);
        const __m256 p0 = _mm256_set1_ps(sq->p[0]), p1 = _mm256_set1_ps(sq->p[1]), p2 = _mm256_set1_ps(sq->p[2]);
        const __m256 q0 = _mm256_set1_ps(sq->q[0]), q1 = _mm256_set1_ps(sq->q[1]), q2 = _mm256_set1_ps(sq->q[2]);
        for (int v0 = 0; v0 < n; v0 += 4) {
            int count = n - v0 < 4 ? n - v0 : 4;  /* a last step of fewer: the others' lanes idle */
            __m256 z[4];
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                int from = v0 + (v < count ? v : 0);
                __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[from]), m[from]);
                z[v] = _mm256_round_ps(_mm256_min_ps(_mm256_max_ps(t, bottom), top),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            }
            l8a_formula4(z, p0, p1, p2, q0, q1, q2);
            for (int v = 0; v < count; v++) acc[v0 + v] = _mm256_cvtps_epi32(z[v]);
        }
        return;
    }
    const __m256 top = _mm256_set1_ps(sq->half), bottom = _mm256_set1_ps(-sq->half);
    int half = (int)sq->half;
    for (int v = 0; v < n; v++) {
        int32_t index[8], value[8];
        __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[v]), m[v]), bottom), top);
        _mm256_storeu_si256((__m256i *)index, _mm256_cvtps_epi32(t));
        for (int j = 0; j < 8; j++) value[j] = sq->lut[index[j] + half];
        acc[v] = _mm256_loadu_si256((const __m256i *)value);
    }
}

/* How many of the table's entries the formula misses (0: the pass may use it): every index -L..L
   through l8a_squash_n itself, as sums of that value with a multiplier of 1. */
static int l8a_formula_misses(const l8a_squash_t *sq) {
    l8a_squash_t by_formula = *sq;
    by_formula.formula = 1;
    int half = (int)sq->half, misses = 0;
    __m256 one[4] = {_mm256_set1_ps(1.0f), _mm256_set1_ps(1.0f), _mm256_set1_ps(1.0f), _mm256_set1_ps(1.0f)};
    for (int i0 = -half; i0 <= half; i0 += 32) {
        __m256i acc[4];
        for (int v = 0; v < 4; v++)
            acc[v] = _mm256_add_epi32(_mm256_set1_epi32(i0 + 8 * v), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        l8a_squash_n(acc, one, 4, &by_formula);
        int32_t got[32];
        memcpy(got, acc, sizeof got);
        for (int k = 0; k < 32 && i0 + k <= half; k++) misses += got[k] != sq->lut[i0 + k + half];
    }
    return misses;
}

/* a + the products of v and w, each lane's 4 bytes a group, by the instruction `dot` names (a
   constant where the pass is compiled; l8_avx2_dot chooses the compiled pass at run time):
   - L8A_VPMADDWD: this file's pass, the groups int16 pairs: vpmaddwd, then vpaddd. The empty asm
     keeps the sum a register step by step: integer adds being associative, gcc otherwise regroups
     a stage's unrolled sums into trees, every product kept in memory until its turn (C1 took five
     times its arithmetic).
   - L8A_AVX_VNNI: l5_int8_avx_vnni.h's pass, the groups quads of unsigned bytes in v and signed
     bytes in w: vpdpbusd in its VEX form (AVX-VNNI: Alder Lake and later), the products added in
     the same instruction, exact (no saturation in this form);
   - L8A_AVX512_VNNI: the same instruction in its EVEX form on 8 lanes (AVX512-VNNI with VL), where
     the 16-lane byte pass runs by default: how the tests run the AVX-VNNI pass on CPUs without it.
   The two vpdpbusd forms are written as asm, which the compiler takes at any level. */
enum { L8A_VPMADDWD = 0, L8A_AVX_VNNI = 1, L8A_AVX512_VNNI = 2 };

static inline __m256i l8a_madd(__m256i a, __m256i v, __m256i w, const int dot) {
    if (dot == L8A_AVX_VNNI) {
        __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(a) : "x"(v), "x"(w));
    } else if (dot == L8A_AVX512_VNNI) {
        __asm__("vpdpbusd %2, %1, %0" : "+x"(a) : "x"(v), "x"(w));
    } else {
        a = _mm256_add_epi32(a, _mm256_madd_epi16(v, w));
        __asm__("" : "+x"(a));
    }
    return a;
}

/* v, which the compiler may not hoist out of its loop: the biases that start a stage's sums, which
   hoisted would live across the squash's call (which clobbers every vector register) and take
   the sums' registers with them to memory. */
static inline __m256i l8a_fresh(__m256i v) {
    __asm__ volatile("" : "+x"(v));
    return v;
}

/* The 4 bytes at p in every lane: one load (a broadcast through a general register costs a shuffle). */
static inline __m256i l8a_bcast(const void *p) {
    return _mm256_castps_si256(_mm256_broadcast_ss((const float *)p));
}

/* 16 int16 in order from two vectors of 8 int32 (each within int16). */
static inline __m256i l8a_pack16(__m256i a, __m256i b) {
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
}

/* Each of 8 lanes: bytes f[x], f[x + step] of the field as the pair's low and high int16. */
static inline __m256i l8a_pairs8(const uint8_t *f, int step) {
    __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)f));
    __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(f + step)));
    return _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16));
}

/* Pooling: the sum of 4 int8 values (-508..508) at index[x], x < n, through the table at
   lut (its entry for sum 0 at lut + 508), into dst[x * step]. */
static inline void l8a_pool_reads(int16_t *dst, int step, const int32_t *index, int n, const int8_t *lut) {
    for (int x = 0; x < n; x++) dst[x * step] = lut[index[x] + 508];
}

/* The full layers of `digits` (1 or 2) inputs at once: n_groups groups of 4 bytes of x[d] (int16
   pairs, or quads of bytes: as `dot` takes them) against w ([n_groups][lanes][4 bytes], lanes a
   multiple of 32), from bias, squashed into values[d] (int32). Four blocks of 8 lanes a pass;
   each weight vector loaded serves both digits (C5's weights do not fit in L1: one digit at a
   time, their loads from L2 are C5's bound). */
static inline void l8a_dense(int32_t *const values[2], const uint8_t *const x[2], const int digits, int n_groups,
                             const uint8_t *w, const int32_t *bias, const float *m, const l8a_squash_t *sq,
                             int lanes, const int dot) {
    for (int o = 0; o < lanes; o += 32) {
        __m256i a[2][4];
#pragma GCC unroll 2
        for (int d = 0; d < digits; d++)
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) a[d][b] = l8a_fresh(_mm256_loadu_si256((const __m256i *)(bias + o + 8 * b)));
        for (int k = 0; k < n_groups; k++) {
            const uint8_t *wk = w + ((size_t)k * lanes + o) * 4;
            __m256i v0 = l8a_bcast(x[0] + 4 * k), v1 = digits > 1 ? l8a_bcast(x[1] + 4 * k) : v0;
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) {
                __m256i wb = _mm256_loadu_si256((const __m256i *)(wk + 32 * b));
                a[0][b] = l8a_madd(a[0][b], v0, wb, dot);
                if (digits > 1) a[1][b] = l8a_madd(a[1][b], v1, wb, dot);
            }
        }
        __m256 mv[4];
        __m256i sq_in[4];  /* a copy: handing the sums' own array to the squash kept it in memory */
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) mv[b] = _mm256_loadu_ps(m + o + 8 * b);
#pragma GCC unroll 2
        for (int d = 0; d < digits; d++) {
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) sq_in[b] = a[d][b];
            l8a_squash_n(sq_in, mv, 4, sq);
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) _mm256_storeu_si256((__m256i *)(values[d] + o + 8 * b), sq_in[b]);
        }
    }
}

/* A row of C1, squashed (int32 codes): positions 0-15 of map c in first[2 c] and first[2 c + 1],
   16-23 in rest[c], and 24-27 of maps 2 p and 2 p + 1 in rest[6 + p] (lanes 0-3 and 4-7: three
   sums where whole blocks would take six, the lanes past 27 idle). in[j]: the row's group j of
   inputs, one group of 4 bytes a position (n_groups of them: pairs or quads, as `dot` takes
   them); w: the maps' groups, broadcast ([6][n_groups]); w2: maps 2 p and 2 p + 1's groups, 4
   lanes each ([3][n_groups][8]); b2: their biases ([3][8]). Twelve sums at once (each input
   vector loaded serving six maps), then nine, each part squashed as a batch. */
static inline __attribute__((always_inline)) void l8a_c1_row(__m256i first[12], __m256i rest[9],
                                                              const int32_t *const in[], const int n_groups,
                                                              const int32_t *w, const int32_t *b, const int32_t *w2,
                                                              const int32_t *b2, const __m256 m_first[12],
                                                              const __m256 m_rest[9], const l8a_squash_t *sq,
                                                              const int dot) {
    __m256i a[12];  /* map c's blocks: a[2 c], a[2 c + 1] */
    for (int c = 0; c < 6; c++) a[2 * c] = a[2 * c + 1] = l8a_fresh(_mm256_set1_epi32(b[c]));
#pragma GCC unroll 13
    for (int j = 0; j < n_groups; j++) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)in[j]);
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(in[j] + 8));
        for (int c = 0; c < 6; c++) {
            __m256i wc = l8a_bcast(w + c * n_groups + j);
            a[2 * c] = l8a_madd(a[2 * c], v0, wc, dot);
            a[2 * c + 1] = l8a_madd(a[2 * c + 1], v1, wc, dot);
        }
    }
    for (int k = 0; k < 12; k++) first[k] = a[k];  /* a copy: handing the sums' own array to the squash kept it in memory */
    l8a_squash_n(first, m_first, 12, sq);
    __m256i r[9];
    for (int c = 0; c < 6; c++) r[c] = l8a_fresh(_mm256_set1_epi32(b[c]));
    for (int p = 0; p < 3; p++) r[6 + p] = l8a_fresh(_mm256_loadu_si256((const __m256i *)(b2 + 8 * p)));
#pragma GCC unroll 13
    for (int j = 0; j < n_groups; j++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(in[j] + 16));
        __m256i twice = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(in[j] + 24)));
        for (int c = 0; c < 6; c++) r[c] = l8a_madd(r[c], v, l8a_bcast(w + c * n_groups + j), dot);
        for (int p = 0; p < 3; p++)
            r[6 + p] = l8a_madd(r[6 + p], twice, _mm256_loadu_si256((const __m256i *)(w2 + (p * n_groups + j) * 8)), dot);
    }
    for (int k = 0; k < 9; k++) rest[k] = r[k];
    l8a_squash_n(rest, m_rest, 9, sq);
}

/* C3's sums of 5 neighbouring positions of a row, squashed (int32 codes): position x's maps 0-7
   in out[2 x], 8-15 in out[2 x + 1]. row: S2's bytes at the window's first row and the first
   position; a window row is n_groups groups of 4 bytes (pairs or quads, as `dot` takes them), the
   next row row_bytes on, the next position step bytes on; w: [5 rows][n_groups][16 maps][4 bytes].
   The ten sums are named one by one (an array of them is kept partly in memory by gcc). */
static inline __attribute__((always_inline)) void l8a_c3_five(__m256i out[10], const uint8_t *row, const int row_bytes,
                                                               const int step, const int n_groups, const uint8_t *w,
                                                               const int32_t *bias, const __m256 m[10],
                                                               const l8a_squash_t *sq, const int dot) {
    __m256i b0 = l8a_fresh(_mm256_loadu_si256((const __m256i *)bias));
    __m256i b1 = l8a_fresh(_mm256_loadu_si256((const __m256i *)(bias + 8)));
    __m256i a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1, a40 = b0, a41 = b1;
    for (int i = 0; i < 5; i++) {
        const uint8_t *r = row + i * row_bytes, *wi = w + (size_t)i * n_groups * 64;
        for (int g = 0; g < n_groups; g++) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(wi + g * 64));
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(wi + g * 64 + 32));
#define L8A_C3_STEP(x)                                                           \
            {                                                                    \
                __m256i v = l8a_bcast(r + step * (x) + 4 * g);                   \
                a##x##0 = l8a_madd(a##x##0, v, w0, dot);                         \
                a##x##1 = l8a_madd(a##x##1, v, w1, dot);                         \
            }
            L8A_C3_STEP(0) L8A_C3_STEP(1) L8A_C3_STEP(2) L8A_C3_STEP(3) L8A_C3_STEP(4)
#undef L8A_C3_STEP
        }
    }
    out[0] = a00, out[1] = a01, out[2] = a10, out[3] = a11, out[4] = a20;
    out[5] = a21, out[6] = a30, out[7] = a31, out[8] = a40, out[9] = a41;
    l8a_squash_n(out, m, 10, sq);
}

/* A thread's scratch for l8a_digit and l8a_digit2 (the first digit's S4 is kept in its last 800
   bytes while the second's is made). */
static inline size_t l8a_scratch_bytes(void) {
    return 32 + 32 * L8A_FIELD_W + 2 * 30 * L8A_PAIRS_W * 4 + 2 * (28 * L8A_C1_ROW + 14 * 14 * 6 + 16 + 100 * 16 + 400)
           + 2 * 400;
}

/* One digit through C1 .. S4: returns S4 ([5][5][16] int16, position by position), in the scratch. */
static inline __attribute__((always_inline)) const int16_t *l8a_features(const unsigned char *digit, uint8_t *scratch,
                                                                          const l8a_net_t *net) {
    const int dot = L8A_VPMADDWD;
    uint8_t *field = (uint8_t *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);  /* [32][48], zero border */
    int32_t *vert = (int32_t *)(field + 32 * L8A_FIELD_W);  /* [30][40]: rows y, y + 1 of the field */
    int32_t *row4 = vert + 30 * L8A_PAIRS_W;                /* [28][40]: row y + 4, columns x, x + 1 */
    int16_t *c1 = (int16_t *)(row4 + 28 * L8A_PAIRS_W);     /* [28][6][32] */
    int16_t *s2 = c1 + 28 * L8A_C1_ROW;                     /* [14][14][6] + 16 of slack */
    int16_t *c3 = s2 + 14 * 14 * 6 + 16;                    /* [10][10][16] */
    int16_t *s4 = c3 + 100 * 16;                            /* [5][5][16] */
    for (int y = 0; y < 28; y++) memcpy(field + (y + 2) * L8A_FIELD_W + 2, digit + y * 28, 28);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < L8A_PAIRS_W; x += 8) {
            _mm256_storeu_si256((__m256i *)(vert + y * L8A_PAIRS_W + x), l8a_pairs8(field + y * L8A_FIELD_W + x, L8A_FIELD_W));
            if (y < 28)
                _mm256_storeu_si256((__m256i *)(row4 + y * L8A_PAIRS_W + x),
                                    l8a_pairs8(field + (y + 4) * L8A_FIELD_W + x, 1));
        }
    /* C1, a row at a time (l8a_c1_row), 13 pairs a position. */
    __m256 m_first[12], m_rest[9];
    for (int v = 0; v < 12; v++) m_first[v] = _mm256_set1_ps(net->c1_m[v / 2]);
    for (int c = 0; c < 6; c++) m_rest[c] = _mm256_set1_ps(net->c1_m[c]);
    for (int p = 0; p < 3; p++) m_rest[6 + p] = _mm256_loadu_ps(net->c1_m2 + 8 * p);
    for (int y = 0; y < 28; y++) {
        const int32_t *in[13];
        for (int j = 0; j < 5; j++) {
            in[j] = vert + y * L8A_PAIRS_W + j;
            in[5 + j] = vert + (y + 2) * L8A_PAIRS_W + j;
        }
        for (int j = 0; j < 3; j++) in[10 + j] = row4 + y * L8A_PAIRS_W + 2 * j;
        int16_t *out = c1 + y * L8A_C1_ROW;
        __m256i sq[12], sr[9];
        l8a_c1_row(sq, sr, in, 13, net->c1_w, net->c1_b, net->c1_w2, net->c1_b2, m_first, m_rest, &net->c1, dot);
        for (int c = 0; c < 6; c++)
            _mm256_storeu_si256((__m256i *)(out + c * 32), l8a_pack16(sq[2 * c], sq[2 * c + 1]));
        for (int c = 0; c < 6; c++)
            _mm_storeu_si128((__m128i *)(out + c * 32 + 16), _mm256_castsi256_si128(l8a_pack16(sr[c], sr[c])));
        for (int p = 0; p < 3; p++) {
            __m256i packed = _mm256_packs_epi32(sr[6 + p], sr[6 + p]);  /* each half: its 4 values, twice */
            _mm_storel_epi64((__m128i *)(out + 2 * p * 32 + 24), _mm256_castsi256_si128(packed));
            _mm_storel_epi64((__m128i *)(out + (2 * p + 1) * 32 + 24), _mm256_extracti128_si256(packed, 1));
        }
    }
    /* S2: each 2x2 block's sum (two rows added, then neighbours by vpmaddwd with ones) through its
       map's table, stored position by position. */
    const __m256i ones = _mm256_set1_epi16(1);
    for (int y = 0; y < 14; y++)
        for (int c = 0; c < 6; c++) {
            const int16_t *r = c1 + 2 * y * L8A_C1_ROW + c * 32;
            int32_t index[16];
            for (int h = 0; h < 2; h++) {
                __m256i s = _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(r + 16 * h)),
                                             _mm256_loadu_si256((const __m256i *)(r + L8A_C1_ROW + 16 * h)));
                _mm256_storeu_si256((__m256i *)(index + 8 * h), _mm256_madd_epi16(s, ones));
            }
            l8a_pool_reads(s2 + y * 14 * 6 + c, 6, index, 14, net->s2_lut + c * 1017);
        }
    /* C3: 5 positions of a row at a time (ten sums: the 16 maps in two vectors), 75 pairs. */
    __m256 m3[10];
    for (int v = 0; v < 10; v++) m3[v] = _mm256_loadu_ps(net->c3_m + 8 * (v % 2));
    for (int y = 0; y < 10; y++)
        for (int x0 = 0; x0 < 10; x0 += 5) {
            __m256i sq[10];
            l8a_c3_five(sq, (const uint8_t *)(s2 + (y * 14 + x0) * 6), 14 * 6 * 2, 6 * 2, 15,
                        (const uint8_t *)net->c3_w, net->c3_b, m3, &net->c3, dot);
            for (int x = 0; x < 5; x++)
                _mm256_storeu_si256((__m256i *)(c3 + (y * 10 + x0 + x) * 16), l8a_pack16(sq[2 * x], sq[2 * x + 1]));
        }
    /* S4: 16 maps at a time, their 2x2 sums through their tables. */
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            const int16_t *p = c3 + ((2 * y) * 10 + 2 * x) * 16;
            __m256i s = _mm256_add_epi16(
                _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 16))),
                _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(p + 160)),
                                 _mm256_loadu_si256((const __m256i *)(p + 176))));
            int16_t sums[16];
            _mm256_storeu_si256((__m256i *)sums, s);
            for (int c = 0; c < 16; c++) s4[(y * 5 + x) * 16 + c] = net->s4_lut[c * 1017 + sums[c] + 508];
        }
    return s4;
}

/* C5 and F6 of `digits` (1 or 2) digits' S4: their int8 codes into f6_out[d] (84 each). One
   position, the units in the lanes. */
static inline __attribute__((always_inline)) void l8a_head(int8_t *const f6_out[2], const int16_t *const s4[2],
                                                            const int digits, const l8a_net_t *net) {
    int32_t c5[2][128], f6[2][96];
    int16_t c5_16[2][128];
    int32_t *const c5_out[2] = {c5[0], c5[1]}, *const f6_values[2] = {f6[0], f6[1]};
    const uint8_t *const c5_in[2] = {(const uint8_t *)s4[0], (const uint8_t *)s4[1]};
    const uint8_t *const f6_in[2] = {(const uint8_t *)c5_16[0], (const uint8_t *)c5_16[1]};
    l8a_dense(c5_out, c5_in, digits, 200, (const uint8_t *)net->c5_w, net->c5_b, net->c5_m, &net->c5, 128,
              L8A_VPMADDWD);
    for (int d = 0; d < digits; d++)
        for (int o = 0; o < 128; o += 16)
            _mm256_storeu_si256((__m256i *)(c5_16[d] + o),
                                l8a_pack16(_mm256_loadu_si256((const __m256i *)(c5[d] + o)),
                                           _mm256_loadu_si256((const __m256i *)(c5[d] + o + 8))));
    l8a_dense(f6_values, f6_in, digits, 60, (const uint8_t *)net->f6_w, net->f6_b, net->f6_m, &net->f6, 96,
              L8A_VPMADDWD);
    for (int d = 0; d < digits; d++)
        for (int k = 0; k < 84; k++) f6_out[d][k] = (int8_t)f6[d][k];
}

/* One digit (f6_out, 84 int8 codes), or two, C5 and F6 reading each weight once for both (the
   same bytes). */
static void l8a_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8a_net_t *net) {
    int8_t *const out[2] = {f6_out, f6_out};
    const int16_t *const s4[2] = {l8a_features(digit, scratch, net), NULL};
    l8a_head(out, s4, 1, net);
}

static void l8a_digit2(int8_t *f6_a, int8_t *f6_b, const unsigned char *digit_a, const unsigned char *digit_b,
                       uint8_t *scratch, const l8a_net_t *net) {
    int16_t *kept = (int16_t *)(scratch + l8a_scratch_bytes() - 2 * 400);
    memcpy(kept, l8a_features(digit_a, scratch, net), 2 * 400);
    int8_t *const out[2] = {f6_a, f6_b};
    const int16_t *const s4[2] = {kept, l8a_features(digit_b, scratch, net)};
    l8a_head(out, s4, 2, net);
}
#else
/* Levels without AVX2 and FMA: the pass is never chosen; these keep the module's one source. */
#define L8A_AVAILABLE 0
enum { L8A_VPMADDWD = 0, L8A_AVX_VNNI = 1, L8A_AVX512_VNNI = 2 };
typedef struct {
    float p[3], q[3]; float half, top; int formula; const int8_t *lut;
} l8a_squash_t;
typedef struct {
    const int32_t *c1_w, *c1_b; const float *c1_m; const int32_t *c1_w2, *c1_b2; const float *c1_m2; const int32_t *c1_q2;
    const int8_t *s2_lut; const int16_t *c3_w;
    const int32_t *c3_b; const float *c3_m; const int8_t *s4_lut; const int16_t *c5_w; const int32_t *c5_b;
    const float *c5_m; const int16_t *f6_w; const int32_t *f6_b; const float *f6_m;
    l8a_squash_t c1, c3, c5, f6;
} l8a_net_t;
static inline int l8a_formula_misses(const l8a_squash_t *sq) { (void)sq; return -1; }
#endif

#endif
