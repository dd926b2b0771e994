/* The convolutions' hot loops, over l5_simd.h's 8-float vectors; driven by conv.pyx. */
#ifndef L5_CONV_H
#define L5_CONV_H
#include "l5_simd.h"

/* The 8-float vectors starting at u0 + 8 v (v < nv) of a run of `length` floats (>= 8);
   a vector that would cross the end starts at length - 8 instead (overlapping the one
   before it, with the same values), so nothing past the run is read or written. */
static inline Py_ssize_t l5_vector_start(Py_ssize_t u0, int v, Py_ssize_t length) {
    Py_ssize_t u = u0 + 8 * v;
    return u + 8 <= length ? u : length - 8;
}

#ifdef L5_WIDE
/* The v4 level: 16-lane vectors, the last of a run masked to its end (so runs of any length,
   even under 16, take the same loop); sums in the 8-lane loops' order, lane by lane. */

/* l5_forward_block on 16 lanes: nv vectors from u0, the last masked to `length`. */
L5_ALWAYS_INLINE void l5_forward_block16(float *out, Py_ssize_t u0, const int nv, Py_ssize_t length,
                                         const float *x, Py_ssize_t map_size, const int64_t *in_map,
                                         Py_ssize_t first, Py_ssize_t stop, const float *w,
                                         const Py_ssize_t k, Py_ssize_t width, float bias) {
    __mmask16 last = l5_first16(length - (u0 + 16 * (nv - 1)));
    l5_v16 acc[8];
    for (int v = 0; v < nv; v++) acc[v] = l5_set1_16(bias);
    for (Py_ssize_t p = first; p < stop; p++) {
        const float *xm = x + in_map[p] * map_size + u0, *wp = w + p * k * k;
        for (Py_ssize_t ki = 0; ki < k; ki++)
            for (Py_ssize_t kj = 0; kj < k; kj++) {
                l5_v16 wv = l5_set1_16(wp[ki * k + kj]);
                const float *src = xm + ki * width + kj;
                for (int v = 0; v < nv - 1; v++) acc[v] = l5_fma16(wv, l5_load16(src + 16 * v), acc[v]);
                acc[nv - 1] = l5_fma16(wv, l5_maskload16(src + 16 * (nv - 1), last), acc[nv - 1]);
            }
    }
    for (int v = 0; v < nv - 1; v++) l5_store16(out + u0 + 16 * v, acc[v]);
    l5_maskstore16(out + u0 + 16 * (nv - 1), last, acc[nv - 1]);
}

static void l5_forward_map(float *out, Py_ssize_t span, const float *x, Py_ssize_t map_size,
                           const int64_t *in_map, Py_ssize_t first, Py_ssize_t stop,
                           const float *w, Py_ssize_t k, Py_ssize_t width, float bias) {
    /* Up to eight vectors at a time (eight independent chains of multiply-adds keep both FMA
       units busy); the last block takes what is left, whole vectors and one masked. LeNet's
       5x5 kernels get loops of constant length, unrolled. */
    for (Py_ssize_t u0 = 0; u0 < span; u0 += 128) {
        Py_ssize_t left = (span - u0 + 15) / 16;
#define L5_BLOCK(nv, kk) case nv: l5_forward_block16(out, u0, nv, span, x, map_size, in_map, first, stop, w, kk, width, bias); break;
#define L5_BLOCKS(kk) switch (left < 8 ? left : 8) { L5_BLOCK(1, kk) L5_BLOCK(2, kk) L5_BLOCK(3, kk) L5_BLOCK(4, kk) \
                                                     L5_BLOCK(5, kk) L5_BLOCK(6, kk) L5_BLOCK(7, kk) L5_BLOCK(8, kk) }
        if (k == 5) L5_BLOCKS(5) else L5_BLOCKS(k)
#undef L5_BLOCKS
#undef L5_BLOCK
    }
}

