/* The int8 pass on AVX512-VNNI (lenet5_int8.pyx runs it where the CPU has it, at the v4 level):
   vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32 lane,
   64 multiply-adds per instruction, exact.

   The activations are kept as unsigned bytes, value + 128 (1..255); each stage's bias holds
   -128 * (the sum of its weights), so its sums are the reference's exactly. Pixels are unsigned
   already. Layouts (weights repacked by lenet5_int8.pyx):
   - C1 puts 16 neighbouring positions of one map in the lanes. Each lane reads, for each column
     of the 5x5 window, the 4 pixels of rows 0-3 (from quads of 4 rows' pixels, made once per
     digit: vert[y][x]), then row 4's pixels 0-3 (from quads of a row's 4 neighbouring pixels:
     quads[y][x]) and its pixel 4 (the quad 4 further on, against a weight quad of one tap and
     three zeros), each times one broadcast quad of weights: 7 instructions per 16 outputs.
     Output int8, row by row: c1[y][map][32].
   - S2 is stored position by position, 6 maps each (s2[(y * 14 + x) * 6 + map]): a row of C3's
     5x5 window is then 30 consecutive bytes, 8 quads, the output maps in the lanes.
   - C3's output, S4, C5 and F6 put the maps or units in the lanes.
   The squashing is l5_int8.h's: the same index into the same table. C1's and C3's sums go through
   memory (a row of C1, all of C3) to l8v_squash_bytes, which gathers 16 lanes at a time, or, where
   the CPU has AVX512-VBMI and BITALG and the table allows (quantize.squash_table's always do), to
   l8b_squash_bytes: 64 lanes at a time, by steps. An odd table whose nonnegative half rises by 0
   or 1 from each entry to the next (tanh's slope is at most half an output step per index there)
   is held as 128 buckets of 8 entries: each bucket's first entry and a byte whose bit j says
   whether entry j rose. |index|'s high bits choose the bucket (vpermi2b reads both bytes), and
   the entry is the first plus the rises up to its low 3 bits (vpopcntb); then the sign put back.
   The same bytes in a fifth of the time of the gathers. The pooling tables of S2 and S4 are read
   by steps too (l8b_pool_s2, l8b_pool_s4), over their whole range, as their entries rise or fall
   by at most 1 from one sum to the next (pool_table's do: a pooled output moves by at most half
   an output step for a step of the sum); a table that does not is gathered. */
#ifndef L5_INT8_VNNI_H
#define L5_INT8_VNNI_H
#include "l5_int8.h"

#if defined(__AVX512BW__)
#define L8V __attribute__((target("avx512vnni"))) static inline
#define L8B __attribute__((target("avx512vbmi,avx512bitalg"))) static
#define L8B_INLINE __attribute__((target("avx512vbmi,avx512bitalg"))) static inline

enum { L8V_QUADS_W = 48, L8V_FIELD_W = 56, L8V_S2_BYTES = 14 * 14 * 6 + 8, L8V_C1_ROW = 6 * 32 };

typedef struct {
    const int32_t *c1_w;    /* [6][7] quads: column kx's rows 0-3 (kx = 0..4), row 4's taps 0-3, its tap 4 */
    const int32_t *c1_b;    /* [6] */
    const float *c1_m;      /* [6] */
    const int16_t *c1_lut;
    int c1_half;
    const float *c1_m_lanes;  /* [6][32]: c1_m of each lane of a row's sums */
    const uint8_t *c1_steps;  /* [2][128]: c1_lut's nonnegative half by steps, for l8b_squash_bytes */
    int c1_stepped;           /* 0: the table cannot be (l8v_squash_bytes reads it) */
    const int16_t *s2_lut;  /* [6][1017] */
    const uint8_t *s2_steps;  /* [6][256]: the same tables by steps, for l8b_pool_s2 */
    unsigned s2_falling;      /* bit c: map c's table falls (else it rises) */
    int s2_stepped;           /* 0: the tables cannot be (gathers read them) */
    const int8_t *c3_w;     /* [5 rows][8 quads][16 maps][4] */
    const int32_t *c3_b;    /* [16], less 128 * the sum of each map's weights */
    const float *c3_m;      /* [16] */
    const int16_t *c3_lut;
    int c3_half;
    const uint8_t *c3_steps;
    int c3_stepped;
    const int16_t *s4_lut;  /* [16][1017] */
    const uint8_t *s4_steps;  /* [16][256]: the same tables by steps, for l8b_pool_s4 */
    unsigned s4_falling;      /* bit c: map c's table falls (else it rises) */
    int s4_stepped;           /* 0: the tables cannot be (gathers read them) */
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

/* a + the products of v's and w's quads (vpdpbusd), the sum kept in a's register: for
   _mm512_dpbusd_epi32, gcc 12 copies a loop's sums to other registers and back every iteration
   (and spills one where there are 16). */
L8V __m512i l8v_dot(__m512i a, __m512i v, __m512i w) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(a) : "v"(v), "v"(w));
    return a;
}

