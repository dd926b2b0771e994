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

#endif /* L5_CONV_H */
