/* The int8 pass on AVX-VNNI (lenet5_int8.pyx runs it at the v3 and v4 levels where the CPU has
   AVX-VNNI but not AVX512-VNNI: Alder Lake and later): l5_int8_vnni.h's byte pass on 8 lanes.
   vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32 lane,
   32 multiply-adds an instruction, exact: twice what vpmaddwd or vpdpwssd do on int16 pairs.

   Its weights, biases and layouts are the VNNI pass's (l8v_net_t: activations stored as value +
   128, each stage's bias less 128 * the sum of its weights); its squashing and pooling are the
   AVX2 pass's (l8a_net_t: each table's entries by formula where it gives them all, the pooling
   tables read one entry at a time).
   - C1: 8 neighbouring positions of one map in the lanes, each lane reading the 7 quads of its
     window (l5_int8_vnni.h's), each times one broadcast quad of weights; a row is 3 blocks of 8
     positions per map and positions 24-27 of two maps per vector, as in the AVX2 pass. Output
     int8 codes, row by row: c1[y][map][32] (positions 28-31 unused).
   - S2 is stored position by position, 6 maps each: a row of C3's window is 30 consecutive bytes,
     8 quads (the last 2 bytes against zero weights), the 16 output maps in two vectors' lanes.
   - C3's codes, S4, C5 and F6 put the maps or units in the lanes.
   The instruction: VEX vpdpbusd (AVX-VNNI), or its EVEX form on 8 lanes, which CPUs with
   AVX512-VNNI and VL run: how the tests run this pass where the CPU has no AVX-VNNI (at v4). */
#ifndef L5_INT8_AVX_VNNI_H
#define L5_INT8_AVX_VNNI_H
#include "l5_int8_avx2.h"
#include "l5_int8_vnni.h"

#if L8A_AVAILABLE

enum { L8Q_FIELD_W = 48, L8Q_QUADS_W = 40, L8Q_C1_ROW = 6 * 32, L8Q_S2_BYTES = 14 * 14 * 6 + 8 };

/* A thread's scratch for l8q_digit and l8q_digit2 (the first digit's S4 is kept in its last 400
   bytes while the second's is made). */
static inline size_t l8q_scratch_bytes(void) {
    return 32 + 32 * L8Q_FIELD_W + (32 + 28) * L8Q_QUADS_W * 4 + 28 * L8Q_C1_ROW + L8Q_S2_BYTES + 100 * 16 + 400
           + 400;
}

/* 8 quads: lane x holds bytes f[x], f[x + step], f[x + 2 step], f[x + 3 step] (step 1: a row's 4
   neighbouring pixels; the field's width: a column's 4 pixels). */
static inline __m256i l8q_quads8(const uint8_t *f, int step) {
    __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)f));
    for (int r = 1; r < 4; r++)
        q = _mm256_or_si256(q, _mm256_slli_epi32(
            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(f + r * step))), 8 * r));
    return q;
}

/* 16 int32 (each within int8) as 16 bytes in order: a's 8, then b's. */
static inline __m128i l8q_bytes16(__m256i a, __m256i b) {
    __m256i words = l8a_pack16(a, b);
    return _mm_packs_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
}

/* The sums of 16 pairs of int8 rows' 2x2 blocks: lane x of the result is row r's bytes 2 x and
   2 x + 1 plus the next row's (at r + row), for x < 16 (r: 32 bytes). */
static inline void l8q_block_sums(int32_t sums[16], const int8_t *r, int row) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; h++) {
        __m256i s = _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r + 16 * h))),
                                     _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r + row + 16 * h))));
        _mm256_storeu_si256((__m256i *)(sums + 8 * h), _mm256_madd_epi16(s, ones));
    }
}

/* One digit through C1 .. S4: returns S4 ([5][5][16] bytes, + 128, position by position), in the
   scratch. */
