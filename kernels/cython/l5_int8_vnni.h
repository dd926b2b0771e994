/* The int8 pass on AVX512-VNNI (lenet5_int8.pyx runs it where the CPU has it, at the v4 level):
   vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32 lane,
   64 multiply-adds per instruction, exact.

   The activations are kept as unsigned bytes, value + 128 (1..255); each stage's bias holds
   -128 * (the sum of its weights), so its sums are the reference's exactly. Pixels are unsigned
   already. Layouts (weights repacked by lenet5_int8.pyx):
   - C1 puts 16 neighbouring positions of one map in the lanes: each lane reads the 4 pixels from
     its x on, from rows of such quads made once per digit (quads[y][x]), times one broadcast
     quad of weights: 10 instructions per 16 outputs. Output int8, maps first: c1[map][y][32].
   - S2 is stored position by position, 6 maps each (s2[(y * 14 + x) * 6 + map]): a row of C3's
     5x5 window is then 30 consecutive bytes, 8 quads, the output maps in the lanes.
   - C3's output, S4, C5 and F6 put the maps or units in the lanes.
   The squashing is l5_int8.h's: the same index, the same table, gathered 16 lanes at a time. */
#ifndef L5_INT8_VNNI_H
#define L5_INT8_VNNI_H
#include "l5_int8.h"

#if defined(__AVX512BW__)
#define L8V __attribute__((target("avx512vnni"))) static inline

enum { L8V_QUADS_W = 48, L8V_FIELD_W = 56, L8V_S2_BYTES = 14 * 14 * 6 + 8 };

typedef struct {
    const int32_t *c1_w;    /* [6][5][2] quads: a row's taps 0-3, and tap 4 with three zeros */
    const int32_t *c1_b;    /* [6] */
    const float *c1_m;      /* [6] */
    const int16_t *c1_lut;
    int c1_half;
    const int16_t *s2_lut;  /* [6][1017] */
    const int8_t *c3_w;     /* [5 rows][8 quads][16 maps][4] */
    const int32_t *c3_b;    /* [16], less 128 * the sum of each map's weights */
    const float *c3_m;      /* [16] */
    const int16_t *c3_lut;
    int c3_half;
    const int16_t *s4_lut;  /* [16][1017] */
    const int8_t *c5_w;     /* [100 quads][128 units][4], S4 read position by position */
    const int32_t *c5_b;    /* [128], less 128 * the sum of each unit's weights */
    const float *c5_m;
    const int16_t *c5_lut;
    int c5_half;
    const int8_t *f6_w;     /* [30 quads][96 units][4] */
    const int32_t *f6_b;    /* [96] */
    const float *f6_m;
    const int16_t *f6_lut;
    int f6_half;
} l8v_net_t;

/* The squashing of 16 sums: int32 lanes holding the table's int8 values. */
L8V __m512i l8v_squash(__m512i acc, __m512 m, const int16_t *lut, int half) {
    __m512 z = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), m);
    z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps((float)-half)), _mm512_set1_ps((float)half));
    __m512i idx = _mm512_add_epi32(_mm512_cvtps_epi32(z), _mm512_set1_epi32(half));
    __m512i got = _mm512_i32gather_epi32(idx, (const void *)lut, 2);
    return _mm512_srai_epi32(_mm512_slli_epi32(got, 16), 16);
}

/* n_quads quads of x (unsigned) against w ([n_quads][lanes][4] signed), lanes = 16 * blocks,
   from bias: out = the squashed sums + offset (0 or 128), as bytes. */
L8V void l8v_dense(uint8_t *out, const uint8_t *x, int n_quads, const int8_t *w, const int32_t *bias,
                   const float *m, const int16_t *lut, int half, int lanes, int n_out, int offset) {
    for (int o = 0; o < lanes; o += 64) {
        int blocks = (lanes - o) / 16 < 4 ? (lanes - o) / 16 : 4;
        __m512i a0 = _mm512_loadu_si512(bias + o), a1 = a0, a2 = a0, a3 = a0;
        if (blocks > 1) a1 = _mm512_loadu_si512(bias + o + 16);
        if (blocks > 2) a2 = _mm512_loadu_si512(bias + o + 32);
        if (blocks > 3) a3 = _mm512_loadu_si512(bias + o + 48);
        for (int k = 0; k < n_quads; k++) {
            int32_t q;
            memcpy(&q, x + 4 * k, 4);
            __m512i v = _mm512_set1_epi32(q);
            const int8_t *wk = w + ((size_t)k * lanes + o) * 4;
            a0 = _mm512_dpbusd_epi32(a0, v, _mm512_loadu_si512(wk));
            if (blocks > 1) a1 = _mm512_dpbusd_epi32(a1, v, _mm512_loadu_si512(wk + 64));
            if (blocks > 2) a2 = _mm512_dpbusd_epi32(a2, v, _mm512_loadu_si512(wk + 128));
            if (blocks > 3) a3 = _mm512_dpbusd_epi32(a3, v, _mm512_loadu_si512(wk + 192));
        }
        __m512i acc[4] = {a0, a1, a2, a3};
        for (int b = 0; b < blocks; b++) {
            int first = o + 16 * b;
            if (first >= n_out) break;
            __m512i s = l8v_squash(acc[b], _mm512_loadu_ps(m + first), lut, half);
            __m128i bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(s, _mm512_set1_epi32(offset)));
            int n = n_out - first < 16 ? n_out - first : 16;
            _mm_mask_storeu_epi8(out + first, (__mmask16)((1u << n) - 1), bytes);
        }
    }
}