/* The squashing of 16 sums: int32 lanes holding the table's int8 values. */
L8V __m512i l8v_squash(__m512i acc, __m512 m, const int16_t *lut, int half) {
    __m512 z = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), m);
    z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps((float)-half)), _mm512_set1_ps((float)half));
    __m512i idx = _mm512_add_epi32(_mm512_cvtps_epi32(z), _mm512_set1_epi32(half));
    __m512i got = _mm512_i32gather_epi32(idx, (const void *)lut, 2);
    return _mm512_srai_epi32(_mm512_slli_epi32(got, 16), 16);
}

/* n sums (a multiple of 16) to int8, 16 lanes at a time; lane i's multiplier is m[i % period]
   (period a multiple of 16, followed as a running offset: a division per vector cost more than
   the lookup). */
L8V void l8v_squash_bytes(int8_t *out, const int32_t *acc, int n, const float *m, int period, const int16_t *lut,
                          int half) {
    for (int i = 0, mi = 0; i < n; i += 16, mi = mi + 16 == period ? 0 : mi + 16) {
        __m512i s = l8v_squash(_mm512_loadu_si512(acc + i), _mm512_loadu_ps(m + mi), lut, half);
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(s));
    }
}

/* Bytes packed from 4 vectors of 16 int32 (packs then packs again, two instructions a step where
   narrowing each vector took two of its own) back in lane order: dword 4 L + j of the packed bytes
   holds vector j's lanes 4 L .. 4 L + 3, and one dword permute puts them back. */
L8B_INLINE __m512i l8b_in_order(__m512i packed) {
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), packed);
}

/* Tables read by steps (the squashing's, S2's): an entry is its bucket's first plus the changes
   in the bucket up to it. For 64 words (0 to 1,023, two vectors), their buckets (word >> 3) and
   places in them (word & 7), as bytes in the packed order. */
L8B_INLINE void l8b_buckets(__m512i w01, __m512i w23, __m512i *bucket, __m512i *within) {
    const __m512i seven = _mm512_set1_epi16(7);
    *bucket = _mm512_packus_epi16(_mm512_srli_epi16(w01, 3), _mm512_srli_epi16(w23, 3));
    *within = _mm512_packus_epi16(_mm512_and_si512(w01, seven), _mm512_and_si512(w23, seven));
}

/* How many of a bucket's changes (bit j: entry j differs from the one before; bit 0 clear) come at
   or before each byte's place in it. */
L8B_INLINE __m512i l8b_changes_upto(__m512i changes, __m512i within) {
    const __m512i upto = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 3, 7, 15, 31, 63, 127, -1, 0, 0, 0, 0, 0, 0, 0, 0));
    return _mm512_popcnt_epi8(_mm512_and_si512(changes, _mm512_shuffle_epi8(upto, within)));
}

/* The same bytes as l8v_squash_bytes for n a multiple of 64, by steps (steps: the first entry of
   each bucket of 8 of the odd table's nonnegative half, lut[half + 8 b], then the bucket's rises:
   bit j set where lut[half + 8 b + j] is one more than the entry before it; past the half, the
   last entry and no rises), read at |index|, the sign put back after. The index, rint(z) clamped
   to +-L, is taken as rint(sign(z) * min(|z|, L)): one vrangeps (imm 0x02), L being whole; the
   sums' scale factors are finite (check_int8_weights), so z is never NaN. Its sign is the packed
   index's. */
L8B void l8b_squash_bytes(int8_t *out, const int32_t *acc, int n, const float *m, int period, const uint8_t *steps,
                          int half) {
    const __m512 top = _mm512_set1_ps((float)half);
    const __m512i first_lo = _mm512_loadu_si512(steps), first_hi = _mm512_loadu_si512(steps + 64);
    const __m512i rises_lo = _mm512_loadu_si512(steps + 128), rises_hi = _mm512_loadu_si512(steps + 192);
    for (int i = 0, mi = 0; i < n; i += 64) {
        __m512i index[4];
        for (int j = 0; j < 4; j++, mi = mi + 16 == period ? 0 : mi + 16) {
            __m512 z = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(acc + i + 16 * j)),
                                     _mm512_loadu_ps(m + mi));
            index[j] = _mm512_cvtps_epi32(_mm512_range_ps(z, top, 0x02));
        }
        /* |index| <= L < 1,024: the words hold it exactly, and bytes saturated from them its sign. */
        __m512i w01 = _mm512_packs_epi32(index[0], index[1]), w23 = _mm512_packs_epi32(index[2], index[3]);
        __mmask64 negative = _mm512_movepi8_mask(_mm512_packs_epi16(w01, w23));
        w01 = _mm512_abs_epi16(w01);
        w23 = _mm512_abs_epi16(w23);
        __m512i bucket, within;
        l8b_buckets(w01, w23, &bucket, &within);
        __m512i count = l8b_changes_upto(_mm512_permutex2var_epi8(rises_lo, bucket, rises_hi), within);
        __m512i got = _mm512_add_epi8(_mm512_permutex2var_epi8(first_lo, bucket, first_hi), count);
        got = _mm512_mask_sub_epi8(got, negative, _mm512_setzero_si512(), got);
        _mm512_storeu_si512(out + i, l8b_in_order(got));
    }
}