static inline __attribute__((always_inline)) const uint8_t *l8q_features(const unsigned char *digit, uint8_t *scratch,
                                                                          const l8v_net_t *v, const l8a_net_t *a,
                                                                          const int dot) {
    uint8_t *field = (uint8_t *)(((uintptr_t)scratch + 31) & ~(uintptr_t)31);  /* [32][48], zero border */
    int32_t *quads = (int32_t *)(field + 32 * L8Q_FIELD_W);  /* [32][40]: a row's 4 neighbouring pixels */
    int32_t *vert = quads + 32 * L8Q_QUADS_W;               /* [28][40]: a column's pixels of rows y..y+3 */
    int8_t *c1 = (int8_t *)(vert + 28 * L8Q_QUADS_W);       /* [28][6][32] */
    uint8_t *s2 = (uint8_t *)(c1 + 28 * L8Q_C1_ROW);        /* [14][14][6] + 8 bytes of slack (zero) */
    int8_t *c3 = (int8_t *)(s2 + L8Q_S2_BYTES);             /* [10][10][16] */
    uint8_t *s4 = (uint8_t *)(c3 + 100 * 16);               /* [5][5][16] */
    /* The digit's rows in the field (its border stays zero), and their quads. C1 reads quads of
       rows 4..31 only, and rows 30 and 31 are border: their quads stay zero from the scratch's
       first clearing. */
    for (int y = 0; y < 28; y++) memcpy(field + (y + 2) * L8Q_FIELD_W + 2, digit + y * 28, 28);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < L8Q_QUADS_W; x += 8) {
            if (y >= 4) _mm256_storeu_si256((__m256i *)(quads + y * L8Q_QUADS_W + x), l8q_quads8(field + y * L8Q_FIELD_W + x, 1));
            if (y < 28)
                _mm256_storeu_si256((__m256i *)(vert + y * L8Q_QUADS_W + x),
                                    l8q_quads8(field + y * L8Q_FIELD_W + x, L8Q_FIELD_W));
        }
    /* C1, a row at a time (l8a_c1_row), 7 quads a position. */
    __m256 m_first[12], m_rest[9];
    for (int k = 0; k < 12; k++) m_first[k] = _mm256_set1_ps(a->c1_m[k / 2]);
    for (int c = 0; c < 6; c++) m_rest[c] = _mm256_set1_ps(a->c1_m[c]);
    for (int p = 0; p < 3; p++) m_rest[6 + p] = _mm256_loadu_ps(a->c1_m2 + 8 * p);
    for (int y = 0; y < 28; y++) {
        const int32_t *in[7];
        for (int kx = 0; kx < 5; kx++) in[kx] = vert + y * L8Q_QUADS_W + kx;
        in[5] = quads + (y + 4) * L8Q_QUADS_W;
        in[6] = in[5] + 4;
        int8_t *out = c1 + y * L8Q_C1_ROW;
        __m256i sq[12], sr[9];
        l8a_c1_row(sq, sr, in, 7, v->c1_w, v->c1_b, a->c1_q2, a->c1_b2, m_first, m_rest, &a->c1, dot);
        for (int c = 0; c < 6; c++) _mm_storeu_si128((__m128i *)(out + c * 32), l8q_bytes16(sq[2 * c], sq[2 * c + 1]));
        for (int c = 0; c < 6; c++) _mm_storel_epi64((__m128i *)(out + c * 32 + 16), l8q_bytes16(sr[c], sr[c]));
        for (int p = 0; p < 3; p++) {
            __m128i bytes = l8q_bytes16(sr[6 + p], sr[6 + p]);  /* map 2 p's 4 codes, then map 2 p + 1's */
            int32_t first = _mm_cvtsi128_si32(bytes), second = _mm_extract_epi32(bytes, 1);
            memcpy(out + 2 * p * 32 + 24, &first, 4);
            memcpy(out + (2 * p + 1) * 32 + 24, &second, 4);
        }
    }
    /* S2: each 2x2 block's sum through its map's table, + 128, stored position by position. */
    for (int y = 0; y < 14; y++)
        for (int c = 0; c < 6; c++) {
            int32_t sums[16];
            l8q_block_sums(sums, c1 + 2 * y * L8Q_C1_ROW + c * 32, L8Q_C1_ROW);
            const int8_t *lut = a->s2_lut + c * 1017 + 508;
            for (int x = 0; x < 14; x++) s2[(y * 14 + x) * 6 + c] = (uint8_t)(lut[sums[x]] + 128);
        }
    /* C3: 5 positions of a row at a time (l8a_c3_five), 5 rows x 8 quads. */
    __m256 m3[10];
    for (int k = 0; k < 10; k++) m3[k] = _mm256_loadu_ps(a->c3_m + 8 * (k % 2));
    for (int y = 0; y < 10; y++)
        for (int x0 = 0; x0 < 10; x0 += 5) {
            __m256i sq[10];
            l8a_c3_five(sq, s2 + (y * 14 + x0) * 6, 14 * 6, 6, 8, (const uint8_t *)v->c3_w, v->c3_b, m3, &a->c3, dot);
            for (int x = 0; x < 5; x++)
                _mm_storeu_si128((__m128i *)(c3 + (y * 10 + x0 + x) * 16), l8q_bytes16(sq[2 * x], sq[2 * x + 1]));
        }
    /* S4: 16 maps at a time, their 2x2 sums through their tables, + 128. */
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            const int8_t *p = c3 + ((2 * y) * 10 + 2 * x) * 16;
            __m256i s = _mm256_add_epi16(
                _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p)),
                                 _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)))),
                _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 160))),
                                 _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 176)))));
            int16_t sums[16];
            _mm256_storeu_si256((__m256i *)sums, s);
            for (int c = 0; c < 16; c++) s4[(y * 5 + x) * 16 + c] = (uint8_t)(a->s4_lut[c * 1017 + sums[c] + 508] + 128);
        }
    return s4;
}

