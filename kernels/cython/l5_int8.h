/* The int8 forward pass's portable loops (lenet5_int8.pyx binds them): integer sums of int16
   pairs. The pass at the baseline level, and the output layer's sums at every level; where the CPU
   has AVX512-VNNI the pass is l5_int8_vnni.h's, else at the v3 and v4 levels l5_int8_avx2.h's (these
   loops then run only when tests turn those off).

   Every stage is one shape of loop, l8_gemm: for positions p (input at x + p * stride), the sums
   acc[p][o] = bias[o] + sum over pairs k of w[k][o][0] * x_p[off[k]] + w[k][o][1] * x_p[off[k] + 1]
   over `lanes` outputs, the outputs in the vector lanes, 4 positions or 4 blocks of lanes at once. The activations are int16 (-127..127,
   pixels 0..255) and the weights int16 (-127..127), so each product and each pair's sum is exact
   in int32, and so is every sum: the order of the additions cannot change the result.
   - AVX-512BW (v4): 16 outputs per register, vpmaddwd and vpaddd.
   - AVX2 (v3, and v4 where the outputs are a multiple of 8 only): 8 outputs per register.
   - Elsewhere: plain C.
   The squashing (l8_squash) is the reference's: the index rint(float32(acc) * m), clamped, into
   the table; the float product is IEEE (no fast-math in this build), rounded half to even. */
#ifndef L5_INT8_H
#define L5_INT8_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

static int l8_use_vnni = 0;  /* set at import where the CPU has AVX512-VNNI: l5_int8_vnni.h's pass */
static int l8_use_vbmi = 0;  /* and where it has AVX512-VBMI and BITALG: that pass's vpermi2b tables */

static inline int32_t l8_pair(const int16_t *x) { int32_t v; memcpy(&v, x, 4); return v; }

/* One pass: 4 sums in 4 registers over all the pairs, from lane o on, named one by one (an array
   of them is kept in memory by gcc, and each step then waits on a store). 4x1: positions p to
   p + 3 (input at x + p * stride), one block of W lanes; 1xB: one position, B blocks (B <= 4). */
#define L8_PASS_4x1(NAME, ATTR, VEC, W, LOAD, SET1, MADD, STORE)                                      \
static inline ATTR void NAME(int32_t *acc, const int16_t *x, int stride, const int *off, int n_pairs, \
                             const int16_t *w, const int32_t *bias, int lanes, int o) {              \
    VEC a0 = LOAD(bias + o), a1 = a0, a2 = a0, a3 = a0;                                              \
    for (int k = 0; k < n_pairs; k++) {                                                              \
        VEC wv = LOAD(w + ((size_t)k * lanes + o) * 2);                                              \
        const int16_t *xk = x + off[k];                                                              \
        a0 = MADD(a0, SET1(l8_pair(xk)), wv);                                                        \
        a1 = MADD(a1, SET1(l8_pair(xk + stride)), wv);                                               \
        a2 = MADD(a2, SET1(l8_pair(xk + 2 * stride)), wv);                                           \
        a3 = MADD(a3, SET1(l8_pair(xk + 3 * stride)), wv);                                           \
    }                                                                                                \
    STORE(acc + o, a0);                                                                              \
    STORE(acc + (size_t)lanes + o, a1);                                                              \
    STORE(acc + (size_t)2 * lanes + o, a2);                                                          \
    STORE(acc + (size_t)3 * lanes + o, a3);                                                          \
}
#define L8_PASS_1xB(NAME, ATTR, VEC, W, LOAD, SET1, MADD, STORE, B)                                    \
static inline ATTR void NAME(int32_t *acc, const int16_t *x, int stride, const int *off, int n_pairs, \
                             const int16_t *w, const int32_t *bias, int lanes, int o) {              \
    (void)stride;                                                                                    \
    VEC a0 = LOAD(bias + o), a1 = a0, a2 = a0, a3 = a0;                                              \
    if (B > 1) a1 = LOAD(bias + o + W);                                                              \
    if (B > 2) { a2 = LOAD(bias + o + 2 * W); a3 = LOAD(bias + o + 3 * W); }                         \
    for (int k = 0; k < n_pairs; k++) {                                                              \
        const int16_t *wk = w + ((size_t)k * lanes + o) * 2;                                         \
        VEC v = SET1(l8_pair(x + off[k]));                                                           \
        a0 = MADD(a0, v, LOAD(wk));                                                                  \
        if (B > 1) a1 = MADD(a1, v, LOAD(wk + 2 * W));                                               \
        if (B > 2) { a2 = MADD(a2, v, LOAD(wk + 4 * W)); a3 = MADD(a3, v, LOAD(wk + 6 * W)); }       \
    }                                                                                                \
    STORE(acc + o, a0);                                                                              \
    if (B > 1) STORE(acc + o + W, a1);                                                               \
    if (B > 2) { STORE(acc + o + 2 * W, a2); STORE(acc + o + 3 * W, a3); }                           \
}