/* Index into its map's pooling table of each 2x2 block of C1 map c's rows 2y and 2y + 1: the sum
   + 508, 16 lanes (columns 0-13, and 2 of the row's slack). Two rows widened and added, then
   neighbours added by vpmaddwd with ones. */
static inline __m512i l8_pool_index(const int8_t *c1, int c, int y) {
    const int8_t *p = c1 + 2 * y * L8V_C1_ROW + c * 32;
    __m512i v = _mm512_add_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p)),
                                 _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(p + L8V_C1_ROW))));
    return _mm512_add_epi32(_mm512_madd_epi16(v, _mm512_set1_epi16(1)), _mm512_set1_epi32(508));
}

/* S2 stored position by position, 6 maps each (s2[(y * 14 + x) * 6 + map], + 128), from its rows
   (pooled[y][map][16]). */
static inline void l8_s2_positions(uint8_t *s2, const uint8_t pooled[16][6][16]) {
    for (int y = 0; y < 14; y++)
        for (int x = 0; x < 14; x++)
            for (int c = 0; c < 6; c++) s2[(y * 14 + x) * 6 + c] = pooled[y][c][x];
}

/* l8_s2_positions with vpermi2b: a row's 84 bytes picked from its 6 maps' 96 (byte j of the row
   is map j % 6's position j / 6), where bytes one at a time took a third of S2's time. */
L8B_INLINE void l8b_s2_positions(uint8_t *s2, const uint8_t pooled[16][6][16]) {
    static const uint8_t pick[128] = {
        0, 16, 32, 48, 64, 80, 1, 17, 33, 49, 65, 81, 2, 18, 34, 50, 66, 82, 3, 19, 35, 51, 67, 83,
        4, 20, 36, 52, 68, 84, 5, 21, 37, 53, 69, 85, 6, 22, 38, 54, 70, 86, 7, 23, 39, 55, 71, 87,
        8, 24, 40, 56, 72, 88, 9, 25, 41, 57, 73, 89, 10, 26, 42, 58, 74, 90, 11, 27, 43, 59, 75, 91,
        12, 28, 44, 60, 76, 92, 13, 29, 45, 61, 77, 93};
    __m512i first = _mm512_loadu_si512(pick), rest = _mm512_loadu_si512(pick + 64);
    for (int y = 0; y < 14; y++) {
        /* Maps 0-3, then 4-5 and (unused) the next row's first two. */
        __m512i a = _mm512_loadu_si512(pooled[y][0]), b = _mm512_loadu_si512(pooled[y][4]);
        _mm512_storeu_si512(s2 + y * 84, _mm512_permutex2var_epi8(a, first, b));
        _mm512_mask_storeu_epi8(s2 + y * 84 + 64, (__mmask64)0xFFFFF, _mm512_permutex2var_epi8(a, rest, b));
    }
}

/* The 2x2 block sums of S2's row y for maps c and c + 1, + 508 (0 to 1,016), as 32 words: map c's
   16 positions (the row's 14 and 2 of slack), then map c + 1's. vpmaddubsw with ones adds a row's
   neighbours straight from the bytes. */
L8B_INLINE __m512i l8b_pool_sums(const int8_t *c1, int c, int y) {
    const int8_t *p = c1 + 2 * y * L8V_C1_ROW + c * 32;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i top = _mm512_maddubs_epi16(ones, _mm512_loadu_si512(p));
    __m512i bottom = _mm512_maddubs_epi16(ones, _mm512_loadu_si512(p + L8V_C1_ROW));
    return _mm512_add_epi16(_mm512_add_epi16(top, bottom), _mm512_set1_epi16(508));
}

/* S2 by steps: each map's pooling table indexed by the sum + 508 as 128 buckets of 8 entries
   (steps: [6][256], a bucket's first entry + 128, then a byte whose bit j says whether entry j
   differs from the one before; falling: bit c where map c's entries fall, else they rise). Two
   maps' two rows a vector: vpermi2b reads each map's bytes at the sum >> 3 and a blend keeps its
   half, vpopcntb counts the changes up to the sum & 7. */