/* l5_input_grad_block on 16 lanes: nv vectors from u0, the last masked to `length`. */
L5_ALWAYS_INLINE void l5_input_grad_block16(float *dx, Py_ssize_t u0, const int nv, Py_ssize_t length,
                                            const float *ext, Py_ssize_t ext_len, Py_ssize_t lead,
                                            const int64_t *conn_start, const int64_t *in_map,
                                            Py_ssize_t n_out, Py_ssize_t c, const float *w,
                                            const Py_ssize_t k, Py_ssize_t width) {
    __mmask16 last = l5_first16(length - (u0 + 16 * (nv - 1)));
    l5_v16 acc[8];
    for (int v = 0; v < nv; v++) acc[v] = l5_set1_16(0.0f);
    for (Py_ssize_t o = 0; o < n_out; o++)
      for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++) {
        if (in_map[p] != c) continue;
        const float *g = ext + o * ext_len + lead + u0, *wp = w + p * k * k;
        for (Py_ssize_t ki = 0; ki < k; ki++)
            for (Py_ssize_t kj = 0; kj < k; kj++) {
                l5_v16 wv = l5_set1_16(wp[ki * k + kj]);
                const float *src = g - ki * width - kj;
                for (int v = 0; v < nv - 1; v++) acc[v] = l5_fma16(wv, l5_load16(src + 16 * v), acc[v]);
                acc[nv - 1] = l5_fma16(wv, l5_maskload16(src + 16 * (nv - 1), last), acc[nv - 1]);
            }
    }
    for (int v = 0; v < nv - 1; v++) l5_store16(dx + u0 + 16 * v, acc[v]);
    l5_maskstore16(dx + u0 + 16 * (nv - 1), last, acc[nv - 1]);
}

static void l5_input_grad_map(float *dx, Py_ssize_t map_len, const float *ext, Py_ssize_t ext_len,
                              Py_ssize_t lead, const int64_t *conn_start, const int64_t *in_map,
                              Py_ssize_t n_out, Py_ssize_t c, const float *w, Py_ssize_t k,
                              Py_ssize_t width) {
    for (Py_ssize_t u0 = 0; u0 < map_len; u0 += 128) {  /* as l5_forward_map */
        Py_ssize_t left = (map_len - u0 + 15) / 16;
#define L5_BLOCK(nv, kk) case nv: l5_input_grad_block16(dx, u0, nv, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, kk, width); break;
#define L5_BLOCKS(kk) switch (left < 8 ? left : 8) { L5_BLOCK(1, kk) L5_BLOCK(2, kk) L5_BLOCK(3, kk) L5_BLOCK(4, kk) \
                                                     L5_BLOCK(5, kk) L5_BLOCK(6, kk) L5_BLOCK(7, kk) L5_BLOCK(8, kk) }
        if (k == 5) L5_BLOCKS(5) else L5_BLOCKS(k)
#undef L5_BLOCKS
#undef L5_BLOCK
    }
}
#else
/* Forward, one output map in row-padded layout, nv vectors from u0:
   out[u] = bias + sum over pairs p in [first, stop) and taps of w[p][tap] * map_p[tap offset + u],
   map_p = x + in_map[p] * map_size. The sum runs in the reference's order: bias, then pairs,
   kernel rows, kernel columns. */
L5_ALWAYS_INLINE void l5_forward_block(float *out, Py_ssize_t u0, const int nv, Py_ssize_t length,
                                       const float *x, Py_ssize_t map_size, const int64_t *in_map,
                                       Py_ssize_t first, Py_ssize_t stop, const float *w,
                                       Py_ssize_t k, Py_ssize_t width, float bias) {
    Py_ssize_t at[8];
    l5_v8 acc[8];
    for (int v = 0; v < nv; v++) { at[v] = l5_vector_start(u0, v, length); acc[v] = l5_set1(bias); }
    for (Py_ssize_t p = first; p < stop; p++) {
        const float *xm = x + in_map[p] * map_size, *wp = w + p * k * k;
        for (Py_ssize_t ki = 0; ki < k; ki++)
            for (Py_ssize_t kj = 0; kj < k; kj++) {
                l5_v8 wv = l5_set1(wp[ki * k + kj]);
                const float *src = xm + ki * width + kj;
                for (int v = 0; v < nv; v++) acc[v] = l5_fma(wv, l5_load(src + at[v]), acc[v]);
            }
    }
    for (int v = 0; v < nv; v++) l5_store(out + at[v], acc[v]);
}

