/* The fused forward pass's hot loops, one digit at a time in scratch; driven by lenet5.pyx. */
#ifndef L5_LENET5_H
#define L5_LENET5_H
#include "l5_simd.h"

/* Squashing a * tanh(s * v), tanh as the float32 rational of kernels/tanh_rational.py (P32, Q32)
   evaluated in float32 (8 lanes at once; _tanh.pxi evaluates it in double, 4 lanes): within
   7 ulp of the exact tanh, where the double evaluation is within 1 (near +-1 the float32
   value can be a few ulp beyond 1); tests/test_tanh_rational.py checks it through
   lenet5_squash (4.9 ulp at most measured). The slope and amplitude are folded into the
   coefficients, q made monic (q[4] = 1 is not read), the input clamped to +-clamp and the value
   to +-limit, as kernels/tanh_rational.py's squash_coefficients makes them for both backends:
   three multiplies fewer a value, the squash's bound being the multiply-add units. */
typedef struct { float clamp, limit; float p[5], q[5]; } l5_squash_t;

#ifdef L5_VECTOR_EXTENSIONS
static inline l5_v8 l5_select(l5_m8 m, l5_v8 a, l5_v8 b) {
    return (l5_v8)((m & (l5_m8)a) | (~m & (l5_m8)b));
}

#if defined(__AVX__)
#include <immintrin.h>
/* a clamped to [-c, c] by max and min, which run beside the multiply-adds (compare and
   blend would take their units); in this operand order NaN passes through. */
static inline l5_v8 l5_clamp(l5_v8 a, l5_v8 c) {
    return (l5_v8)_mm256_min_ps((__m256)c, _mm256_max_ps((__m256)(-c), (__m256)a));
}
#else
/* Comparisons are false for NaN, which passes through unchanged. */
static inline l5_v8 l5_clamp(l5_v8 a, l5_v8 c) {
    l5_v8 x = l5_select(a > c, c, a);
    return l5_select(x < -c, -c, x);
}
#endif

/* The input is clamped and the rational's value too: in float32 it can come out a few ulp beyond
   the limit near and at the clamp, where tanh rounds to 1, so beyond the clamp it is +-limit as
   the squash is, in a max and a min that run beside the multiply-adds (two compare-and-blends
   fewer per vector than testing the input). The numba twin, whose compiler picks its own
   instructions, returns +-1 past the clamp. */
static inline l5_v8 l5_squash(l5_v8 v, const l5_squash_t *sq) {
    l5_v8 x = l5_clamp(v, l5_set1(sq->clamp));
    l5_v8 z = x * x, p = z * sq->p[4] + sq->p[3], q = z + sq->q[3];
    for (int k = 2; k >= 0; k--) { p = z * p + sq->p[k]; q = z * q + sq->q[k]; }
    return l5_clamp(x * p / q, l5_set1(sq->limit));
}
#else
/* Compilers without vector extensions: the same operations, one lane at a time. */
static l5_v8 l5_squash(l5_v8 v, const l5_squash_t *sq) {
    for (int i = 0; i < 8; i++) {
        float a = v.f[i], x, z, p, q, t;
        x = a > sq->clamp ? sq->clamp : a;
        x = x < -sq->clamp ? -sq->clamp : x;
        z = x * x; p = sq->p[4]; q = 1.0f;
        for (int k = 3; k >= 0; k--) { p = z * p + sq->p[k]; q = z * q + sq->q[k]; }
        t = x * p / q;
        t = a > sq->clamp ? sq->limit : t;
        v.f[i] = a < -sq->clamp ? -sq->limit : t;
    }
    return v;
}
#endif

#ifdef L5_WIDE
/* l5_squash on 16 lanes: the same operations in the same order. The clamps are one vrangeps
   each, sign(a) * min(|a|, c) (imm 0x02: the smaller magnitude, a's sign), where l5_clamp takes a
   max and a min: the same values, NaN included, in one instruction. */