L8B void l8b_pool_s2(uint8_t *s2, const int8_t *c1, const uint8_t *steps, unsigned falling) {
    uint8_t pooled[16][6][16];
    /* After packing two rows' words, 128-bit lane L holds 8 of the first row then 8 of the
       second (qwords 2L and 2L + 1), lanes 0-1 map c's, 2-3 map c + 1's: these qwords in order
       give each row's 16 bytes in turn. */
    const __m512i rows = _mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7);
    const __mmask64 second = 0xFFFFFFFF00000000ull;  /* the bytes of map c + 1 */
    for (int c = 0; c < 6; c += 2) {
        const uint8_t *a = steps + c * 256, *b = a + 256;
        const __m512i first_a0 = _mm512_loadu_si512(a), first_a1 = _mm512_loadu_si512(a + 64);
        const __m512i rises_a0 = _mm512_loadu_si512(a + 128), rises_a1 = _mm512_loadu_si512(a + 192);
        const __m512i first_b0 = _mm512_loadu_si512(b), first_b1 = _mm512_loadu_si512(b + 64);
        const __m512i rises_b0 = _mm512_loadu_si512(b + 128), rises_b1 = _mm512_loadu_si512(b + 192);
        const __mmask64 down = ((falling >> c & 1u) ? ~second : 0) | ((falling >> (c + 1) & 1u) ? second : 0);
        for (int y = 0; y < 14; y += 2) {
            __m512i upper = l8b_pool_sums(c1, c, y), lower = l8b_pool_sums(c1, c, y + 1);
            __m512i bucket, within;
            l8b_buckets(upper, lower, &bucket, &within);
            __m512i first = _mm512_mask_blend_epi8(second, _mm512_permutex2var_epi8(first_a0, bucket, first_a1),
                                                   _mm512_permutex2var_epi8(first_b0, bucket, first_b1));
            __m512i rises = _mm512_mask_blend_epi8(second, _mm512_permutex2var_epi8(rises_a0, bucket, rises_a1),
                                                   _mm512_permutex2var_epi8(rises_b0, bucket, rises_b1));
            __m512i count = l8b_changes_upto(rises, within);
            __m512i got = _mm512_mask_sub_epi8(_mm512_add_epi8(first, count), down, first, count);
            got = _mm512_permutexvar_epi64(rows, got);
            _mm_storeu_si128((__m128i *)pooled[y][c], _mm512_castsi512_si128(got));
            _mm_storeu_si128((__m128i *)pooled[y + 1][c], _mm512_extracti32x4_epi32(got, 1));
            _mm_storeu_si128((__m128i *)pooled[y][c + 1], _mm512_extracti32x4_epi32(got, 2));
            _mm_storeu_si128((__m128i *)pooled[y + 1][c + 1], _mm512_extracti32x4_epi32(got, 3));
        }
    }
    l8b_s2_positions(s2, pooled);
}

/* S4 by steps: each 2x2 block sum of C3's codes + 508 (0 to 1,016) through its map's pooling table
   (steps: [16][256], as l8b_pool_s2 reads them), + 128, stored position by position. A vector
   holds 4 positions' 16 maps; each lane has its own map, so each map's two vpermi2b write its
   lanes alone, the 16 maps in turn: 32 for 64 entries, where a 16-lane gather read 16. */
L8B void l8b_pool_s4(uint8_t *s4, const int8_t *c3, const uint8_t *steps, unsigned falling) {
    /* Packed from 4 positions' words (l8b_buckets), byte k holds position k / 32 + 2 ((k % 16) / 8)
       of map 8 ((k / 16) % 2) + k % 8: map c's bytes are c, c + 8, c + 32 and c + 40, 16 further on
       for maps 8-15. `order` puts them back as position * 16 + map. */
    static const uint8_t order[64] = {
        0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23, 32, 33, 34, 35, 36, 37, 38, 39,
        48, 49, 50, 51, 52, 53, 54, 55, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31,
        40, 41, 42, 43, 44, 45, 46, 47, 56, 57, 58, 59, 60, 61, 62, 63};
    const __m512i in_order = _mm512_loadu_si512(order);
    __mmask64 of_map[16], down = 0;
    for (int c = 0; c < 16; c++) {
        of_map[c] = (__mmask64)0x0000010100000101ull << (c % 8) << (16 * (c / 8));
        if (falling >> c & 1u) down |= of_map[c];
    }
    for (int p0 = 0; p0 < 25; p0 += 4) {
        __m256i sums[4];
        for (int j = 0; j < 4; j++) {
            int p = p0 + j < 25 ? p0 + j : 24;  /* the last vector's spare positions repeat the last */
            const int8_t *q = c3 + ((2 * (p / 5)) * 10 + 2 * (p % 5)) * 16;
            __m256i top = _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)q)),
                                           _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 16))));
            __m256i bottom = _mm256_add_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 160))),
                                              _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 176))));
            sums[j] = _mm256_add_epi16(_mm256_add_epi16(top, bottom), _mm256_set1_epi16(508));
        }
        __m512i bucket, within;
        l8b_buckets(_mm512_inserti64x4(_mm512_castsi256_si512(sums[0]), sums[1], 1),
                    _mm512_inserti64x4(_mm512_castsi256_si512(sums[2]), sums[3], 1), &bucket, &within);
        __m512i first = _mm512_setzero_si512(), changes = _mm512_setzero_si512();
        for (int c = 0; c < 16; c++) {
            const uint8_t *t = steps + c * 256;
            first = _mm512_or_si512(first, _mm512_maskz_permutex2var_epi8(
                of_map[c], _mm512_loadu_si512(t), bucket, _mm512_loadu_si512(t + 64)));
            changes = _mm512_or_si512(changes, _mm512_maskz_permutex2var_epi8(
                of_map[c], _mm512_loadu_si512(t + 128), bucket, _mm512_loadu_si512(t + 192)));
        }
        __m512i count = l8b_changes_upto(changes, within);
        __m512i got = _mm512_permutexvar_epi8(in_order, _mm512_mask_sub_epi8(_mm512_add_epi8(first, count), down, first, count));
        if (p0 + 4 <= 25)
            _mm512_storeu_si512(s4 + p0 * 16, got);
        else
            _mm512_mask_storeu_epi8(s4 + p0 * 16, ((__mmask64)1 << (16 * (25 - p0))) - 1, got);
    }
}