/* acc (n_pos, lanes) over passes: 4 positions x 1 block while there are 4 positions, then one
   position at a time x 4, 2 or 1 blocks (the full layers: one position, many lanes). */
#define L8_GEMM(NAME, ATTR, W, PASS)                                                                  \
static ATTR void NAME(int32_t *acc, const int16_t *x, int stride, int n_pos, const int *off,          \
                      int n_pairs, const int16_t *w, const int32_t *bias, int lanes) {                \
    int p = 0;                                                                                       \
    for (; p + 4 <= n_pos; p += 4)                                                                   \
        for (int o = 0; o < lanes; o += W)                                                           \
            PASS##_4x1(acc + (size_t)p * lanes, x + (size_t)p * stride, stride, off, n_pairs, w, bias, lanes, o); \
    for (; p < n_pos; p++) {                                                                         \
        int32_t *ap = acc + (size_t)p * lanes;                                                       \
        const int16_t *xp = x + (size_t)p * stride;                                                  \
        int o = 0;                                                                                   \
        for (; o + 4 * W <= lanes; o += 4 * W) PASS##_1x4(ap, xp, stride, off, n_pairs, w, bias, lanes, o); \
        for (; o + 2 * W <= lanes; o += 2 * W) PASS##_1x2(ap, xp, stride, off, n_pairs, w, bias, lanes, o); \
        for (; o < lanes; o += W) PASS##_1x1(ap, xp, stride, off, n_pairs, w, bias, lanes, o);       \
    }                                                                                                \
}