static inline l5_v16 l5_clamp16(l5_v16 a, float c) {
    return (l5_v16)_mm512_range_ps((__m512)a, _mm512_set1_ps(c), 0x02);
}
static inline l5_v16 l5_squash16(l5_v16 v, const l5_squash_t *sq) {
    l5_v16 x = l5_clamp16(v, sq->clamp);
    l5_v16 z = x * x, p = z * sq->p[4] + sq->p[3], q = z + sq->q[3];
    for (int k = 2; k >= 0; k--) { p = z * p + sq->p[k]; q = z * q + sq->q[k]; }
    return l5_clamp16(x * p / q, sq->limit);
}
#endif

/* dst[j] = src[j] * scale + offset for a digit's row of 28 pixels, rounded after the multiply
   and after the add, as lenet_engine.inputs.input_table makes each value of the lookup table:
   where the table is that (l5_affine_table checks it, bit for bit), computing it replaces the
   lookups, which took over two cycles a pixel as scalar loads (and as much in 16-lane gathers on
   a Zen 4). At v4 cols 0 .. 15 and 12 .. 27, at v3 0, 8, 16 and 20: the last vector overlaps the
   one before with the same values, so no load reads past the row. */
static inline void l5_field_row_affine(float *dst, const unsigned char *src, float scale, float offset) {
#if defined(L5_VECTOR_EXTENSIONS) && defined(__AVX512F__)
    for (int j = 0; j <= 12; j += 12) {
        __m512 p = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(src + j))));
        __m512 product = _mm512_mul_ps(p, _mm512_set1_ps(scale));
        __asm__("" : "+v"(product));  /* rounded on its own: GCC would fuse it with the add */
        _mm512_storeu_ps(dst + j, _mm512_add_ps(product, _mm512_set1_ps(offset)));
    }
#elif defined(L5_VECTOR_EXTENSIONS) && defined(__AVX2__)
    static const int start[4] = {0, 8, 16, 20};
    for (int k = 0; k < 4; k++) {
        __m256 p = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + start[k]))));
        __m256 product = _mm256_mul_ps(p, _mm256_set1_ps(scale));
        __asm__("" : "+x"(product));
        _mm256_storeu_ps(dst + start[k], _mm256_add_ps(product, _mm256_set1_ps(offset)));
    }
#else
    for (int j = 0; j < 28; j++) {
        volatile float product = (float)src[j] * scale;  /* rounded here, not fused with the add */
        dst[j] = product + offset;
    }
#endif
}

/* Whether l5_field_row_affine(scale, offset) gives table[v] for every pixel value v, to the bit. */
static int l5_affine_table(const float *table, float scale, float offset) {
    unsigned char pixels[10 * 28];
    float got[10 * 28];
    for (int k = 0; k < 10 * 28; k++) pixels[k] = (unsigned char)(k % 256);
    for (int r = 0; r < 10; r++) l5_field_row_affine(got + 28 * r, pixels + 28 * r, scale, offset);
    for (int k = 0; k < 10 * 28; k++)
        if (memcmp(&got[k], &table[pixels[k]], sizeof(float)) != 0) return 0;
    return 1;
}

/* Columns ca .. ca + 7 and cb .. cb + 7 of row i of all six C1 maps, before squashing:
   out[m * 784 + j]. x: row i of the 32x32 field; w: the maps' 5x5 weights, one after the
   other; b: their biases. Twelve sums in registers, so that twelve independent chains of
   multiply-adds (not eight) hide the latency of each; each input vector loaded serves six
   maps. Called for columns (0, 8) and (16, 20): the last vector overlaps the one before
   (with the same values), so no load reads past column 31. */
static inline void l5_c1_row6(float *out, const float *x, const float *w, const float *b,
                              const int ca, const int cb) {
    l5_v8 a[6], c[6];
    for (int m = 0; m < 6; m++) { a[m] = l5_set1(b[m]); c[m] = a[m]; }
    /* Taps row by row, with constant trip counts (no index arithmetic in the loop body:
       the compiler unrolls them). */
    for (int ky = 0; ky < 5; ky++) {
        const float *r = x + ky * 32;
        for (int kx = 0; kx < 5; kx++) {
            l5_v8 in_a = l5_load(r + kx + ca), in_c = l5_load(r + kx + cb);
            for (int m = 0; m < 6; m++) {
                l5_v8 wm = l5_set1(w[m * 25 + ky * 5 + kx]);
                a[m] = l5_fma(wm, in_a, a[m]);
                c[m] = l5_fma(wm, in_c, c[m]);
            }
        }
    }
    for (int m = 0; m < 6; m++) {
        l5_store(out + m * 784 + ca, a[m]);
        l5_store(out + m * 784 + cb, c[m]);
    }
}