/* One digit: f6_out (84) int8 codes. scratch: see l8v_scratch_bytes. */
static inline size_t l8v_scratch_bytes(void) {
    return 32 * L8V_FIELD_W + 32 * L8V_QUADS_W * 4 + 6 * 28 * 32 + L8V_S2_BYTES + 10 * 10 * 16 + 400 + 128 + 96 + 64;
}

L8V void l8v_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8v_net_t *net) {
    uint8_t *field = scratch;                                       /* [32][56] pixels, zero border */
    int32_t *quads = (int32_t *)(field + 32 * L8V_FIELD_W);         /* [32][48] */
    int8_t *c1 = (int8_t *)(quads + 32 * L8V_QUADS_W);              /* [6][28][32] */
    uint8_t *s2 = (uint8_t *)(c1 + 6 * 28 * 32);                    /* [14][14][6] + 8 bytes of slack */
    int8_t *c3 = (int8_t *)(s2 + L8V_S2_BYTES);                     /* [10][10][16] */
    uint8_t *s4 = (uint8_t *)(c3 + 10 * 10 * 16);                   /* [5][5][16] */
    uint8_t *c5 = s4 + 400;                                         /* [128] */
    uint8_t *f6 = c5 + 128;                                         /* [96] */
    /* The digit's rows in the field (its border stays zero), and their quads: lane x of a block
       holds bytes x..x+3, built from four widened loads a byte apart. Rows 0, 1, 30 and 31 are
       border only: their quads stay zero from the scratch's first clearing. */
    for (int y = 0; y < 28; y++) memcpy(field + (y + 2) * L8V_FIELD_W + 2, digit + y * 28, 28);
    for (int y = 2; y < 30; y++)
        for (int x0 = 0; x0 < L8V_QUADS_W; x0 += 16) {
            const uint8_t *f = field + y * L8V_FIELD_W + x0;
            __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)f));
            q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(f + 1))), 8));
            q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(f + 2))), 16));
            q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(f + 3))), 24));
            _mm512_storeu_si512(quads + y * L8V_QUADS_W + x0, q);
        }
    /* C1: for each row and block of 16 positions, the 6 maps' sums over 5 rows x 2 quads. */
    for (int y = 0; y < 28; y++)
        for (int x0 = 0; x0 < 32; x0 += 16) {
            __m512i a[6];
            for (int c = 0; c < 6; c++) a[c] = _mm512_set1_epi32(net->c1_b[c]);
            for (int i = 0; i < 5; i++) {
                const int32_t *row = quads + (y + i) * L8V_QUADS_W + x0;
                __m512i q0 = _mm512_loadu_si512(row), q1 = _mm512_loadu_si512(row + 4);
                for (int c = 0; c < 6; c++) {
                    a[c] = _mm512_dpbusd_epi32(a[c], q0, _mm512_set1_epi32(net->c1_w[(c * 5 + i) * 2]));
                    a[c] = _mm512_dpbusd_epi32(a[c], q1, _mm512_set1_epi32(net->c1_w[(c * 5 + i) * 2 + 1]));
                }
            }
            for (int c = 0; c < 6; c++) {
                __m512i s = l8v_squash(a[c], _mm512_set1_ps(net->c1_m[c]), net->c1_lut, net->c1_half);
                _mm_storeu_si128((__m128i *)(c1 + (c * 28 + y) * 32 + x0), _mm512_cvtepi32_epi8(s));
            }
        }
    /* S2: per map and output row, the 2x2 sums of 16 columns at once (two rows widened and added,
       then neighbours added by vpmaddwd with ones), through the map's table (gathered), + 128;
       then stored position by position, 6 maps each. */
    __m512i ones = _mm512_set1_epi16(1);
    for (int y = 0; y < 14; y++) {
        uint8_t row[6][16];
        for (int c = 0; c < 6; c++) {
            const int8_t *p = c1 + (c * 28 + 2 * y) * 32;
            __m512i v = _mm512_add_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p)),
                                         _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(p + 32))));
            __m512i t = _mm512_add_epi32(_mm512_madd_epi16(v, ones), _mm512_set1_epi32(c * 1017 + 508));
            __m512i got = _mm512_i32gather_epi32(t, (const void *)net->s2_lut, 2);
            got = _mm512_add_epi32(_mm512_srai_epi32(_mm512_slli_epi32(got, 16), 16), _mm512_set1_epi32(128));
            _mm_storeu_si128((__m128i *)row[c], _mm512_cvtepi32_epi8(got));
        }
        for (int x = 0; x < 14; x++)
            for (int c = 0; c < 6; c++) s2[(y * 14 + x) * 6 + c] = row[c][x];
    }
    memset(s2 + 14 * 14 * 6, 0, 8);
    /* C3: 4 positions at a time (then 2), 16 maps in the lanes, 5 rows x 8 quads of S2. */
    for (int y = 0; y < 10; y++)
        for (int x0 = 0; x0 < 10; x0 += 4) {
            int np = 10 - x0 < 4 ? 10 - x0 : 4;
            __m512i b = _mm512_loadu_si512(net->c3_b);
            __m512i a0 = b, a1 = b, a2 = b, a3 = b;
            for (int i = 0; i < 5; i++) {
                const uint8_t *row = s2 + ((y + i) * 14 + x0) * 6;
                const int8_t *wi = net->c3_w + (size_t)i * 8 * 64;
                for (int d = 0; d < 8; d++) {
                    __m512i w = _mm512_loadu_si512(wi + d * 64);
                    int32_t q;
                    memcpy(&q, row + 4 * d, 4);
                    a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(q), w);
                    memcpy(&q, row + 6 + 4 * d, 4);
                    a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(q), w);
                    if (np > 2) {
                        memcpy(&q, row + 12 + 4 * d, 4);
                        a2 = _mm512_dpbusd_epi32(a2, _mm512_set1_epi32(q), w);
                        memcpy(&q, row + 18 + 4 * d, 4);
                        a3 = _mm512_dpbusd_epi32(a3, _mm512_set1_epi32(q), w);
                    }
                }
            }
            __m512 m = _mm512_loadu_ps(net->c3_m);
            __m512i acc[4] = {a0, a1, a2, a3};
            for (int p = 0; p < np; p++)
                _mm_storeu_si128((__m128i *)(c3 + (y * 10 + x0 + p) * 16),
                                 _mm512_cvtepi32_epi8(l8v_squash(acc[p], m, net->c3_lut, net->c3_half)));
        }
    /* S4: 16 maps at a time, their 2x2 sums through their tables (gathered), + 128. */
    __m512i map_base = _mm512_add_epi32(_mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(1017)),
        _mm512_set1_epi32(508));
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            const int8_t *p = c3 + ((2 * y) * 10 + 2 * x) * 16;
            __m512i t = _mm512_add_epi32(
                _mm512_add_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)),
                                 _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 16)))),
                _mm512_add_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 160))),
                                 _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 176)))));
            __m512i got = _mm512_i32gather_epi32(_mm512_add_epi32(t, map_base), (const void *)net->s4_lut, 2);
            got = _mm512_add_epi32(_mm512_srai_epi32(_mm512_slli_epi32(got, 16), 16), _mm512_set1_epi32(128));
            _mm_storeu_si128((__m128i *)(s4 + (y * 5 + x) * 16), _mm512_cvtepi32_epi8(got));
        }
    l8v_dense(c5, s4, 100, net->c5_w, net->c5_b, net->c5_m, net->c5_lut, net->c5_half, 128, 120, 128);
    l8v_dense(f6, c5, 30, net->f6_w, net->f6_b, net->f6_m, net->f6_lut, net->f6_half, 96, 84, 0);
    memcpy(f6_out, f6, 84);
}
#else
/* Levels without AVX-512: the VNNI pass is never chosen (l8_use_vnni stays 0); these keep the
   Cython module's one source for every level. */
typedef struct {
    const int32_t *c1_w, *c1_b; const float *c1_m; const int16_t *c1_lut; int c1_half;
    const int16_t *s2_lut; const int8_t *c3_w; const int32_t *c3_b; const float *c3_m;
    const int16_t *c3_lut; int c3_half; const int16_t *s4_lut; const int8_t *c5_w;
    const int32_t *c5_b; const float *c5_m; const int16_t *c5_lut; int c5_half; const int8_t *f6_w;
    const int32_t *f6_b; const float *f6_m; const int16_t *f6_lut; int f6_half;
} l8v_net_t;
static inline size_t l8v_scratch_bytes(void) { return 0; }
static inline void l8v_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8v_net_t *net) {
    (void)f6_out; (void)digit; (void)scratch; (void)net;
}
#endif

#endif