/* A stage's n sums to int8: by steps where the CPU has VBMI and BITALG and the table allows, else
   gathers. */
L8V void l8v_squash_stage(int8_t *out, const int32_t *acc, int n, const float *m, int period, const int16_t *lut,
                          int half, const uint8_t *steps, int stepped) {
    if (l8_use_vbmi && stepped && n % 64 == 0)
        l8b_squash_bytes(out, acc, n, m, period, steps, half);
    else
        l8v_squash_bytes(out, acc, n, m, period, lut, half);
}

/* The squashed sums of `blocks` blocks of 16 lanes from lane o on, + offset (0 or 128), as bytes
   into out, the lanes past n_out left out. */
L8V void l8v_store_squashed(uint8_t *out, const __m512i acc[4], int blocks, int o, const float *m,
                            const int16_t *lut, int half, int n_out, int offset) {
    for (int b = 0; b < blocks; b++) {
        int first = o + 16 * b;
        if (first >= n_out) break;
        __m512i s = l8v_squash(acc[b], _mm512_loadu_ps(m + first), lut, half);
        __m128i bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(s, _mm512_set1_epi32(offset)));
        int n = n_out - first < 16 ? n_out - first : 16;
        _mm_mask_storeu_epi8(out + first, (__mmask16)((1u << n) - 1), bytes);
    }
}

/* The biases of `blocks` (1 to 4) blocks of 16 lanes from bias on, as starting sums (the blocks
   past them: zeros, unused; copies of the first made gcc copy that sum in the loop). */
L8V void l8v_bias_blocks(__m512i *a0, __m512i *a1, __m512i *a2, __m512i *a3, const int32_t *bias, int blocks) {
    *a0 = _mm512_loadu_si512(bias);
    *a1 = blocks > 1 ? _mm512_loadu_si512(bias + 16) : _mm512_setzero_si512();
    *a2 = blocks > 2 ? _mm512_loadu_si512(bias + 32) : _mm512_setzero_si512();
    *a3 = blocks > 3 ? _mm512_loadu_si512(bias + 48) : _mm512_setzero_si512();
}

/* n_quads quads of x (unsigned) against w ([n_quads][lanes][4] signed), lanes = 16 * blocks,
   from bias: out = the squashed sums + offset (0 or 128), as bytes. */
L8V void l8v_dense(uint8_t *out, const uint8_t *x, int n_quads, const int8_t *w, const int32_t *bias,
                   const float *m, const int16_t *lut, int half, int lanes, int n_out, int offset) {
    for (int o = 0; o < lanes; o += 64) {
        int blocks = (lanes - o) / 16 < 4 ? (lanes - o) / 16 : 4;
        __m512i a0, a1, a2, a3;
        l8v_bias_blocks(&a0, &a1, &a2, &a3, bias + o, blocks);
        for (int k = 0; k < n_quads; k++) {
            int32_t q;
            memcpy(&q, x + 4 * k, 4);
            __m512i v = _mm512_set1_epi32(q);
            const int8_t *wk = w + ((size_t)k * lanes + o) * 4;
            a0 = l8v_dot(a0, v, _mm512_loadu_si512(wk));
            if (blocks > 1) a1 = l8v_dot(a1, v, _mm512_loadu_si512(wk + 64));
            if (blocks > 2) a2 = l8v_dot(a2, v, _mm512_loadu_si512(wk + 128));
            if (blocks > 3) a3 = l8v_dot(a3, v, _mm512_loadu_si512(wk + 192));
        }
        __m512i acc[4] = {a0, a1, a2, a3};
        l8v_store_squashed(out, acc, blocks, o, m, lut, half, n_out, offset);
    }
}

/* l8v_dense for `digits` (2 or 4) inputs at once, x[d] into out[d]: each weight vector loaded
   serves them all (C5's 51 KB of weights do not fit in L1: one digit at a time, their loads from
   L2 were C5's bound; four at a time take a quarter as many loads a digit). The same sums, so the
   same bytes. */