#ifdef L5_WIDE
/* C1 at v4: positions u0 .. u0 + 16 nv - 1 of all six maps, the maps' 784 positions taken
   row-major, 16 at a time (49 vectors a map, where rows of 28 took 56). A vector spans at most
   two output rows; the field's rows are 32 wide, so lanes in the second row read 4 floats
   further on: a masked load merges them in. Each lane sums what l5_c1_row6 sums, in its order. */
L5_ALWAYS_INLINE void l5_c1_block16(float *out, const float *x, const float *w, const float *b,
                                    const int u0, const int nv) {
    const float *src[4];
    __mmask16 next[4];
    l5_v16 acc[4][6];
    for (int v = 0; v < nv; v++) {
        int u = u0 + 16 * v, i = u / 28, left = (i + 1) * 28 - u;  /* lanes left in row i */
        src[v] = x + u + 4 * i;
        next[v] = left < 16 ? (__mmask16)(0xFFFFu << left) : (__mmask16)0;
        for (int m = 0; m < 6; m++) acc[v][m] = l5_set1_16(b[m]);
    }
    for (int ky = 0; ky < 5; ky++) {
        for (int kx = 0; kx < 5; kx++) {
            l5_v16 in[4];
            for (int v = 0; v < nv; v++) {
                const float *p = src[v] + ky * 32 + kx;
                in[v] = (l5_v16)_mm512_mask_loadu_ps(_mm512_loadu_ps(p), next[v], p + 4);
            }
            for (int m = 0; m < 6; m++) {
                l5_v16 wm = l5_set1_16(w[m * 25 + ky * 5 + kx]);
                for (int v = 0; v < nv; v++) acc[v][m] = l5_fma16(wm, in[v], acc[v][m]);
            }
        }
    }
    for (int v = 0; v < nv; v++)
        for (int m = 0; m < 6; m++) l5_store16(out + m * 784 + u0 + 16 * v, acc[v][m]);
}
#endif

/* All six C1 maps (out[m * 784 + i * 28 + j]) of the 32x32 field x, before squashing. */
static void l5_c1(float *out, const float *x, const float *w, const float *b) {
#ifdef L5_WIDE
    int u0 = 0;
    for (; u0 + 64 <= 784; u0 += 64) l5_c1_block16(out, x, w, b, u0, 4);
    l5_c1_block16(out, x, w, b, u0, 1);
#else
    for (int i = 0; i < 28; i++) {
        l5_c1_row6(out + i * 28, x + i * 32, w, b, 0, 8);
        l5_c1_row6(out + i * 28, x + i * 32, w, b, 16, 20);
    }
#endif
}

/* C3 by Winograd's F(2, 5) down the columns: each pair of output rows (2 ti, 2 ti + 1) from the
   six S2 rows 2 ti .. 2 ti + 5 through the six-point transforms below, so that a pair of rows
   takes 6 x 30 multiply-adds a position and map (six transformed rows, each over the 6 input
   maps x 5 kernel columns) where the direct sum takes 2 x 150: 0.6x. The points are 0, 1, -1,
   2, -1/2 and infinity (rounding within 1.5x the direct sum's on random maps; +-2 doubles it);
   BT's rows are scaled to small integers, G's (the weights' transform, l5_c3w_weights) by the
   inverse. AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -1/2, 1]].

   x0 .. x5: six S2 rows (or their lanes); v[l]: transformed row l = sum_j BT[l][j] x_j, each a
   chain of multiply-adds in j order (the same at every width). */
