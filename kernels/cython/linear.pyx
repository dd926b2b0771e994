# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/linear.py (the reference) and kernels/numba/linear.py.
"""Cython kernels: full (dense) layer (C5, F6 and the modern Dense layers).

Forward and input gradient in parallel over the batch, four digits per task;
weight and bias gradients in parallel over output units, four per task.
Called through lenet_engine.layers.
"""

from cython.parallel cimport prange

include "_checks.pxi"
include "_simd.pxi"

# Each kernel works on a tile of rows at once, so that every weight or input
# value loaded serves several independent sums (a lone dot product waits on
# its own multiply-adds). Every element still sees the additions of the plain
# loops in their order, so the shipped models' first passes still reproduce bit
# for bit (tests/test_shipped_weights.py).

cdef extern from *:
    """
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
    """
    void l5_forward_rows(float* out, const float* x, const float* w, const float* b,
                         Py_ssize_t n0, int nd, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
    void l5_input_grad_rows(float* dx, const float* dout, const float* w, Py_ssize_t n0,
                            int nd, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil
    void l5_param_grad_rows(float* dw, const float* dout, const float* x, Py_ssize_t o0,
                            int nu, Py_ssize_t n_batch, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil

cdef enum:
    TILE = 4  # digits per forward / input-gradient call, units per weight-gradient call


cdef float _bias_gradient(const float[:, ::1] dout, Py_ssize_t o) noexcept nogil:
    # db[o]: the batch sum in double.
    # A function, not inline code: inside prange Cython would make `s += ...` a reduction.
    cdef double total = 0.0
    cdef Py_ssize_t n
    for n in range(dout.shape[0]):
        total += dout[n, o]
    return <float>total


def linear_forward(float[:, ::1] out not None, const float[:, ::1] x not None,
                   const float[:, ::1] w not None, const float[::1] b not None, int n_threads):
    """out: (N, O)   x: (N, I)   w: (O, I)   b: (O,)"""
    name = "linear_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t t
    check_shape(name, "w", w.shape, 2, (n_out, n_in))
    check_shape(name, "b", b.shape, 1, (n_out,))
    check_shape(name, "out", out.shape, 2, (n_batch, n_out))

    if n_batch == 0 or n_out == 0:
        return
    for t in prange((n_batch + TILE - 1) // TILE, nogil=True, schedule="static", num_threads=n_threads):
        l5_forward_rows(&out[0, 0], &x[0, 0], &w[0, 0], &b[0], t * TILE,
                        min(<Py_ssize_t>TILE, n_batch - t * TILE), n_in, n_out)


cdef int _check_linear_backward(str name, float[:, ::1] dx, float[:, ::1] dw, float[::1] db,
                                const float[:, ::1] dout, const float[:, ::1] x,
                                const float[:, ::1] w, int n_threads) except -1:
    # The checks of linear_backward and linear_curvature (same arguments).
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    check_shape(name, "w", w.shape, 2, (n_out, n_in))
    check_shape(name, "dout", dout.shape, 2, (n_batch, n_out))
    check_shape(name, "dx", dx.shape, 2, (n_batch, n_in))
    check_shape(name, "dw", dw.shape, 2, (n_out, n_in))
    check_shape(name, "db", db.shape, 1, (n_out,))
    return 0


def linear_backward(float[:, ::1] dx not None, float[:, ::1] dw not None, float[::1] db not None,
                    const float[:, ::1] dout not None, const float[:, ::1] x not None,
                    const float[:, ::1] w not None, int n_threads):
    """dx: (N, I)   dw: (O, I)   db: (O,)   dout: (N, O); x, w as forward."""
    _check_linear_backward("linear_backward", dx, dw, db, dout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t t, o
    if n_batch == 0 or n_out == 0:
        # Empty sums (and no first element for the kernels to start from).
        dx[:, :] = 0
        dw[:, :] = 0
        db[:] = 0
        return
    for t in prange((n_batch + TILE - 1) // TILE, nogil=True, schedule="static", num_threads=n_threads):
        l5_input_grad_rows(&dx[0, 0], &dout[0, 0], &w[0, 0], t * TILE,
                           min(<Py_ssize_t>TILE, n_batch - t * TILE), n_in, n_out)
    for t in prange((n_out + TILE - 1) // TILE, nogil=True, schedule="static", num_threads=n_threads):
        l5_param_grad_rows(&dw[0, 0], &dout[0, 0], &x[0, 0], t * TILE,
                           min(<Py_ssize_t>TILE, n_out - t * TILE), n_batch, n_in, n_out)
        for o in range(t * TILE, min(t * TILE + TILE, n_out)):
            db[o] = _bias_gradient(dout, o)


# --- second-order backward (SDLM): linear_backward with x and w squared ------

cdef void _param_curvature(float[:, ::1] hw, float[::1] hb, const float[:, ::1] hout,
                           const float[:, ::1] x, Py_ssize_t o) noexcept nogil:
    # Row o of hw and hb[o]: sums over the batch, in double (run once per pass, so plain).
    cdef Py_ssize_t n, i
    cdef double total
    total = 0.0
    for n in range(x.shape[0]):
        total += hout[n, o]
    hb[o] = <float>total
    for i in range(x.shape[1]):
        total = 0.0
        for n in range(x.shape[0]):
            total += hout[n, o] * x[n, i] * x[n, i]
        hw[o, i] = <float>total


def linear_curvature(float[:, ::1] hx not None, float[:, ::1] hw not None, float[::1] hb not None,
                     const float[:, ::1] hout not None, const float[:, ::1] x not None,
                     const float[:, ::1] w not None, int n_threads):
    """Gauss-Newton diagonal of linear_forward; shapes as linear_backward, h* for d*."""
    _check_linear_backward("linear_curvature", hx, hw, hb, hout, x, w, n_threads)
    cdef Py_ssize_t n_batch = x.shape[0], n_in = x.shape[1], n_out = w.shape[0]
    cdef Py_ssize_t n, o, i
    cdef float h
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for i in range(n_in):
            hx[n, i] = 0
        for o in range(n_out):
            h = hout[n, o]
            for i in range(n_in):
                hx[n, i] += h * w[o, i] * w[o, i]
    for o in prange(n_out, nogil=True, schedule="static", num_threads=n_threads):
        _param_curvature(hw, hb, hout, x, o)