static void l5_forward_map(float *out, Py_ssize_t span, const float *x, Py_ssize_t map_size,
                           const int64_t *in_map, Py_ssize_t first, Py_ssize_t stop,
                           const float *w, Py_ssize_t k, Py_ssize_t width, float bias) {
    if (span < 8) {  /* maps too small for one vector */
        for (Py_ssize_t u = 0; u < span; u++) {
            float acc = bias;
            for (Py_ssize_t p = first; p < stop; p++)
                for (Py_ssize_t t = 0; t < k * k; t++)
                    acc += w[p * k * k + t] * x[in_map[p] * map_size + (t / k) * width + t % k + u];
            out[u] = acc;
        }
        return;
    }
    /* Eight vectors at a time: each tap's multiply-add into a vector waits for the one
       before it (the multiply-add's latency), so eight independent sums keep both FMA
       units busy where four would leave them waiting. */
    Py_ssize_t u0 = 0;
    for (; u0 + 64 <= span; u0 += 64)
        l5_forward_block(out, u0, 8, span, x, map_size, in_map, first, stop, w, k, width, bias);
    for (; u0 + 32 <= span; u0 += 32)
        l5_forward_block(out, u0, 4, span, x, map_size, in_map, first, stop, w, k, width, bias);
    for (; u0 < span; u0 += 8)
        l5_forward_block(out, u0, 1, span, x, map_size, in_map, first, stop, w, k, width, bias);
}

/* Input gradient of input map c, nv vectors from u0 of the map (H * W floats):
   dx[u] = sum over the pairs p reading map c, and taps, of w[p][tap] * g_p[u - tap offset],
   g_p the row-padded output gradient of the output map o that pair p belongs to
   (conn_start[o] <= p < conn_start[o + 1]), stored at ext + o * ext_len
   + lead behind `lead` zeros and followed by zeros up to ext_len. The same terms in the same
   order as sending each output gradient back through its kernels one after another. */
L5_ALWAYS_INLINE void l5_input_grad_block(float *dx, Py_ssize_t u0, const int nv, Py_ssize_t length,
                                          const float *ext, Py_ssize_t ext_len, Py_ssize_t lead,
                                          const int64_t *conn_start, const int64_t *in_map,
                                          Py_ssize_t n_out, Py_ssize_t c, const float *w,
                                          Py_ssize_t k, Py_ssize_t width) {
    Py_ssize_t at[8];
    l5_v8 acc[8];
    for (int v = 0; v < nv; v++) { at[v] = l5_vector_start(u0, v, length); acc[v] = l5_set1(0.0f); }
    for (Py_ssize_t o = 0; o < n_out; o++)
      for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++) {
        if (in_map[p] != c) continue;
        const float *g = ext + o * ext_len + lead, *wp = w + p * k * k;
        for (Py_ssize_t ki = 0; ki < k; ki++)
            for (Py_ssize_t kj = 0; kj < k; kj++) {
                l5_v8 wv = l5_set1(wp[ki * k + kj]);
                const float *src = g - ki * width - kj;
                for (int v = 0; v < nv; v++) acc[v] = l5_fma(wv, l5_load(src + at[v]), acc[v]);
            }
    }
    for (int v = 0; v < nv; v++) l5_store(dx + at[v], acc[v]);
}