static inline __attribute__((always_inline, target("avx512vnni"))) void l8v_dense_n(
        uint8_t *const out[4], const uint8_t *const x[4], const int digits, int n_quads, const int8_t *w,
        const int32_t *bias, const float *m, const int16_t *lut, int half, int lanes, int n_out, int offset) {
    for (int o = 0; o < lanes; o += 64) {
        int blocks = (lanes - o) / 16 < 4 ? (lanes - o) / 16 : 4;
        __m512i a0, a1, a2, a3;
        l8v_bias_blocks(&a0, &a1, &a2, &a3, bias + o, blocks);
        __m512i b0 = a0, b1 = a1, b2 = a2, b3 = a3, c0 = a0, c1 = a1, c2 = a2, c3 = a3, d0 = a0, d1 = a1, d2 = a2,
                d3 = a3;
        for (int k = 0; k < n_quads; k++) {
            int32_t qa, qb, qc = 0, qd = 0;
            memcpy(&qa, x[0] + 4 * k, 4);
            memcpy(&qb, x[1] + 4 * k, 4);
            if (digits > 2) {
                memcpy(&qc, x[2] + 4 * k, 4);
                memcpy(&qd, x[3] + 4 * k, 4);
            }
            __m512i va = _mm512_set1_epi32(qa), vb = _mm512_set1_epi32(qb);
            __m512i vc = _mm512_set1_epi32(qc), vd = _mm512_set1_epi32(qd);
            const int8_t *wk = w + ((size_t)k * lanes + o) * 4;
            /* Block j's weights, once, into every digit's sums. */
#define L8V_ALL(j)                                                         \
            {                                                              \
                __m512i wj = _mm512_loadu_si512(wk + 64 * (j));            \
                a##j = l8v_dot(a##j, va, wj);                              \
                b##j = l8v_dot(b##j, vb, wj);                              \
                if (digits > 2) {                                          \
                    c##j = l8v_dot(c##j, vc, wj);                          \
                    d##j = l8v_dot(d##j, vd, wj);                          \
                }                                                          \
            }
            L8V_ALL(0)
            if (blocks > 1) L8V_ALL(1)
            if (blocks > 2) L8V_ALL(2)
            if (blocks > 3) L8V_ALL(3)
#undef L8V_ALL
        }
        __m512i acc[4][4] = {{a0, a1, a2, a3}, {b0, b1, b2, b3}, {c0, c1, c2, c3}, {d0, d1, d2, d3}};
        for (int d = 0; d < digits; d++) l8v_store_squashed(out[d], acc[d], blocks, o, m, lut, half, n_out, offset);
    }
}

/* 16 quads of a row: lane x holds bytes f[x] .. f[x + 3] (32 bytes read from f). 128-bit lane k
   takes dwords k .. k + 3 (bytes 4 k .. 4 k + 15), and a byte shuffle within lanes picks each
   quad: three instructions, where four widened loads, shifts and ors took eleven. */
L8V __m512i l8v_row_quads16(const uint8_t *f) {
    const __m512i dwords = _mm512_setr_epi32(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6);
    const __m512i bytes = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6));
    __m512i row = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)f));
    return _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dwords, row), bytes);
}

/* A thread's scratch for l8v_digit, l8v_digit2 and l8v_digit4 (the S4, C5 and F6 of each digit but
   the last take 400 + 128 + 96 bytes from the end). */
static inline size_t l8v_scratch_bytes(void) {
    return 64 + 4 * (L8V_C1_ROW + 100 * 16) + 32 * L8V_FIELD_W + 60 * L8V_QUADS_W * 4 + 6 * 28 * 32 + L8V_S2_BYTES
           + 10 * 10 * 16 + 4 * (400 + 128 + 96) + 64;
}

/* One digit through C1 .. S4: returns S4 (+ 128, position by position), in the scratch, followed
   by 128 + 96 bytes for C5 and F6. */
