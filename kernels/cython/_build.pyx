# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# The build side of the Cython backend; no twin (Numba compiles for the CPU it runs on).
"""Which build of the Cython kernels this is, and what this CPU can run of it.

setup.py compiles the kernel modules once per x86-64 level (baseline, v3,
v4; or one `native` or `portable` level), all with the same OpenMP flags, and
this module once, at the baseline, with L5_LEVELS naming the levels built and
their flags. It reports the compiler, OpenMP, the thread limit, the levels
built, and the highest level this CPU and its operating system support (the
CPUID feature bits, and XCR0 for the vector registers' state). Read by
kernels/cython/__init__.py, which picks the level.
"""

cdef extern from *:
    """
    /* _OPENMP is defined by the compiler exactly when -fopenmp (or /openmp) is on. */
    #ifdef _OPENMP
    static int lenet_openmp_available(void) { return 1; }
    #else
    static int lenet_openmp_available(void) { return 0; }
    #endif

    #ifndef L5_LEVELS
    #define L5_LEVELS "portable:"
    #endif
    #if defined(__clang__)
    #define L5_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define L5_COMPILER "gcc " __VERSION__
    #else
    #define L5_COMPILER "cc"
    #endif
    static const char *lenet_compiler = L5_COMPILER;
    static const char *lenet_levels = L5_LEVELS;

    /* The x86-64 microarchitecture level this CPU and OS support: 1 (baseline), 2, 3 or 4, as
       defined by the x86-64 psABI; 0 on other processors. A level needs its instructions
       (CPUID) and, for AVX and AVX-512, the OS saving their registers (XCR0). */
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    #include <cpuid.h>
    static int lenet_cpu_level(void) {
        unsigned int a, b, c, d, b7 = 0, c7 = 0, d7 = 0, cx = 0;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return 1;
        int v2 = (c >> 0 & 1) && (c >> 9 & 1) && (c >> 13 & 1) && (c >> 19 & 1) && (c >> 20 & 1)
                 && (c >> 23 & 1);                               /* SSE3 SSSE3 CX16 SSE4.1 SSE4.2 POPCNT */
        if (__get_cpuid_max(0, 0) >= 7) __cpuid_count(7, 0, a, b7, c7, d7);
        if (__get_cpuid_max(0x80000000, 0) >= 0x80000001) __cpuid(0x80000001, a, b, cx, d);
        v2 = v2 && (cx >> 0 & 1);                                 /* LAHF-SAHF */
        if (!v2) return 1;
        unsigned long long xcr0 = 0;
        if (c >> 27 & 1) {                                        /* OSXSAVE: XGETBV works */
            unsigned int lo, hi;
            __asm__ volatile ("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = ((unsigned long long)hi << 32) | lo;
        }
        int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
        int v3 = ymm && (c >> 28 & 1) && (c >> 12 & 1) && (c >> 22 & 1) && (c >> 29 & 1)  /* AVX FMA MOVBE F16C */
                 && (b7 >> 5 & 1) && (b7 >> 3 & 1) && (b7 >> 8 & 1) && (cx >> 5 & 1);     /* AVX2 BMI1 BMI2 LZCNT */
        if (!v3) return 2;
        int v4 = zmm && (b7 >> 16 & 1) && (b7 >> 17 & 1) && (b7 >> 28 & 1) && (b7 >> 30 & 1)
                 && (b7 >> 31 & 1);                              /* AVX-512 F DQ CD BW VL */
        return v4 ? 4 : 3;
    }
    #else
    static int lenet_cpu_level(void) { return 0; }
    #endif
    """
    int lenet_openmp_available() nogil
    int lenet_cpu_level() nogil
    const char *lenet_compiler
    const char *lenet_levels


def openmp_available():
    """True when the kernels were compiled with OpenMP (their prange loops run in parallel)."""
    return bool(lenet_openmp_available())


cdef extern from "l5_threads.h":
    int l5_thread_limit() nogil


def max_threads():
    """The most threads a kernel call may be given (l5_threads.h): the processors, or OpenMP's
    default team size if larger, within OMP_THREAD_LIMIT; 1 without OpenMP."""
    return l5_thread_limit()


def compiler():
    """The compiler and its version, e.g. "gcc 12.2.0"."""
    return lenet_compiler.decode()


def levels_built():
    """{level: its compile flags} for every level this build compiled the kernels for, in the
    order setup.py lists them, e.g. {"baseline": "-march=x86-64 -mtune=generic", ...}."""
    pairs = (entry.partition(":") for entry in lenet_levels.decode().split(";") if entry)
    return {name: flags for name, _, flags in pairs}


def cpu_level():
    """The x86-64 level (1 to 4) this CPU and its OS support; 0 on other processors."""
    return lenet_cpu_level()