static void l5_input_grad_map(float *dx, Py_ssize_t map_len, const float *ext, Py_ssize_t ext_len,
                              Py_ssize_t lead, const int64_t *conn_start, const int64_t *in_map,
                              Py_ssize_t n_out, Py_ssize_t c, const float *w, Py_ssize_t k,
                              Py_ssize_t width) {
    if (map_len < 8) {
        for (Py_ssize_t u = 0; u < map_len; u++) {
            float acc = 0.0f;
            for (Py_ssize_t o = 0; o < n_out; o++)
                for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++) {
                    if (in_map[p] != c) continue;
                    for (Py_ssize_t t = 0; t < k * k; t++)
                        acc += w[p * k * k + t] * ext[o * ext_len + lead + u - (t / k) * width - t % k];
                }
            dx[u] = acc;
        }
        return;
    }
    Py_ssize_t u0 = 0;  /* eight vectors at a time, as l5_forward_map */
    for (; u0 + 64 <= map_len; u0 += 64)
        l5_input_grad_block(dx, u0, 8, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
    for (; u0 + 32 <= map_len; u0 += 32)
        l5_input_grad_block(dx, u0, 4, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
    for (; u0 < map_len; u0 += 8)
        l5_input_grad_block(dx, u0, 1, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
}

#endif /* L5_WIDE */

#ifndef L5_WIDE
/* Kernel gradient, `rows` (1 or 2) kernel rows of k taps: total[r * k + kj] +=
   sum_{i < length} a[i] * b[r * width + i + kj], a the row-padded output gradient, b the input
   map at the first row's first tap. Up to five taps of each row at a time share each load
   of a, their sums in registers: float32 in 8 lanes restarted every 256 elements (as
   _dot.pxi's dot), then double. Two rows give ten independent sums: one row's five left the
   FMA units waiting on each other's results. Each sum sees the same terms in the same
   order either way. */
L5_ALWAYS_INLINE void l5_taps_add(double *total, Py_ssize_t k, const float *a, const float *b,
                                  Py_ssize_t width, Py_ssize_t length, const int n, const int rows) {
    for (Py_ssize_t start = 0; start < length; start += 256) {
        Py_ssize_t stop = start + 256 < length ? start + 256 : length, i = start;
        l5_v8 s[2][5];
        float tail[2][5] = {{0.0f}};
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < n; q++) s[r][q] = l5_set1(0.0f);
        for (; i + 8 <= stop; i += 8) {
            l5_v8 va = l5_load(a + i);
            for (int r = 0; r < rows; r++)
                for (int q = 0; q < n; q++) s[r][q] = l5_fma(va, l5_load(b + r * width + i + q), s[r][q]);
        }
        for (; i < stop; i++)
            for (int r = 0; r < rows; r++)
                for (int q = 0; q < n; q++) tail[r][q] += a[i] * b[r * width + i + q];
        /* The rows x n sums reduced eight at a time (l5_hsum8); unused slots hold zeros. */
        l5_v8 all[16];
        float sums[16];
        for (int j = 0; j < 16; j++) all[j] = j < rows * n ? s[j / n][j % n] : l5_set1(0.0f);
        l5_hsum8(all, sums);
        if (rows * n > 8) l5_hsum8(all + 8, sums + 8);
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < n; q++) total[r * k + q] += (double)(sums[r * n + q] + tail[r][q]);
    }
}

/* Inlined into each call with its `rows` a constant, on purpose: left to the compiler,
   whether it specialises the function for each call depends on the whole file's size,
   and the specialised and generic versions round differently. */
L5_ALWAYS_INLINE void l5_rows_taps_add(double *total, const float *a, const float *b, Py_ssize_t width,
                                       Py_ssize_t length, Py_ssize_t k, const int rows) {
    Py_ssize_t kj = 0;
    for (; kj + 5 <= k; kj += 5) l5_taps_add(total + kj, k, a, b + kj, width, length, 5, rows);
    switch (k - kj) {
        case 4: l5_taps_add(total + kj, k, a, b + kj, width, length, 4, rows); break;
        case 3: l5_taps_add(total + kj, k, a, b + kj, width, length, 3, rows); break;
        case 2: l5_taps_add(total + kj, k, a, b + kj, width, length, 2, rows); break;
        case 1: l5_taps_add(total + kj, k, a, b + kj, width, length, 1, rows); break;
    }
}

/* Kernel gradient of one map pair: total (k x k) += the row-padded output gradient a
   correlated with the input map b, two kernel rows at a time. */
static void l5_kernel_gradient_add(double *total, const float *a, const float *b, Py_ssize_t k,
                                   Py_ssize_t width, Py_ssize_t span) {
    Py_ssize_t ki = 0;
    for (; ki + 2 <= k; ki += 2) l5_rows_taps_add(total + ki * k, a, b + ki * width, width, span, k, 2);
    if (ki < k) l5_rows_taps_add(total + ki * k, a, b + ki * width, width, span, k, 1);
}
#endif /* not L5_WIDE */

/* wd[(o * n_in + c) * k * k + tap] = the kernel map o applies to input map c (summed if the
   table lists the pair twice, 0 if never): a sparse table's kernels as a dense layer's. */