L8V uint8_t *l8v_features(const unsigned char *digit, uint8_t *scratch, const l8v_net_t *net) {
    /* The int32 sums first, 64-byte aligned: a row of C1's [6][32], all of C3's [100][16]. */
    int32_t *sums1 = (int32_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    int32_t *sums3 = sums1 + L8V_C1_ROW;
    uint8_t *field = (uint8_t *)(sums3 + 100 * 16);                 /* [32][56] pixels, zero border */
    int32_t *quads = (int32_t *)(field + 32 * L8V_FIELD_W);         /* [32][48] */
    int32_t *vert = quads + 32 * L8V_QUADS_W;                       /* [28][48] */
    int8_t *c1 = (int8_t *)(vert + 28 * L8V_QUADS_W);               /* [28][6][32] */
    uint8_t *s2 = (uint8_t *)(c1 + 6 * 28 * 32);                    /* [14][14][6] + 8 bytes of slack */
    int8_t *c3 = (int8_t *)(s2 + L8V_S2_BYTES);                     /* [10][10][16] */
    uint8_t *s4 = (uint8_t *)(c3 + 10 * 10 * 16);                   /* [5][5][16] */
    /* then C5's [128] and F6's [96], for l8v_digit */
    /* The digit's rows in the field (its border stays zero), and their quads: lane x of a block
       holds bytes x..x+3 (l8v_row_quads16, whose 32-byte reads from the last block run into the
       next row, inside the field). Rows 0, 1, 30 and 31 are border only: their quads stay zero
       from the scratch's first clearing. vert's lane x of row y holds column x of rows
       y..y+3: the row before's shifted down a byte, row y + 3's pixel put on top. */
    for (int y = 0; y < 28; y++) memcpy(field + (y + 2) * L8V_FIELD_W + 2, digit + y * 28, 28);
    for (int y = 2; y < 30; y++)
        for (int x0 = 0; x0 < L8V_QUADS_W; x0 += 16)
            _mm512_storeu_si512(quads + y * L8V_QUADS_W + x0, l8v_row_quads16(field + y * L8V_FIELD_W + x0));
    for (int x0 = 0; x0 < L8V_QUADS_W; x0 += 16) {
        __m512i column = _mm512_setzero_si512();
        for (int y = 0; y < 31; y++) {
            __m512i pixels = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(field + y * L8V_FIELD_W + x0)));
            column = _mm512_or_si512(_mm512_srli_epi32(column, 8), _mm512_slli_epi32(pixels, 24));
            if (y >= 3) _mm512_storeu_si512(vert + (y - 3) * L8V_QUADS_W + x0, column);
        }
    }
    /* C1: for each row, the 6 maps' sums of its 2 blocks of 16 positions over the 7 quads of
       their windows (twelve chains of vpdpbusd, each input vector loaded serving six maps), then
       the row's 192 sums squashed at once. */
    for (int y = 0; y < 28; y++) {
        __m512i a[2][6], in[2][7];
        for (int h = 0; h < 2; h++) {
            const int32_t *v = vert + y * L8V_QUADS_W + 16 * h, *q = quads + (y + 4) * L8V_QUADS_W + 16 * h;
            for (int kx = 0; kx < 5; kx++) in[h][kx] = _mm512_loadu_si512(v + kx);
            in[h][5] = _mm512_loadu_si512(q);
            in[h][6] = _mm512_loadu_si512(q + 4);
            for (int c = 0; c < 6; c++) a[h][c] = _mm512_set1_epi32(net->c1_b[c]);
        }
        for (int c = 0; c < 6; c++)
            for (int j = 0; j < 7; j++) {
                __m512i w = _mm512_set1_epi32(net->c1_w[c * 7 + j]);
                a[0][c] = l8v_dot(a[0][c], in[0][j], w);
                a[1][c] = l8v_dot(a[1][c], in[1][j], w);
            }
        for (int h = 0; h < 2; h++)
            for (int c = 0; c < 6; c++) _mm512_store_si512(sums1 + c * 32 + 16 * h, a[h][c]);
        l8v_squash_stage(c1 + y * L8V_C1_ROW, sums1, L8V_C1_ROW, net->c1_m_lanes, L8V_C1_ROW, net->c1_lut,
                         net->c1_half, net->c1_steps, net->c1_stepped);
    }
    /* S2: each 2x2 block's sum through its map's table, + 128 (by steps where the CPU has VBMI and
       BITALG and the tables allow, else gathered 16 lanes at a time), stored position by position. */
    if (l8_use_vbmi && net->s2_stepped) {
        l8b_pool_s2(s2, c1, net->s2_steps, net->s2_falling);
    } else {
        uint8_t pooled[16][6][16];
        for (int y = 0; y < 14; y++)
            for (int c = 0; c < 6; c++) {
                __m512i t = _mm512_add_epi32(l8_pool_index(c1, c, y), _mm512_set1_epi32(c * 1017));
                __m512i got = _mm512_i32gather_epi32(t, (const void *)net->s2_lut, 2);
                got = _mm512_add_epi32(_mm512_srai_epi32(_mm512_slli_epi32(got, 16), 16), _mm512_set1_epi32(128));
                _mm_storeu_si128((__m128i *)pooled[y][c], _mm512_cvtepi32_epi8(got));
            }
        l8_s2_positions(s2, pooled);
    }
    memset(s2 + 14 * 14 * 6, 0, 8);
    /* C3: a row's 10 positions at a time (ten chains of vpdpbusd: five left it waiting on their
       latency), 16 maps in the lanes, 5 rows x 8 quads of S2; all 1,600 sums, then squashed at
       once. */
    for (int y = 0; y < 10; y++) {
        __m512i a[10];
        for (int x = 0; x < 10; x++) a[x] = _mm512_loadu_si512(net->c3_b);
        for (int i = 0; i < 5; i++) {
            const uint8_t *row = s2 + (y + i) * 14 * 6;
            const int8_t *wi = net->c3_w + (size_t)i * 8 * 64;
            for (int d = 0; d < 8; d++) {
                __m512i w = _mm512_loadu_si512(wi + d * 64);
                for (int x = 0; x < 10; x++) {
                    int32_t q;
                    memcpy(&q, row + 6 * x + 4 * d, 4);
                    a[x] = l8v_dot(a[x], _mm512_set1_epi32(q), w);
                }
            }
        }
        for (int x = 0; x < 10; x++) _mm512_store_si512(sums3 + (y * 10 + x) * 16, a[x]);
    }
    l8v_squash_stage(c3, sums3, 100 * 16, net->c3_m, 16, net->c3_lut, net->c3_half, net->c3_steps, net->c3_stepped);
    /* S4: each map's 2x2 sums through its table, + 128: by steps where the CPU has VBMI and BITALG
       and the tables allow, else gathered, 16 maps at a time. */
    if (l8_use_vbmi && net->s4_stepped) {
        l8b_pool_s4(s4, c3, net->s4_steps, net->s4_falling);
        return s4;
    }
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
    return s4;
}

