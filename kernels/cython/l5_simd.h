/* 8-float vectors for the hand-blocked C loops of the convolutions, the full layers and the fused
   pass (l5_conv.h, l5_linear.h, l5_lenet5.h include it).

   With GCC or Clang, l5_v8 is a vector extension type: one AVX register (two SSE ones at the
   baseline level), and the compiler keeps arrays of them in registers, which it will not do for
   plain float arrays in a loop. Other compilers get a struct of 8 floats and the same operations
   lane by lane. */
#ifndef L5_SIMD_H
#define L5_SIMD_H
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

/* L5_SCALAR (a -D flag) selects the plain-C fallback on any compiler: how it is tested. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(L5_SCALAR)
#define L5_VECTOR_EXTENSIONS 1
typedef float l5_v8 __attribute__((vector_size(32)));
typedef int l5_m8 __attribute__((vector_size(32)));

static inline l5_v8 l5_set1(float a) { l5_v8 v = {a, a, a, a, a, a, a, a}; return v; }
static inline l5_v8 l5_load(const float *p) { l5_v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void l5_store(float *p, l5_v8 v) { memcpy(p, &v, sizeof v); }
static inline l5_v8 l5_fma(l5_v8 a, l5_v8 b, l5_v8 c) { return a * b + c; }
static inline l5_v8 l5_add(l5_v8 a, l5_v8 b) { return a + b; }
#else
/* Compilers without vector extensions: the same operations, one lane at a time. */
typedef struct { float f[8]; } l5_v8;
static l5_v8 l5_set1(float a) { l5_v8 v; for (int i = 0; i < 8; i++) v.f[i] = a; return v; }
static l5_v8 l5_load(const float *p) { l5_v8 v; memcpy(v.f, p, sizeof v.f); return v; }
static void l5_store(float *p, l5_v8 v) { memcpy(p, v.f, sizeof v.f); }
static l5_v8 l5_fma(l5_v8 a, l5_v8 b, l5_v8 c) {
    for (int i = 0; i < 8; i++) c.f[i] += a.f[i] * b.f[i];
    return c;
}
static l5_v8 l5_add(l5_v8 a, l5_v8 b) {
    for (int i = 0; i < 8; i++) a.f[i] += b.f[i];
    return a;
}
#endif

static inline float l5_hsum(l5_v8 v) {
    float f[8];
    l5_store(f, v);
    return ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
}

/* out[j] = l5_hsum(v[j]) for j < 8, the same additions in the same order. With AVX, eight
   sums come out of one transposing tree of horizontal adds (hadd adds neighbouring lanes, as
   l5_hsum's first two levels do; the halves are added last) instead of eight trips through
   memory. */
static inline void l5_hsum8(const l5_v8 v[8], float out[8]) {
#if defined(L5_VECTOR_EXTENSIONS) && defined(__AVX__)
    __m256 h01 = _mm256_hadd_ps((__m256)v[0], (__m256)v[1]);
    __m256 h23 = _mm256_hadd_ps((__m256)v[2], (__m256)v[3]);
    __m256 h45 = _mm256_hadd_ps((__m256)v[4], (__m256)v[5]);
    __m256 h67 = _mm256_hadd_ps((__m256)v[6], (__m256)v[7]);
    /* lanes 0-3: the four vectors' sums of lanes 0-3; lanes 4-7: of lanes 4-7. */
    __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
    __m256 low = _mm256_permute2f128_ps(q0, q1, 0x20), high = _mm256_permute2f128_ps(q0, q1, 0x31);
    _mm256_storeu_ps(out, _mm256_add_ps(low, high));
#else
    for (int j = 0; j < 8; j++) out[j] = l5_hsum(v[j]);
#endif
}

/* 16-float vectors, one AVX-512 register, for the loops written at both widths (the fused pass's
   convolutions, squashing and S4): at the v4 level each instruction does twice the work. Each
   lane computes what it computes at 8 lanes, in the same order, so both widths give the same
   bits. */
#if defined(L5_VECTOR_EXTENSIONS) && defined(__AVX512F__)
#define L5_WIDE 1
typedef float l5_v16 __attribute__((vector_size(64)));
static inline l5_v16 l5_set1_16(float a) { return (l5_v16)_mm512_set1_ps(a); }
static inline l5_v16 l5_load16(const float *p) { l5_v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void l5_store16(float *p, l5_v16 v) { memcpy(p, &v, sizeof v); }
static inline l5_v16 l5_fma16(l5_v16 a, l5_v16 b, l5_v16 c) { return a * b + c; }
/* The first n lanes (none for n <= 0, all for n >= 16): AVX-512's masks do a row's odd end in
   the same loop as the rest. A masked load reads nothing in its masked-off lanes, so it cannot
   fault past the end of an array. */
static inline __mmask16 l5_first16(long n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
static inline l5_v16 l5_maskload16(const float *p, __mmask16 m) { return (l5_v16)_mm512_maskz_loadu_ps(m, p); }
static inline void l5_maskstore16(float *p, __mmask16 m, l5_v16 v) { _mm512_mask_storeu_ps(p, m, (__m512)v); }
#endif

/* The widest vector of the level: l5_vw, L5_LANES floats (16 at v4, 8 below), for loops
   written once for either width. */
#ifdef L5_WIDE
#define L5_LANES 16
typedef l5_v16 l5_vw;
#define l5_setw l5_set1_16
#define l5_loadw l5_load16
#define l5_storew l5_store16
#define l5_fmaw l5_fma16
#else
#define L5_LANES 8
typedef l5_v8 l5_vw;
#define l5_setw l5_set1
#define l5_loadw l5_load
#define l5_storew l5_store
#define l5_fmaw l5_fma
#endif

#if defined(__GNUC__) || defined(__clang__)
#define L5_ALWAYS_INLINE static inline __attribute__((always_inline))
#define L5_ALIGN64 __attribute__((aligned(64)))
#else
#define L5_ALWAYS_INLINE static inline
#define L5_ALIGN64
#endif

#endif /* L5_SIMD_H */