/* C5 and F6 of `digits` (1 or 2) digits' S4 (+ 128): their int8 codes into f6_out[d] (84 each). */
static inline __attribute__((always_inline)) void l8q_head(int8_t *const f6_out[2], const uint8_t *const s4[2],
                                                            const int digits, const l8v_net_t *v, const l8a_net_t *a,
                                                            const int dot) {
    int32_t c5[2][128], f6[2][96];
    uint8_t c5_bytes[2][128];
    int32_t *const c5_out[2] = {c5[0], c5[1]}, *const f6_values[2] = {f6[0], f6[1]};
    const uint8_t *const f6_in[2] = {c5_bytes[0], c5_bytes[1]};
    l8a_dense(c5_out, s4, digits, 100, (const uint8_t *)v->c5_w, v->c5_b, a->c5_m, &a->c5, 128, dot);
    const __m128i offset = _mm_set1_epi8((char)128);
    for (int d = 0; d < digits; d++)
        for (int o = 0; o < 128; o += 16)
            _mm_storeu_si128((__m128i *)(c5_bytes[d] + o),
                             _mm_add_epi8(l8q_bytes16(_mm256_loadu_si256((const __m256i *)(c5[d] + o)),
                                                      _mm256_loadu_si256((const __m256i *)(c5[d] + o + 8))), offset));
    l8a_dense(f6_values, f6_in, digits, 30, (const uint8_t *)v->f6_w, v->f6_b, a->f6_m, &a->f6, 96, dot);
    for (int d = 0; d < digits; d++)
        for (int k = 0; k < 84; k++) f6_out[d][k] = (int8_t)f6[d][k];
}

/* The pass with each form of vpdpbusd, compiled once each: one digit (f6_out, 84 int8 codes), or
   two, C5 and F6 reading each weight once for both (the same bytes). */