/* One digit: f6_out (84) int8 codes. */
L8V void l8v_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8v_net_t *net) {
    uint8_t *s4 = l8v_features(digit, scratch, net), *c5 = s4 + 400, *f6 = c5 + 128;
    l8v_dense(c5, s4, 100, net->c5_w, net->c5_b, net->c5_m, net->c5_lut, net->c5_half, 128, 120, 128);
    l8v_dense(f6, c5, 30, net->f6_w, net->f6_b, net->f6_m, net->f6_lut, net->f6_half, 96, 84, 0);
    memcpy(f6_out, f6, 84);
}

/* `n` digits (2 or 4): their codes, the same bytes as l8v_digit's, with C5 and F6 reading each
   weight once for all of them. */
static inline __attribute__((always_inline, target("avx512vnni"))) void l8v_digits(
        int8_t *const f6_out[4], const unsigned char *const digit[4], const int n, uint8_t *scratch,
        const l8v_net_t *net) {
    enum { KEPT = 400 + 128 + 96 };
    const uint8_t *s4[4] = {0};  /* n = 2: the last two stay unset and unread */
    uint8_t *c5[4] = {0}, *f6[4] = {0};
    for (int d = 0; d < n; d++) {
        uint8_t *own = l8v_features(digit[d], scratch, net);
        if (d < n - 1)  /* the next digit's features overwrite this one's: S4 moves to a slot of its own */
            own = (uint8_t *)memcpy(scratch + l8v_scratch_bytes() - (d + 1) * KEPT, own, 400);
        s4[d] = own;
        c5[d] = own + 400;
        f6[d] = own + 400 + 128;
    }
    const uint8_t *const c5_in[4] = {c5[0], c5[1], c5[2], c5[3]};
    l8v_dense_n(c5, s4, n, 100, net->c5_w, net->c5_b, net->c5_m, net->c5_lut, net->c5_half, 128, 120, 128);
    l8v_dense_n(f6, c5_in, n, 30, net->f6_w, net->f6_b, net->f6_m, net->f6_lut, net->f6_half, 96, 84, 0);
    for (int d = 0; d < n; d++) memcpy(f6_out[d], f6[d], 84);
}

L8V void l8v_digit2(int8_t *f6_a, int8_t *f6_b, const unsigned char *digit_a, const unsigned char *digit_b,
                    uint8_t *scratch, const l8v_net_t *net) {
    int8_t *const out[4] = {f6_a, f6_b, f6_a, f6_b};
    const unsigned char *const in[4] = {digit_a, digit_b, digit_a, digit_b};
    l8v_digits(out, in, 2, scratch, net);
}

L8V void l8v_digit4(int8_t *const f6_out[4], const unsigned char *const digit[4], uint8_t *scratch,
                    const l8v_net_t *net) {
    l8v_digits(f6_out, digit, 4, scratch, net);
}
#else
/* Levels without AVX-512: the VNNI pass is never chosen (l8_use_vnni stays 0); these keep the
   Cython module's one source for every level. */
typedef struct {
    const int32_t *c1_w, *c1_b; const float *c1_m; const int16_t *c1_lut; int c1_half;
    const float *c1_m_lanes; const uint8_t *c1_steps; int c1_stepped;
    const int16_t *s2_lut; const uint8_t *s2_steps; unsigned s2_falling; int s2_stepped; const int8_t *c3_w; const int32_t *c3_b; const float *c3_m;
    const int16_t *c3_lut; int c3_half; const uint8_t *c3_steps; int c3_stepped; const int16_t *s4_lut;
    const uint8_t *s4_steps; unsigned s4_falling; int s4_stepped; const int8_t *c5_w;
    const int32_t *c5_b; const float *c5_m; const int16_t *c5_lut; int c5_half; const int8_t *f6_w;
    const int32_t *f6_b; const float *f6_m; const int16_t *f6_lut; int f6_half;
} l8v_net_t;
static inline size_t l8v_scratch_bytes(void) { return 0; }
static inline void l8v_squash_stage(int8_t *out, const int32_t *acc, int n, const float *m, int period,
                                    const int16_t *lut, int half, const uint8_t *steps, int stepped) {
    (void)out; (void)acc; (void)n; (void)m; (void)period; (void)lut; (void)half; (void)steps; (void)stepped;
}
static inline void l8v_digit(int8_t *f6_out, const unsigned char *digit, uint8_t *scratch, const l8v_net_t *net) {
    (void)f6_out; (void)digit; (void)scratch; (void)net;
}
static inline void l8v_digit2(int8_t *f6_a, int8_t *f6_b, const unsigned char *digit_a, const unsigned char *digit_b,
                              uint8_t *scratch, const l8v_net_t *net) {
    (void)f6_a; (void)f6_b; (void)digit_a; (void)digit_b; (void)scratch; (void)net;
}
static inline void l8v_digit4(int8_t *const f6_out[4], const unsigned char *const digit[4], uint8_t *scratch,
                              const l8v_net_t *net) {
    (void)f6_out; (void)digit; (void)scratch; (void)net;
}
#endif

#endif