#define L8_PASSES(PREFIX, ATTR, VEC, W, LOAD, SET1, MADD, STORE)         \
    L8_PASS_4x1(PREFIX##_4x1, ATTR, VEC, W, LOAD, SET1, MADD, STORE)      \
    L8_PASS_1xB(PREFIX##_1x4, ATTR, VEC, W, LOAD, SET1, MADD, STORE, 4)   \
    L8_PASS_1xB(PREFIX##_1x2, ATTR, VEC, W, LOAD, SET1, MADD, STORE, 2)   \
    L8_PASS_1xB(PREFIX##_1x1, ATTR, VEC, W, LOAD, SET1, MADD, STORE, 1)

/* Plain C, lane by lane: a + the pair's two products (the weights' pair read as one int32). */
static inline int32_t l8_madd_c(int32_t a, int32_t pair, int32_t w2) {
    int16_t x[2], w[2];
    memcpy(x, &pair, 4);
    memcpy(w, &w2, 4);
    return a + x[0] * w[0] + x[1] * w[1];
}
static inline void l8_gemm_c(int32_t *acc, const int16_t *x, int stride, int n_pos, const int *off,
                             int n_pairs, const int16_t *w, const int32_t *bias, int lanes) {
    for (int p = 0; p < n_pos; p++)
        for (int o = 0; o < lanes; o++) {
            int32_t a = bias[o];
            for (int k = 0; k < n_pairs; k++)
                a = l8_madd_c(a, l8_pair(x + (size_t)p * stride + off[k]), l8_pair(w + ((size_t)k * lanes + o) * 2));
            acc[(size_t)p * lanes + o] = a;
        }
}

#if defined(__AVX2__)
#define L8_LOAD_Y(p) _mm256_loadu_si256((const __m256i *)(p))
#define L8_STORE_Y(p, v) _mm256_storeu_si256((__m256i *)(p), (v))
#define L8_MADD_Y(a, v, w) _mm256_add_epi32((a), _mm256_madd_epi16((v), (w)))
L8_PASSES(l8_ymm, , __m256i, 8, L8_LOAD_Y, _mm256_set1_epi32, L8_MADD_Y, L8_STORE_Y)
L8_GEMM(l8_gemm_ymm, , 8, l8_ymm)
#endif

#if defined(__AVX512BW__)
#define L8_LOAD_Z(p) _mm512_loadu_si512((const void *)(p))
#define L8_STORE_Z(p, v) _mm512_storeu_si512((void *)(p), (v))
#define L8_MADD_Z(a, v, w) _mm512_add_epi32((a), _mm512_madd_epi16((v), (w)))
L8_PASSES(l8_zmm, , __m512i, 16, L8_LOAD_Z, _mm512_set1_epi32, L8_MADD_Z, L8_STORE_Z)
L8_GEMM(l8_gemm_zmm, , 16, l8_zmm)
#endif

/* acc (n_pos, lanes) int32 = bias + the pair sums of the positions x + p * stride. */
static void l8_gemm(int32_t *acc, const int16_t *x, int stride, int n_pos, const int *off, int n_pairs,
                    const int16_t *w, const int32_t *bias, int lanes) {
#if defined(__AVX512BW__)
    if (lanes % 16 == 0) { l8_gemm_zmm(acc, x, stride, n_pos, off, n_pairs, w, bias, lanes); return; }
#endif
#if defined(__AVX2__)
    if (lanes % 8 == 0) { l8_gemm_ymm(acc, x, stride, n_pos, off, n_pairs, w, bias, lanes); return; }
#endif
    l8_gemm_c(acc, x, stride, n_pos, off, n_pairs, w, bias, lanes);
}

/* dst[o] = lut[clip(rint(float32(acc[o]) * m[o]), -half, half) + half], o < n. Clipping the
   product before rounding gives the same index (half is a whole number) and keeps the conversion
   in range; the vector conversion rounds as rintf does, to nearest even. The vector forms read
   the table with gathers of 4 bytes from 2-byte steps: the table has one entry of slack at its
   end (lenet5_int8.pyx allocates it). */
static inline int16_t l8_squash1(int32_t acc, float m, const int16_t *lut, int half) {
    float z = (float)acc * m;
    z = z > (float)half ? (float)half : (z < (float)-half ? (float)-half : z);
    return lut[(int)rintf(z) + half];
}

static inline void l8_squash(int16_t *dst, const int32_t *acc, const float *m, const int16_t *lut,
                             int half, int n) {
    int o = 0;
#if defined(__AVX512BW__)
    __m512 hi16 = _mm512_set1_ps((float)half), lo16 = _mm512_set1_ps((float)-half);
    __m512i shift16 = _mm512_set1_epi32(half);
    for (; o + 16 <= n; o += 16) {
        __m512 z = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(acc + o)), _mm512_loadu_ps(m + o));
        z = _mm512_min_ps(_mm512_max_ps(z, lo16), hi16);
        __m512i idx = _mm512_add_epi32(_mm512_cvtps_epi32(z), shift16);
        __m512i got = _mm512_i32gather_epi32(idx, (const void *)lut, 2);
        _mm256_storeu_si256((__m256i *)(dst + o), _mm512_cvtepi32_epi16(got));  /* the low halves */
    }
#endif
#if defined(__AVX2__)
    __m256 hi8 = _mm256_set1_ps((float)half), lo8 = _mm256_set1_ps((float)-half);
    __m256i shift8 = _mm256_set1_epi32(half);
    for (; o + 8 <= n; o += 8) {
        __m256 z = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(acc + o))),
                                 _mm256_loadu_ps(m + o));
        z = _mm256_min_ps(_mm256_max_ps(z, lo8), hi8);
        __m256i idx = _mm256_add_epi32(_mm256_cvtps_epi32(z), shift8);
        __m256i got = _mm256_i32gather_epi32((const int *)lut, idx, 2);
        /* Each lane's low 16 bits, sign-extended, then packed to 8 int16. */
        got = _mm256_srai_epi32(_mm256_slli_epi32(got, 16), 16);
        __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(got), _mm256_extracti128_si256(got, 1));
        _mm_storeu_si128((__m128i *)(dst + o), packed);
    }
#endif
    for (; o < n; o++) dst[o] = l8_squash1(acc[o], m[o], lut, half);
}

/* Channels-last 2x2 pooling: src (2 side, 2 side, ch_stride) -> dst (side, side, ch_stride), the
   first `maps` channels through their tables lut[c][sum + 508]; the others stay as they are. */
static inline void l8_pool(int16_t *dst, const int16_t *src, int side, int ch_stride, int maps,
                           const int16_t *lut, int lut_len) {
    int row = 2 * side * ch_stride;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            const int16_t *s = src + (size_t)(2 * y) * row + (size_t)(2 * x) * ch_stride;
            int16_t *d = dst + ((size_t)y * side + x) * ch_stride;
            for (int c = 0; c < maps; c++) {
                int t = s[c] + s[c + ch_stride] + s[c + row] + s[c + row + ch_stride];
                d[c] = lut[(size_t)c * lut_len + t + 508];
            }
        }
}

#endif