#define L5_C3W_BT(v, x0, x1, x2, x3, x4, x5, set, fma)                                          \
    do {                                                                                         \
        v[0] = fma(set(2.0f), x4, fma(set(-3.0f), x3, fma(set(-4.0f), x2,                         \
                   fma(set(3.0f), x1, fma(set(2.0f), x0, set(0.0f))))));                          \
        v[1] = fma(set(-2.0f), x4, fma(set(1.0f), x3, fma(set(5.0f), x2, fma(set(2.0f), x1, set(0.0f))))); \
        v[2] = fma(set(2.0f), x4, fma(set(-5.0f), x3, fma(set(1.0f), x2, fma(set(2.0f), x1, set(0.0f))))); \
        v[3] = fma(set(2.0f), x4, fma(set(1.0f), x3, fma(set(-2.0f), x2, fma(set(-1.0f), x1, set(0.0f))))); \
        v[4] = fma(set(-1.0f), x4, fma(set(2.0f), x3, fma(set(1.0f), x2, fma(set(-2.0f), x1, set(0.0f))))); \
        v[5] = fma(set(2.0f), x5, fma(set(-3.0f), x4, fma(set(-4.0f), x3,                         \
                   fma(set(3.0f), x2, fma(set(2.0f), x1, set(0.0f))))));                          \
    } while (0)

/* The transformed S2 rows: v[((c * 5 + ti) * 6 + l) * 16 + col] for the 14 columns (lanes 14 and
   15 read past the row: unused). s2: the six 14x14 maps, followed by at least 2 readable floats. */
static inline void l5_c3w_input(float *v, const float *s2) {
    for (int c = 0; c < 6; c++)
        for (int ti = 0; ti < 5; ti++) {
            const float *x = s2 + c * 196 + 2 * ti * 14;
            float *out = v + (c * 5 + ti) * 6 * 16;
            for (int h = 0; h < 16; h += L5_LANES) {
                l5_vw t[6];
                L5_C3W_BT(t, l5_loadw(x + h), l5_loadw(x + 14 + h), l5_loadw(x + 28 + h), l5_loadw(x + 42 + h),
                          l5_loadw(x + 56 + h), l5_loadw(x + 70 + h), l5_setw, l5_fmaw);
                for (int l = 0; l < 6; l++) l5_storew(out + l * 16 + h, t[l]);
            }
        }
}

/* m[q * 16 + o], q the ten positions of a row: transformed row l of the pair ti, all 16 maps:
   sum over input map c and kernel column kx of u[((c * 6 + l) * 5 + kx) * 16 + o] times
   v's row (c, ti, l) at column q + kx, in that order. The positions' sums stay in registers
   over the 30 taps (ten 16-lane vectors at v4, five positions x two halves below), each weight
   vector loaded serving all of them. */
static inline void l5_c3w_row(float *m, const float *v, const float *u, int ti, int l) {
#ifdef L5_WIDE
    l5_v16 acc[10];
    for (int q = 0; q < 10; q++) acc[q] = l5_set1_16(0.0f);
    for (int c = 0; c < 6; c++) {
        const float *r = v + ((c * 5 + ti) * 6 + l) * 16;
        const float *w = u + (c * 6 + l) * 5 * 16;
        for (int kx = 0; kx < 5; kx++) {
            l5_v16 wv = l5_load16(w + kx * 16);
            for (int q = 0; q < 10; q++) acc[q] = l5_fma16(l5_set1_16(r[kx + q]), wv, acc[q]);
        }
    }
    for (int q = 0; q < 10; q++) l5_store16(m + q * 16, acc[q]);
#else
    for (int q0 = 0; q0 < 10; q0 += 5) {
        l5_v8 lo[5], hi[5];
        for (int q = 0; q < 5; q++) lo[q] = hi[q] = l5_set1(0.0f);
        for (int c = 0; c < 6; c++) {
            const float *r = v + ((c * 5 + ti) * 6 + l) * 16 + q0;
            const float *w = u + (c * 6 + l) * 5 * 16;
            for (int kx = 0; kx < 5; kx++) {
                l5_v8 wl = l5_load(w + kx * 16), wh = l5_load(w + kx * 16 + 8);
                for (int q = 0; q < 5; q++) {
                    l5_v8 in = l5_set1(r[kx + q]);
                    lo[q] = l5_fma(in, wl, lo[q]);
                    hi[q] = l5_fma(in, wh, hi[q]);
                }
            }
        }
        for (int q = 0; q < 5; q++) {
            l5_store(m + (q0 + q) * 16, lo[q]);
            l5_store(m + (q0 + q) * 16 + 8, hi[q]);
        }
    }
#endif
}

