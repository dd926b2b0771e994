/* The full layers' hot loops, tiled; driven by linear.pyx. */
#ifndef L5_LINEAR_H
#define L5_LINEAR_H
#include "l5_simd.h"

/* The arithmetic of the plain loops these replace, spelled out: gcc fused the input
   gradient's multiply-adds (on CPUs with FMA) but not the dot products' (except the last
   n % 4 of a row of n, an accident of unrolling that LeNet's rows, 400, 120 and 84 long,
   never met; not kept). Left to itself it fuses the tiled loops differently, which would
   change bits. Fusing needs a target with FMA; there the empty asm keeps a product out of
   the add that follows, and the fused forms are asked for by name. */
#if defined(__FMA__) && (defined(__GNUC__) || defined(__clang__))
#define L5_UNFUSED(p) __asm__("" : "+x"(p))
#else
#define L5_UNFUSED(p) ((void)0)
#endif

static inline float l5_mul_then_addf(float a, float b, float c) {
    float p = a * b;
    L5_UNFUSED(p);
    return c + p;
}
static inline float l5_fusedf(float a, float b, float c) {
#if defined(__FMA__) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_fmaf(a, b, c);
#else
    return l5_mul_then_addf(a, b, c);
#endif
}

#if defined(L5_VECTOR_EXTENSIONS)
static inline l5_v8 l5_mul_then_add(l5_v8 a, l5_v8 b, l5_v8 c) {
    l5_v8 p = a * b;
    L5_UNFUSED(p);
    return c + p;
}
#if defined(__FMA__)
static inline l5_v8 l5_fused(l5_v8 a, l5_v8 b, l5_v8 c) { return (l5_v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
#else
#define l5_fused l5_mul_then_add
#endif
#else
/* The plain-C vectors of _simd.pxi: the same, lane by lane. */
static l5_v8 l5_mul_then_add(l5_v8 a, l5_v8 b, l5_v8 c) {
    for (int i = 0; i < 8; i++) c.f[i] = l5_mul_then_addf(a.f[i], b.f[i], c.f[i]);
    return c;
}
static l5_v8 l5_fused(l5_v8 a, l5_v8 b, l5_v8 c) {
    for (int i = 0; i < 8; i++) c.f[i] = l5_fusedf(a.f[i], b.f[i], c.f[i]);
    return c;
}
#endif

/* The lanes of _dot.pxi's _lanes_dot over [start, stop) for a tile of nd digits x nu units:
   part[d][u] = that dot of row u of w (row stride `ws`) with row d of x (stride `xs`). */
L5_ALWAYS_INLINE void l5_lanes_tile(float part[4][2], const float *w, Py_ssize_t ws,
                                    const float *x, Py_ssize_t xs, Py_ssize_t start,
                                    Py_ssize_t stop, const int nd, const int nu) {
    l5_v8 s[4][2];
    Py_ssize_t i = start;
    for (int d = 0; d < nd; d++)
        for (int u = 0; u < nu; u++) s[d][u] = l5_set1(0.0f);
    for (; i + 8 <= stop; i += 8) {
        l5_v8 wv[2];
        for (int u = 0; u < nu; u++) wv[u] = l5_load(w + u * ws + i);
        for (int d = 0; d < nd; d++) {
            l5_v8 xv = l5_load(x + d * xs + i);
            for (int u = 0; u < nu; u++) s[d][u] = l5_mul_then_add(wv[u], xv, s[d][u]);
        }
    }
    for (int d = 0; d < nd; d++)
        for (int u = 0; u < nu; u++) {
            float f[8];
            l5_store(f, s[d][u]);
            for (Py_ssize_t j = i; j < stop; j++) f[0] = l5_mul_then_addf(w[u * ws + j], x[d * xs + j], f[0]);
            part[d][u] = ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
        }
}

/* out[d][u] = dot(row u of w, row d of x, length), _dot.pxi's dot: BLOCK = 256 elements
   at a time, the blocks' sums added in order. */
L5_ALWAYS_INLINE void l5_dot_tile(float out[4][2], const float *w, Py_ssize_t ws, const float *x,
                                  Py_ssize_t xs, Py_ssize_t length, const int nd, const int nu) {
    float total[4][2] = {{0.0f}}, part[4][2];
    Py_ssize_t start = 0;
    for (; start + 256 <= length; start += 256) {
        l5_lanes_tile(part, w, ws, x, xs, start, start + 256, nd, nu);
        for (int d = 0; d < nd; d++)
            for (int u = 0; u < nu; u++) total[d][u] += part[d][u];
    }
    l5_lanes_tile(part, w, ws, x, xs, start, length, nd, nu);
    for (int d = 0; d < nd; d++)
        for (int u = 0; u < nu; u++) out[d][u] = total[d][u] + part[d][u];
}

/* out (N, O) = x (N, I) w (O, I)^T + b for digits n0 .. n0 + nd - 1 (nd <= 4), two units at a time. */
static void l5_forward_rows(float *out, const float *x, const float *w, const float *b,
                            Py_ssize_t n0, int nd, Py_ssize_t n_in, Py_ssize_t n_out) {
    float tile[4][2];
    for (Py_ssize_t u0 = 0; u0 < n_out; u0 += 2) {
        const float *wr = w + u0 * n_in, *xr = x + n0 * n_in;
        int nu = n_out - u0 < 2 ? 1 : 2;
        /* Constant tile sizes, so that the sums stay in registers; an odd last unit is rare. */
        if (nu == 1) l5_dot_tile(tile, wr, n_in, xr, n_in, n_in, nd, 1);
        else if (nd == 4) l5_dot_tile(tile, wr, n_in, xr, n_in, n_in, 4, 2);
        else if (nd == 3) l5_dot_tile(tile, wr, n_in, xr, n_in, n_in, 3, 2);
        else if (nd == 2) l5_dot_tile(tile, wr, n_in, xr, n_in, n_in, 2, 2);
        else l5_dot_tile(tile, wr, n_in, xr, n_in, n_in, 1, 2);
        for (int d = 0; d < nd; d++)
            for (int u = 0; u < nu; u++) out[(n0 + d) * n_out + u0 + u] = tile[d][u] + b[u0 + u];
    }
}

#ifdef L5_WIDE
/* The v4 level's backward: 16 lanes, the odd ends of rows masked, float32 sums with fused
   multiply-adds. Other sums in another order than the 8-lane loops below, so not their bits
   (the shipped models' training records are reproduced at v3). */

/* dx rows n0 .. n0 + nd - 1, columns i .. i + 31 (those below n_in) = sum over units o of
   dout[n, o] * w[o]: 4 digits x 2 vectors in registers across all units. */
L5_ALWAYS_INLINE void l5_input_grad_tile16(float *dx, const float *dout, const float *w, Py_ssize_t n0,
                                           Py_ssize_t i, Py_ssize_t n_in, Py_ssize_t n_out, const int nd) {
    __mmask16 m0 = l5_first16(n_in - i), m1 = l5_first16(n_in - i - 16);
    l5_v16 acc[4][2];
    for (int d = 0; d < nd; d++) acc[d][0] = acc[d][1] = l5_set1_16(0.0f);
    for (Py_ssize_t o = 0; o < n_out; o++) {
        l5_v16 w0 = l5_maskload16(w + o * n_in + i, m0), w1 = l5_maskload16(w + o * n_in + i + 16, m1);
        for (int d = 0; d < nd; d++) {
            l5_v16 g = l5_set1_16(dout[(n0 + d) * n_out + o]);
            acc[d][0] = l5_fma16(g, w0, acc[d][0]);
            acc[d][1] = l5_fma16(g, w1, acc[d][1]);
        }
    }
    for (int d = 0; d < nd; d++) {
        l5_maskstore16(dx + (n0 + d) * n_in + i, m0, acc[d][0]);
        l5_maskstore16(dx + (n0 + d) * n_in + i + 16, m1, acc[d][1]);
    }
}

static void l5_input_grad_rows(float *dx, const float *dout, const float *w, Py_ssize_t n0,
                               int nd, Py_ssize_t n_in, Py_ssize_t n_out) {
    for (Py_ssize_t i = 0; i < n_in; i += 32) {
        switch (nd) {
            case 4: l5_input_grad_tile16(dx, dout, w, n0, i, n_in, n_out, 4); break;
            case 3: l5_input_grad_tile16(dx, dout, w, n0, i, n_in, n_out, 3); break;
            case 2: l5_input_grad_tile16(dx, dout, w, n0, i, n_in, n_out, 2); break;
            default: l5_input_grad_tile16(dx, dout, w, n0, i, n_in, n_out, 1); break;
        }
    }
}

/* total[u][j] += sum over digits n0 .. n1 - 1 of dout[n, o0 + u] * x[n, i + j], for nu units
   and the 32 columns from i (those below n_in), summed in float32 in registers. */
L5_ALWAYS_INLINE void l5_param_grad_tile16(double total[4][32], const float *dout, const float *x,
                                           Py_ssize_t o0, Py_ssize_t i, Py_ssize_t n0, Py_ssize_t n1,
                                           Py_ssize_t n_in, Py_ssize_t n_out, const int nu) {
    __mmask16 m0 = l5_first16(n_in - i), m1 = l5_first16(n_in - i - 16);
    l5_v16 acc[4][2];
    float part[32];
    for (int u = 0; u < nu; u++) acc[u][0] = acc[u][1] = l5_set1_16(0.0f);
    for (Py_ssize_t n = n0; n < n1; n++) {
        l5_v16 x0 = l5_maskload16(x + n * n_in + i, m0), x1 = l5_maskload16(x + n * n_in + i + 16, m1);
        for (int u = 0; u < nu; u++) {
            l5_v16 g = l5_set1_16(dout[n * n_out + o0 + u]);
            acc[u][0] = l5_fma16(g, x0, acc[u][0]);
            acc[u][1] = l5_fma16(g, x1, acc[u][1]);
        }
    }
    for (int u = 0; u < nu; u++) {
        l5_store16(part, acc[u][0]);
        l5_store16(part + 16, acc[u][1]);
        for (int j = 0; j < 32; j++) total[u][j] += part[j];
    }
}

/* dw rows o0 .. o0 + nu - 1 (nu <= 4) = the batch sums of dout[n, o] * x[n]: float32 over
   blocks of 128 digits (so no float32 sum runs long), double across them. */
static void l5_param_grad_rows(float *dw, const float *dout, const float *x, Py_ssize_t o0,
                               int nu, Py_ssize_t n_batch, Py_ssize_t n_in, Py_ssize_t n_out) {
    for (Py_ssize_t i = 0; i < n_in; i += 32) {
        double total[4][32] = {{0.0}};
        for (Py_ssize_t n0 = 0; n0 < n_batch; n0 += 128) {
            Py_ssize_t n1 = n_batch - n0 < 128 ? n_batch : n0 + 128;
            switch (nu) {
                case 4: l5_param_grad_tile16(total, dout, x, o0, i, n0, n1, n_in, n_out, 4); break;
                case 3: l5_param_grad_tile16(total, dout, x, o0, i, n0, n1, n_in, n_out, 3); break;
                case 2: l5_param_grad_tile16(total, dout, x, o0, i, n0, n1, n_in, n_out, 2); break;
                default: l5_param_grad_tile16(total, dout, x, o0, i, n0, n1, n_in, n_out, 1); break;
            }
        }
        for (int u = 0; u < nu; u++)
            for (Py_ssize_t j = i; j < i + 32 && j < n_in; j++) dw[(o0 + u) * n_in + j] = (float)total[u][j - i];
    }
}
#else
/* dx columns i .. i + 8 * nv - 1 of rows n0 .. n0 + nd - 1 = sum over units o, in order, of
   dout[n, o] * w[o]: the sums in registers across all units. */
L5_ALWAYS_INLINE void l5_input_grad_tile(float *dx, const float *dout, const float *w, Py_ssize_t n0,
                                         Py_ssize_t i, Py_ssize_t n_in, Py_ssize_t n_out,
                                         const int nd, const int nv) {
    l5_v8 acc[4][2];
    for (int d = 0; d < nd; d++)
        for (int v = 0; v < nv; v++) acc[d][v] = l5_set1(0.0f);
    for (Py_ssize_t o = 0; o < n_out; o++) {
        l5_v8 wv[2];
        for (int v = 0; v < nv; v++) wv[v] = l5_load(w + o * n_in + i + 8 * v);
        for (int d = 0; d < nd; d++) {
            l5_v8 g = l5_set1(dout[(n0 + d) * n_out + o]);
            for (int v = 0; v < nv; v++) acc[d][v] = l5_fused(g, wv[v], acc[d][v]);
        }
    }
    for (int d = 0; d < nd; d++)
        for (int v = 0; v < nv; v++) l5_store(dx + (n0 + d) * n_in + i + 8 * v, acc[d][v]);
}

L5_ALWAYS_INLINE void l5_input_grad_block(float *dx, const float *dout, const float *w, Py_ssize_t n0,
                                          Py_ssize_t n_in, Py_ssize_t n_out, const int nd) {
    Py_ssize_t i = 0;
    for (; i + 16 <= n_in; i += 16) l5_input_grad_tile(dx, dout, w, n0, i, n_in, n_out, nd, 2);
    for (; i + 8 <= n_in; i += 8) l5_input_grad_tile(dx, dout, w, n0, i, n_in, n_out, nd, 1);
    for (; i < n_in; i++)
        for (int d = 0; d < nd; d++) {
            float s = 0.0f;
            for (Py_ssize_t o = 0; o < n_out; o++) s = l5_fusedf(dout[(n0 + d) * n_out + o], w[o * n_in + i], s);
            dx[(n0 + d) * n_in + i] = s;
        }
}

/* dx rows n0 .. n0 + nd - 1 (nd <= 4), each weight row loaded once for all of them. */
static void l5_input_grad_rows(float *dx, const float *dout, const float *w, Py_ssize_t n0,
                               int nd, Py_ssize_t n_in, Py_ssize_t n_out) {
    switch (nd) {
        case 4: l5_input_grad_block(dx, dout, w, n0, n_in, n_out, 4); break;
        case 3: l5_input_grad_block(dx, dout, w, n0, n_in, n_out, 3); break;
        case 2: l5_input_grad_block(dx, dout, w, n0, n_in, n_out, 2); break;
        default: l5_input_grad_block(dx, dout, w, n0, n_in, n_out, 1); break;
    }
}

/* dw rows o0 .. o0 + nu - 1 (nu <= 4) = sum over the batch, in order, of dout[n, o] * x[n]:
   each product in float32, the sum in double; 8 columns of 4 units in registers across the
   batch, so each row of x is read once per four units. */
static void l5_param_grad_rows(float *dw, const float *dout, const float *x, Py_ssize_t o0,
                               int nu, Py_ssize_t n_batch, Py_ssize_t n_in, Py_ssize_t n_out) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n_in; i += 8) {
        double acc[4][8] = {{0.0}};
        for (Py_ssize_t n = 0; n < n_batch; n++) {
            const float *row = x + n * n_in + i;
            for (int u = 0; u < 4; u++) {
                float g = dout[n * n_out + o0 + (u < nu ? u : 0)];
                for (int j = 0; j < 8; j++) acc[u][j] += (double)(g * row[j]);
            }
        }
        for (int u = 0; u < nu; u++)
            for (int j = 0; j < 8; j++) dw[(o0 + u) * n_in + i + j] = (float)acc[u][j];
    }
    for (; i < n_in; i++)
        for (int u = 0; u < nu; u++) {
            double s = 0.0;
            for (Py_ssize_t n = 0; n < n_batch; n++) s += (double)(dout[n * n_out + o0 + u] * x[n * n_in + i]);
            dw[(o0 + u) * n_in + i] = (float)s;
        }
}
#endif /* L5_WIDE */

#endif /* L5_LINEAR_H */