static void l5_dense_kernels(float *wd, const float *w, const int64_t *conn_start, const int64_t *conn_in,
                             Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t k) {
    Py_ssize_t kk = k * k;
    memset(wd, 0, sizeof(float) * n_out * n_in * kk);
    for (Py_ssize_t o = 0; o < n_out; o++)
        for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++)
            for (Py_ssize_t t = 0; t < kk; t++) wd[(o * n_in + conn_in[p]) * kk + t] += w[p * kk + t];
}

#ifdef L5_WIDE
/* Input gradients of nc (<= 6) input maps from c0, positions u0 .. u0 + 31 (masked to map_len):
   the sums of all nc maps in registers, so that each output-gradient vector loaded (at a tap's
   offset, mid cache line) serves nc maps, not one. wd: l5_dense_kernels. */
L5_ALWAYS_INLINE void l5_input_grad_maps16(float *dx, Py_ssize_t map_len, Py_ssize_t u0, const float *ext,
                                           Py_ssize_t ext_len, Py_ssize_t lead, const float *wd,
                                           Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t c0, const int nc,
                                           const Py_ssize_t k, Py_ssize_t width) {
    __mmask16 m0 = l5_first16(map_len - u0), m1 = l5_first16(map_len - u0 - 16);
    l5_v16 acc[6][2];
    for (int c = 0; c < nc; c++) acc[c][0] = acc[c][1] = l5_set1_16(0.0f);
    for (Py_ssize_t o = 0; o < n_out; o++) {
        const float *g = ext + o * ext_len + lead + u0, *wo = wd + (o * n_in + c0) * k * k;
        for (Py_ssize_t ki = 0; ki < k; ki++)
            for (Py_ssize_t kj = 0; kj < k; kj++) {
                const float *src = g - ki * width - kj;
                l5_v16 va = l5_maskload16(src, m0), vb = l5_maskload16(src + 16, m1);
                for (int c = 0; c < nc; c++) {
                    l5_v16 wv = l5_set1_16(wo[c * k * k + ki * k + kj]);
                    acc[c][0] = l5_fma16(wv, va, acc[c][0]);
                    acc[c][1] = l5_fma16(wv, vb, acc[c][1]);
                }
            }
    }
    for (int c = 0; c < nc; c++) {
        l5_maskstore16(dx + (c0 + c) * map_len + u0, m0, acc[c][0]);
        l5_maskstore16(dx + (c0 + c) * map_len + u0 + 16, m1, acc[c][1]);
    }
}
#endif

/* One digit's input gradients, every input map: dx (n_in maps of map_len floats) from ext
   (the digit's output gradients, laid out as l5_input_grad_map reads them). At v4, six input
   maps at a time over wd (l5_dense_kernels); below, map by map over the table's pairs. */
static void l5_input_grad_digit(float *dx, Py_ssize_t map_len, const float *ext, Py_ssize_t ext_len,
                                Py_ssize_t lead, const int64_t *conn_start, const int64_t *in_map,
                                const float *w, const float *wd, Py_ssize_t n_out, Py_ssize_t n_in,
                                Py_ssize_t k, Py_ssize_t width) {
#ifdef L5_WIDE
    (void)conn_start; (void)in_map; (void)w;
    for (Py_ssize_t c0 = 0; c0 < n_in; c0 += 6) {
        Py_ssize_t nc = n_in - c0 < 6 ? n_in - c0 : 6;
        for (Py_ssize_t u0 = 0; u0 < map_len; u0 += 32) {
#define L5_MAPS(n, kk) case n: l5_input_grad_maps16(dx, map_len, u0, ext, ext_len, lead, wd, n_out, n_in, c0, n, kk, width); break;
#define L5_ALL_MAPS(kk) switch (nc) { L5_MAPS(1, kk) L5_MAPS(2, kk) L5_MAPS(3, kk) L5_MAPS(4, kk) L5_MAPS(5, kk) L5_MAPS(6, kk) }
            if (k == 5) L5_ALL_MAPS(5) else L5_ALL_MAPS(k)
#undef L5_ALL_MAPS
#undef L5_MAPS
        }
    }
#else
    (void)wd;
    for (Py_ssize_t c = 0; c < n_in; c++)
        l5_input_grad_map(dx + c * map_len, map_len, ext, ext_len, lead, conn_start, in_map, n_out, c, w, k, width);
#endif
}