/* All of C3 (before squashing), channels-last: c3[(i * 10 + j) * 16 + o]. u: the weights as
   l5_c3w_weights transforms them; b: the 16 biases; work: 6 x 5 x 6 x 16 + 6 x 160 floats. Each
   output is AT's row applied to the six transformed rows in order, then the bias added. */
static inline void l5_c3(float *c3, const float *s2, const float *u, const float *b, float *work) {
    float *v = work, *m = work + 6 * 5 * 6 * 16;
    l5_c3w_input(v, s2);
    for (int ti = 0; ti < 5; ti++) {
        for (int l = 0; l < 6; l++) l5_c3w_row(m + l * 160, v, u, ti, l);
        for (int q = 0; q < 10; q++)
            for (int h = 0; h < 16; h += L5_LANES) {
                const float *mq = m + q * 16 + h;
                l5_vw m0 = l5_loadw(mq), m1 = l5_loadw(mq + 160), m2 = l5_loadw(mq + 320);
                l5_vw m3 = l5_loadw(mq + 480), m4 = l5_loadw(mq + 640), m5 = l5_loadw(mq + 800);
                l5_vw one = l5_setw(1.0f), bias = l5_loadw(b + h);
                l5_vw y0 = l5_fmaw(one, bias, l5_fmaw(one, m4, l5_fmaw(one, m3, l5_fmaw(one, m2, l5_fmaw(one, m1, m0)))));
                l5_vw y1 = l5_fmaw(one, bias, l5_fmaw(one, m5, l5_fmaw(l5_setw(-0.5f), m4,
                                   l5_fmaw(l5_setw(2.0f), m3, l5_fmaw(l5_setw(-1.0f), m2, m1)))));
                l5_storew(c3 + ((2 * ti) * 10 + q) * 16 + h, y0);
                l5_storew(c3 + ((2 * ti + 1) * 10 + q) * 16 + h, y1);
            }
    }
}

/* G, the weights' side of the transform: u[((c * 6 + l) * 5 + kx) * 16 + o] = sum_ky G[l][ky] *
   w[ky][kx] of the kernel joining input map c to output map o (in double, rounded once). */
static const double l5_c3w_g[6][5] = {
    {1.0 / 2, 0, 0, 0, 0},
    {1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6},
    {1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6},
    {1.0 / 30, 1.0 / 15, 2.0 / 15, 4.0 / 15, 8.0 / 15},
    {16.0 / 15, -8.0 / 15, 4.0 / 15, -2.0 / 15, 1.0 / 15},
    {0, 0, 0, 0, 1.0 / 2},
};

/* u (6 x 6 x 5 x 16) from w_sum[(c * 16 + o) * 25 + ky * 5 + kx], the kernel joining input
   map c to output map o (zeros where the table joins none; the sum where it lists a pair twice). */
static void l5_c3w_weights(float *u, const double *w_sum) {
    for (int c = 0; c < 6; c++)
        for (int l = 0; l < 6; l++)
            for (int kx = 0; kx < 5; kx++)
                for (int o = 0; o < 16; o++) {
                    const double *k = w_sum + (c * 16 + o) * 25;
                    double t = 0.0;
                    for (int ky = 0; ky < 5; ky++) t += l5_c3w_g[l][ky] * k[ky * 5 + kx];
                    u[((c * 6 + l) * 5 + kx) * 16 + o] = (float)t;
                }
}

/* A full layer for nd digits: y[d * n_out + u] = b[u] + sum_i w[u * n_in + i] * x[d * n_in + i]
   (n_in a multiple of 8, n_out of ub; ub, nd <= 4). ub units x nd digits accumulate in
   registers, so each weight vector loaded serves nd digits and each input vector ub units. */
