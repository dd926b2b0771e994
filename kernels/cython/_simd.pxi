# Included (textually) by the Cython kernel modules with hand-blocked loops (lenet5.pyx, conv.pyx).
# 8-float vectors for C code written in `cdef extern from *` blocks.
#
# With GCC or Clang, l5_v8 is a vector extension type: one AVX register (two
# SSE ones on builds without AVX), and the compiler keeps arrays of them in
# registers, which it will not do for plain float arrays in a loop. Other
# compilers get a struct of 8 floats and the same operations lane by lane.

cdef extern from *:
    """
    #ifndef L5_SIMD_INCLUDED
    #define L5_SIMD_INCLUDED
    #include <string.h>

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

    #if defined(__GNUC__) || defined(__clang__)
    #define L5_ALWAYS_INLINE static inline __attribute__((always_inline))
    #else
    #define L5_ALWAYS_INLINE static inline
    #endif

    #endif
    """