/* Kernel gradients of one map pair over nd digits: total (k x k) += sum over digits d of the
   row-padded output gradient a + d * a_step correlated with the input map b + d * b_step. */
#ifdef L5_WIDE
/* Each sum is kept in 16 lanes across all nd digits and reduced once: float32 across at most
   GRAD_DIGITS digits (conv.pyx), double beyond. */

/* total (5 x 5) += LeNet's 5x5 kernel gradients: 25 sums in registers, each tap a constant
   offset from one of five row pointers. */
static inline void l5_taps25_block16(double *total, const float *a, Py_ssize_t a_step, const float *b,
                                     Py_ssize_t b_step, Py_ssize_t nd, Py_ssize_t width, Py_ssize_t span) {
    l5_v16 acc[25];
    for (int t = 0; t < 25; t++) acc[t] = l5_set1_16(0.0f);
    for (Py_ssize_t d = 0; d < nd; d++) {
        const float *ad = a + d * a_step, *bd = b + d * b_step;
        Py_ssize_t i = 0;
        for (; i + 16 <= span; i += 16) {
            l5_v16 va = l5_load16(ad + i);
            for (int ki = 0; ki < 5; ki++) {
                const float *r = bd + ki * width + i;
                for (int kj = 0; kj < 5; kj++) acc[ki * 5 + kj] = l5_fma16(va, l5_load16(r + kj), acc[ki * 5 + kj]);
            }
        }
        if (i < span) {
            __mmask16 m = l5_first16(span - i);
            l5_v16 va = l5_maskload16(ad + i, m);
            for (int ki = 0; ki < 5; ki++) {
                const float *r = bd + ki * width + i;
                for (int kj = 0; kj < 5; kj++)
                    acc[ki * 5 + kj] = l5_fma16(va, l5_maskload16(r + kj, m), acc[ki * 5 + kj]);
            }
        }
    }
    for (int t = 0; t < 25; t++) total[t] += (double)_mm512_reduce_add_ps((__m512)acc[t]);
}

/* Any other kernel size: total[t] += the sums of the `count` (<= 8) taps whose offsets are
   off, 8 sums in registers. */
static inline void l5_taps8_block16(double *total, const Py_ssize_t off[8], int count, const float *a,
                                    Py_ssize_t a_step, const float *b, Py_ssize_t b_step, Py_ssize_t nd,
                                    Py_ssize_t span) {
    l5_v16 acc[8];
    for (int t = 0; t < 8; t++) acc[t] = l5_set1_16(0.0f);
    for (Py_ssize_t d = 0; d < nd; d++) {
        const float *ad = a + d * a_step, *bd = b + d * b_step;
        for (Py_ssize_t i = 0; i < span; i += 16) {
            __mmask16 m = l5_first16(span - i);
            l5_v16 va = l5_maskload16(ad + i, m);
            for (int t = 0; t < 8; t++) acc[t] = l5_fma16(va, l5_maskload16(bd + off[t] + i, m), acc[t]);
        }
    }
    for (int t = 0; t < count; t++) total[t] += (double)_mm512_reduce_add_ps((__m512)acc[t]);
}
#endif

static void l5_kernel_gradient_block(double *total, const float *a, Py_ssize_t a_step, const float *b,
                                     Py_ssize_t b_step, Py_ssize_t nd, Py_ssize_t k, Py_ssize_t width,
                                     Py_ssize_t span) {
#ifdef L5_WIDE
    /* 16 lanes over positions, every tap's sum in a register across the digits: no reduction
       per digit. */
    if (k == 5) {
        l5_taps25_block16(total, a, a_step, b, b_step, nd, width, span);
        return;
    }
    for (Py_ssize_t t0 = 0; t0 < k * k; t0 += 8) {
        Py_ssize_t off[8];
        int count = k * k - t0 < 8 ? (int)(k * k - t0) : 8;
        /* Taps past count repeat the first one's offset (read, never stored). */
        for (int t = 0; t < 8; t++) off[t] = ((t0 + (t < count ? t : 0)) / k) * width + (t0 + (t < count ? t : 0)) % k;
        l5_taps8_block16(total + t0, off, count, a, a_step, b, b_step, nd, span);
    }
#else
    for (Py_ssize_t d = 0; d < nd; d++) l5_kernel_gradient_add(total, a + d * a_step, b + d * b_step, k, width, span);
#endif
}