L5_ALWAYS_INLINE void l5_dense(float *y, const float *w, const float *b, const float *x,
                               int n_in, int n_out, const int ub, const int nd) {
    for (int u = 0; u < n_out; u += ub) {
        l5_v8 a[4][4];
        for (int k = 0; k < ub; k++)
            for (int d = 0; d < nd; d++) a[k][d] = l5_set1(0.0f);
        for (int i = 0; i < n_in; i += 8) {
            for (int d = 0; d < nd; d++) {
                l5_v8 in = l5_load(x + d * n_in + i);
                for (int k = 0; k < ub; k++) a[k][d] = l5_fma(l5_load(w + (u + k) * n_in + i), in, a[k][d]);
            }
        }
        if (ub * nd % 8 == 0) {
            /* Eight sums reduced at once (the same additions as l5_hsum's). */
            l5_v8 v[16];
            float s[16];
            for (int k = 0; k < ub; k++)
                for (int d = 0; d < nd; d++) v[k * nd + d] = a[k][d];
            for (int j = 0; j < ub * nd; j += 8) l5_hsum8(v + j, s + j);
            for (int k = 0; k < ub; k++)
                for (int d = 0; d < nd; d++) y[d * n_out + u + k] = s[k * nd + d] + b[u + k];
        } else {
            for (int k = 0; k < ub; k++)
                for (int d = 0; d < nd; d++) y[d * n_out + u + k] = l5_hsum(a[k][d]) + b[u + k];
        }
    }
}
#ifdef L5_WIDE
/* l5_dense (n_in a multiple of 8, n_out of 4) for 4 digits and ub units (4 or 8) at a time in
   16 lanes: each register holds two digits' sums of one unit (lanes 0-7 digit 2 p, lanes 8-15
   digit 2 p + 1), the unit's 8 weights loaded into both halves. Half the multiply-adds of 8
   lanes, and each lane's the same: the same bits. */
L5_ALWAYS_INLINE void l5_dense4_units(float *y, const float *w, const float *b, const float *x, int n_in,
                                      int n_out, int u, const int ub) {
    __m512 a[8][2];
    for (int k = 0; k < ub; k++) a[k][0] = a[k][1] = _mm512_setzero_ps();
    for (int i = 0; i < n_in; i += 8) {
        __m512 in[2];
        for (int p = 0; p < 2; p++)
            in[p] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(x + 2 * p * n_in + i)),
                                       _mm256_loadu_ps(x + (2 * p + 1) * n_in + i), 1);
        for (int k = 0; k < ub; k++) {
            __m512 wk = _mm512_broadcast_f32x8(_mm256_loadu_ps(w + (u + k) * n_in + i));
            a[k][0] = _mm512_fmadd_ps(wk, in[0], a[k][0]);
            a[k][1] = _mm512_fmadd_ps(wk, in[1], a[k][1]);
        }
    }
    /* Unit k, digit d's sum at v[k * 4 + d], as l5_dense orders them. */
    l5_v8 v[32];
    float s[32];
    for (int k = 0; k < ub; k++)
        for (int p = 0; p < 2; p++) {
            v[k * 4 + 2 * p] = (l5_v8)_mm512_castps512_ps256(a[k][p]);
            v[k * 4 + 2 * p + 1] = (l5_v8)_mm512_extractf32x8_ps(a[k][p], 1);
        }
    for (int j = 0; j < 4 * ub; j += 8) l5_hsum8(v + j, s + j);
    for (int k = 0; k < ub; k++)
        for (int d = 0; d < 4; d++) y[d * n_out + u + k] = s[k * 4 + d] + b[u + k];
}
static void l5_dense4_wide(float *y, const float *w, const float *b, const float *x, int n_in, int n_out) {
    int u = 0;
    for (; u + 8 <= n_out; u += 8) l5_dense4_units(y, w, b, x, n_in, n_out, u, 8);
    for (; u < n_out; u += 4) l5_dense4_units(y, w, b, x, n_in, n_out, u, 4);
}

/* l5_dense for one digit and ub units (4, 8 or 16) at a time in 16 lanes: a register holds units
   u + 2 j (lanes 0-7) and u + 2 j + 1 (lanes 8-15), the digit's 8 inputs loaded into both halves.
   ub / 2 chains of multiply-adds where 8 lanes had ub / 2 of half the work each; each lane's
   the same: the same bits. */