#define L8Q_PASS(NAME, DOT)                                                                              \
static void NAME##_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8v_net_t *v,     \
                         const l8a_net_t *a) {                                                           \
    int8_t *const out[2] = {f6_out, f6_out};                                                             \
    const uint8_t *const s4[2] = {l8q_features(digit, scratch, v, a, DOT), NULL};                        \
    l8q_head(out, s4, 1, v, a, DOT);                                                                     \
}                                                                                                        \
static void NAME##_digit2(int8_t *f6_a, int8_t *f6_b, const unsigned char *digit_a,                      \
                          const unsigned char *digit_b, uint8_t *scratch, const l8v_net_t *v,            \
                          const l8a_net_t *a) {                                                          \
    uint8_t *kept = scratch + l8q_scratch_bytes() - 400;                                                 \
    memcpy(kept, l8q_features(digit_a, scratch, v, a, DOT), 400);                                        \
    int8_t *const out[2] = {f6_a, f6_b};                                                                 \
    const uint8_t *const s4[2] = {kept, l8q_features(digit_b, scratch, v, a, DOT)};                      \
    l8q_head(out, s4, 2, v, a, DOT);                                                                     \
}
L8Q_PASS(l8q_avx_vnni, L8A_AVX_VNNI)
#if defined(__AVX512BW__)  /* the v4 level's module only: nothing beyond AVX2 in the v3 one */
L8Q_PASS(l8q_avx512_vnni, L8A_AVX512_VNNI)
#define L8Q_EVEX(call) call
#else
#define L8Q_EVEX(call) (void)0
#endif
#undef L8Q_PASS

/* Which pass runs at the v3 and v4 levels where the VNNI pass does not (lenet5_int8.pyx sets it at
   import from the CPU: L8A_AVX_VNNI, this file's, where it has AVX-VNNI, else L8A_VPMADDWD, the
   AVX2 pass; tests may choose L8A_AVX512_VNNI at the v4 level where the CPU has AVX512-VNNI). */
static int l8_avx2_dot = L8A_VPMADDWD;

/* The scratch either pass needs (the dot may change between calls; the tests change it). */
static inline size_t l8a_pass_scratch_bytes(void) {
    return l8q_scratch_bytes() > l8a_scratch_bytes() ? l8q_scratch_bytes() : l8a_scratch_bytes();
}

static void l8a_pass_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8a_net_t *a,
                           const l8v_net_t *v) {
    if (l8_avx2_dot == L8A_AVX_VNNI) l8q_avx_vnni_digit(f6_out, digit, scratch, v, a);
    else if (l8_avx2_dot == L8A_AVX512_VNNI) L8Q_EVEX(l8q_avx512_vnni_digit(f6_out, digit, scratch, v, a));
    else l8a_digit(f6_out, digit, scratch, a);
}

static void l8a_pass_digit2(int8_t *f6_a, int8_t *f6_b, const unsigned char *digit_a, const unsigned char *digit_b,
                            uint8_t *scratch, const l8a_net_t *a, const l8v_net_t *v) {
    if (l8_avx2_dot == L8A_AVX_VNNI) l8q_avx_vnni_digit2(f6_a, f6_b, digit_a, digit_b, scratch, v, a);
    else if (l8_avx2_dot == L8A_AVX512_VNNI) L8Q_EVEX(l8q_avx512_vnni_digit2(f6_a, f6_b, digit_a, digit_b, scratch, v, a));
    else l8a_digit2(f6_a, f6_b, digit_a, digit_b, scratch, a);
}
#else
static int l8_avx2_dot = L8A_VPMADDWD;
static inline size_t l8a_pass_scratch_bytes(void) { return 0; }
static inline void l8a_pass_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8a_net_t *a,
                                  const l8v_net_t *v) {
    (void)f6_out; (void)digit; (void)scratch; (void)a; (void)v;
}
static inline void l8a_pass_digit2(int8_t *f6_a, int8_t *f6_b, const unsigned char *digit_a,
                                   const unsigned char *digit_b, uint8_t *scratch, const l8a_net_t *a,
                                   const l8v_net_t *v) {
    (void)f6_a; (void)f6_b; (void)digit_a; (void)digit_b; (void)scratch; (void)a; (void)v;
}
#endif

#endif