/* --- channels-last: the output maps in the lanes ------------------------------------------
   At v4 the positional loops above are held back by their loads: a 16-float vector at an
   offset of one tap starts mid cache line, and such loads cost two. With L5_LANES output maps
   in the lanes of one vector, every vector load is of repacked weights or transposed output
   gradients, aligned, and the inputs are single floats broadcast. Used where the output maps
   fill the lanes (l5_channels_last); not at v3, whose loops keep the shipped models' bits. */

static int l5_channels_last(Py_ssize_t n_out) {
#ifdef L5_WIDE
    return n_out >= 12;
#else
    (void)n_out;
    return 0;
#endif
}

/* Output-map groups of L5_LANES: group g holds maps g * L5_LANES .. + L5_LANES - 1. */
static Py_ssize_t l5_map_groups(Py_ssize_t n_out) { return (n_out + L5_LANES - 1) / L5_LANES; }

/* wr[((g * n_in + c) * k * k + tap) * L5_LANES + lane] = the kernel map g * L5_LANES + lane
   applies to input map c (summed if the table lists the pair twice, 0 if never), and
   bias[g * L5_LANES + lane] = b of that map (0 past n_out). */
static void l5_repack_channels_last(float *wr, float *bias, const float *w, const float *b,
                                    const int64_t *conn_start, const int64_t *conn_in,
                                    Py_ssize_t n_out, Py_ssize_t n_in, Py_ssize_t k) {
    Py_ssize_t kk = k * k, groups = l5_map_groups(n_out);
    memset(wr, 0, sizeof(float) * groups * n_in * kk * L5_LANES);
    memset(bias, 0, sizeof(float) * groups * L5_LANES);
    for (Py_ssize_t o = 0; o < n_out; o++) {
        Py_ssize_t g = o / L5_LANES, lane = o % L5_LANES;
        bias[o] = b[o];
        for (Py_ssize_t p = conn_start[o]; p < conn_start[o + 1]; p++)
            for (Py_ssize_t t = 0; t < kk; t++)
                wr[((g * n_in + conn_in[p]) * kk + t) * L5_LANES + lane] += w[p * kk + t];
    }
}

/* np (<= 12) positions of one output row, all maps of a group: tile[q * L5_LANES + lane] =
   bias + sum over input maps, kernel rows and columns of x[c][ki * width + kj + q] * wr[...].
   x: the input maps at the row's first position. */
L5_ALWAYS_INLINE void l5_cl_forward_block(float *tile, const float *x, Py_ssize_t map_size,
                                          Py_ssize_t n_in, const float *wr, const float *bias,
                                          Py_ssize_t k, Py_ssize_t width, const int np) {
    l5_vw acc[12];
    for (int q = 0; q < np; q++) acc[q] = l5_loadw(bias);
    for (Py_ssize_t c = 0; c < n_in; c++)
        for (Py_ssize_t ki = 0; ki < k; ki++) {
            const float *r = x + c * map_size + ki * width, *wk = wr + (c * k + ki) * k * L5_LANES;
            for (Py_ssize_t kj = 0; kj < k; kj++) {
                l5_vw wv = l5_loadw(wk + kj * L5_LANES);
                for (int q = 0; q < np; q++) acc[q] = l5_fmaw(l5_setw(r[kj + q]), wv, acc[q]);
            }
        }
    for (int q = 0; q < np; q++) l5_storew(tile + q * L5_LANES, acc[q]);
}

/* One digit's convolution, channels-last: out (n_out maps of ho x wo) from x (n_in maps of
   h x width), wr and bias from l5_repack_channels_last. Rows are cut into equal blocks of at
   most 12 positions: as many independent sums as the FMA units need to stay busy. */