L5_ALWAYS_INLINE void l5_dense1_units(float *y, const float *w, const float *b, const float *x, int n_in, int u,
                                      const int ub) {
    __m512 a[8];
    for (int j = 0; j < ub / 2; j++) a[j] = _mm512_setzero_ps();
    for (int i = 0; i < n_in; i += 8) {
        __m512 in = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + i));
        for (int j = 0; j < ub / 2; j++) {
            const float *wj = w + (u + 2 * j) * n_in + i;
            __m512 pair = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(wj)), _mm256_loadu_ps(wj + n_in), 1);
            a[j] = _mm512_fmadd_ps(pair, in, a[j]);
        }
    }
    l5_v8 v[16];
    float s[16];
    for (int j = 0; j < ub / 2; j++) {
        v[2 * j] = (l5_v8)_mm512_castps512_ps256(a[j]);
        v[2 * j + 1] = (l5_v8)_mm512_extractf32x8_ps(a[j], 1);
    }
    if (ub >= 8) {
        for (int k = 0; k < ub; k += 8) l5_hsum8(v + k, s + k);
    } else {
        for (int k = 0; k < ub; k++) s[k] = l5_hsum(v[k]);
    }
    for (int k = 0; k < ub; k++) y[u + k] = s[k] + b[u + k];
}
static void l5_dense1_wide(float *y, const float *w, const float *b, const float *x, int n_in, int n_out) {
    int u = 0;
    for (; u + 16 <= n_out; u += 16) l5_dense1_units(y, w, b, x, n_in, u, 16);
    for (; u + 8 <= n_out; u += 8) l5_dense1_units(y, w, b, x, n_in, u, 8);
    for (; u < n_out; u += 4) l5_dense1_units(y, w, b, x, n_in, u, 4);
}
#endif

/* Four digits at once, or one. Below v4, four digits x 2 units of sums in registers (eight
   chains of multiply-adds only just cover the latency of each), or one digit x 4 units; at v4
   the 16-lane forms above. Each sum is the same at every width. */
static void l5_dense4(float *y, const float *w, const float *b, const float *x, int n_in, int n_out) {
#ifdef L5_WIDE
    l5_dense4_wide(y, w, b, x, n_in, n_out);
#else
    l5_dense(y, w, b, x, n_in, n_out, 2, 4);
#endif
}
static void l5_dense1(float *y, const float *w, const float *b, const float *x, int n_in, int n_out) {
#ifdef L5_WIDE
    l5_dense1_wide(y, w, b, x, n_in, n_out);
#else
    l5_dense(y, w, b, x, n_in, n_out, 4, 1);
#endif
}

/* v[0 .. n) squashed in place. Kept out of the convolutions' loops: the constants it needs
   would take registers their accumulators use. */
static void l5_squash_n(float *v, int n, const l5_squash_t *squash) {
    /* A local copy: stores into v cannot alias it, so its constants stay in registers. */
    const l5_squash_t local = *squash, *sq = &local;
    int i = 0;
    /* Four vectors per step: each squash is a long chain of dependent operations (the
       two polynomials, then the division), and four independent chains side by side
       keep the FMA units busy where one would leave them waiting. */
#ifdef L5_WIDE
    for (; i + 64 <= n; i += 64) {
        l5_v16 a = l5_load16(v + i), b = l5_load16(v + i + 16), c = l5_load16(v + i + 32), d = l5_load16(v + i + 48);
        l5_store16(v + i, l5_squash16(a, sq));
        l5_store16(v + i + 16, l5_squash16(b, sq));
        l5_store16(v + i + 32, l5_squash16(c, sq));
        l5_store16(v + i + 48, l5_squash16(d, sq));
    }
#endif
    for (; i + 32 <= n; i += 32) {
        l5_v8 a = l5_load(v + i), b = l5_load(v + i + 8), c = l5_load(v + i + 16), d = l5_load(v + i + 24);
        l5_store(v + i, l5_squash(a, sq));
        l5_store(v + i + 8, l5_squash(b, sq));
        l5_store(v + i + 16, l5_squash(c, sq));
        l5_store(v + i + 24, l5_squash(d, sq));
    }
    for (; i + 8 <= n; i += 8) l5_store(v + i, l5_squash(l5_load(v + i), sq));
    if (i < n) {
        float tail[8] = {0};
        memcpy(tail, v + i, (n - i) * sizeof(float));
        l5_store(tail, l5_squash(l5_load(tail), sq));
        memcpy(v + i, tail, (n - i) * sizeof(float));
    }
}

/* S2: s2[m * 196 + i * 14 + j] = coef[m] * (2x2 block sum of C1 map m) + bias[m], each block summed
   as (left + right of its upper row) + (left + right of its lower row). At v4 a row of 14 at once:
   the 28 columns' even and odd ones picked by vpermt2ps; the same operations, lane by lane. */
static inline void l5_s2(float *s2, const float *c1, const float *coef, const float *bias) {
#ifdef L5_WIDE
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __mmask16 tail = 0x0FFF, row = 0x3FFF;  /* columns 16 .. 27; the 14 outputs */
    for (int m = 0; m < 6; m++) {
        l5_v16 cf = l5_set1_16(coef[m]), bs = l5_set1_16(bias[m]);
        for (int i = 0; i < 14; i++) {
            const float *up = c1 + m * 784 + 2 * i * 28, *down = up + 28;
            __m512 u0 = _mm512_loadu_ps(up), u1 = _mm512_maskz_loadu_ps(tail, up + 16);
            __m512 d0 = _mm512_loadu_ps(down), d1 = _mm512_maskz_loadu_ps(tail, down + 16);
            l5_v16 h_up =
                (l5_v16)_mm512_permutex2var_ps(u0, even, u1) + (l5_v16)_mm512_permutex2var_ps(u0, odd, u1);
            l5_v16 h_down =
                (l5_v16)_mm512_permutex2var_ps(d0, even, d1) + (l5_v16)_mm512_permutex2var_ps(d0, odd, d1);
            l5_maskstore16(s2 + m * 196 + i * 14, row, l5_fma16(cf, h_up + h_down, bs));
        }
    }
#else
    for (int m = 0; m < 6; m++)
        for (int i = 0; i < 14; i++) {
            const float *up = c1 + m * 784 + 2 * i * 28, *down = up + 28;
            for (int j = 0; j < 14; j++)
                s2[m * 196 + i * 14 + j] =
                    coef[m] * ((up[2 * j] + up[2 * j + 1]) + (down[2 * j] + down[2 * j + 1])) + bias[m];
        }
#endif
}

/* S4 from channels-last C3 (c3[(i * 10 + j) * 16 + o]), written channels-first for C5:
   s4[o * 25 + i * 5 + j] = coef[o] * (2x2 block sum) + bias[o], squashed if `squash`. */
static inline void l5_s4(float *s4, const float *c3, const float *coef, const float *bias,
                         int squash, const l5_squash_t *sq) {
#ifdef L5_WIDE
    /* All 16 maps in one vector. */
    float wide[16];
    l5_v16 cf16 = l5_load16(coef), bs16 = l5_load16(bias);
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 5; j++) {
            const float *p = c3 + (2 * i * 10 + 2 * j) * 16;
            l5_v16 s = (l5_load16(p) + l5_load16(p + 16)) + (l5_load16(p + 160) + l5_load16(p + 176));
            l5_v16 v = l5_fma16(cf16, s, bs16);
            if (squash) v = l5_squash16(v, sq);
            l5_store16(wide, v);
            for (int o = 0; o < 16; o++) s4[o * 25 + i * 5 + j] = wide[o];
        }
    }
#else
    float lanes[8];
    for (int h = 0; h < 16; h += 8) {
        l5_v8 cf = l5_load(coef + h), bs = l5_load(bias + h);
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 5; j++) {
                const float *p = c3 + (2 * i * 10 + 2 * j) * 16 + h;
                l5_v8 s = l5_add(l5_add(l5_load(p), l5_load(p + 16)),
                                 l5_add(l5_load(p + 160), l5_load(p + 176)));
                l5_v8 v = l5_fma(cf, s, bs);
                if (squash) v = l5_squash(v, sq);
                l5_store(lanes, v);
                for (int o = 0; o < 8; o++) s4[(h + o) * 25 + i * 5 + j] = lanes[o];
            }
        }
    }
#endif
}

#endif /* L5_LENET5_H */