static void l5_cl_forward_digit(float *out, const float *x, Py_ssize_t n_in, Py_ssize_t h,
                                Py_ssize_t width, const float *wr, const float *bias, Py_ssize_t k,
                                Py_ssize_t n_out, Py_ssize_t ho, Py_ssize_t wo) {
    float tile[12 * L5_LANES] L5_ALIGN64;
    Py_ssize_t blocks = (wo + 11) / 12, per_block = (wo + blocks - 1) / blocks;
    for (Py_ssize_t g = 0; g < l5_map_groups(n_out); g++) {
        const float *wg = wr + g * n_in * k * k * L5_LANES, *bg = bias + g * L5_LANES;
        Py_ssize_t lanes = n_out - g * L5_LANES < L5_LANES ? n_out - g * L5_LANES : L5_LANES;
        for (Py_ssize_t i = 0; i < ho; i++)
            for (Py_ssize_t j0 = 0; j0 < wo; j0 += per_block) {
                int np = (int)(wo - j0 < per_block ? wo - j0 : per_block);
                const float *xr = x + i * width + j0;
                switch (np) {
#define L5_BLOCK(n) case n: l5_cl_forward_block(tile, xr, h * width, n_in, wg, bg, k, width, n); break;
                    L5_BLOCK(1) L5_BLOCK(2) L5_BLOCK(3) L5_BLOCK(4) L5_BLOCK(5) L5_BLOCK(6)
                    L5_BLOCK(7) L5_BLOCK(8) L5_BLOCK(9) L5_BLOCK(10) L5_BLOCK(11) L5_BLOCK(12)
#undef L5_BLOCK
                }
                for (int q = 0; q < np; q++)
                    for (Py_ssize_t lane = 0; lane < lanes; lane++)
                        out[(g * L5_LANES + lane) * ho * wo + i * wo + j0 + q] = tile[q * L5_LANES + lane];
            }
    }
}

/* gt[(g * ho * wo + pos) * L5_LANES + lane] = dout of map g * L5_LANES + lane at pos (0 past
   n_out): one digit's output gradients, channels-last. */
static void l5_cl_transpose(float *gt, const float *dout, Py_ssize_t n_out, Py_ssize_t positions) {
    for (Py_ssize_t g = 0; g < l5_map_groups(n_out); g++)
        for (Py_ssize_t pos = 0; pos < positions; pos++)
            for (Py_ssize_t lane = 0; lane < L5_LANES; lane++) {
                Py_ssize_t o = g * L5_LANES + lane;
                gt[(g * positions + pos) * L5_LANES + lane] = o < n_out ? dout[o * positions + pos] : 0.0f;
            }
}

/* total[t * L5_LANES + lane] += sum over digits d < nd and positions (i, j) of
   gt_d[(i * wo + j) * L5_LANES + lane] * x_d[(i + ki) * width + j + kj], t = ki * 5 + kj:
   the 5x5 kernel gradients of one input map and a group of output maps, 25 sums in
   registers over one digit's positions in float32, added up across digits in double (each
   lane sums a whole map: float32 across digits as well would lose about 1e-4). */
static void l5_cl_kernel_gradient_block(double *total, const float *gt, Py_ssize_t gt_step,
                                        const float *x, Py_ssize_t x_step, Py_ssize_t nd,
                                        Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t width) {
    float part[25 * L5_LANES] L5_ALIGN64;
    for (Py_ssize_t d = 0; d < nd; d++) {
        l5_vw acc[25];
        for (int t = 0; t < 25; t++) acc[t] = l5_setw(0.0f);
        for (Py_ssize_t i = 0; i < ho; i++)
            for (Py_ssize_t j = 0; j < wo; j++) {
                l5_vw g = l5_loadw(gt + d * gt_step + (i * wo + j) * L5_LANES);
                const float *r = x + d * x_step + i * width + j;
                for (int ki = 0; ki < 5; ki++)
                    for (int kj = 0; kj < 5; kj++)
                        acc[ki * 5 + kj] = l5_fmaw(l5_setw(r[ki * width + kj]), g, acc[ki * 5 + kj]);
            }
        for (int t = 0; t < 25; t++) l5_storew(part + t * L5_LANES, acc[t]);
        for (int e = 0; e < 25 * L5_LANES; e++) total[e] += part[e];  /* vectorised: float to double */
    }
}

#endif /* L5_CONV_H */
