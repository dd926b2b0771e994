# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# The thread side of the Cython backend; no twin (Numba reports its own pool size).
"""Which build of the Cython kernels this is: the compiler and CPU target, OpenMP, the thread limit.

setup.py compiles every kernels/cython/*.pyx with the same flags, -fopenmp
only when the compiler accepts it, and L5_BUILD_TARGET naming the -march in
effect; this module, built with them, reports which build it is. Read by
kernels/cython/__init__.py.
"""

cdef extern from *:
    """
    /* _OPENMP is defined by the compiler exactly when -fopenmp (or /openmp) is on. */
    #ifdef _OPENMP
    #include <omp.h>
    static int lenet_openmp_available(void) { return 1; }
    static int lenet_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int lenet_openmp_available(void) { return 0; }
    static int lenet_max_threads(void) { return 1; }
    #endif
    """
    int lenet_openmp_available() nogil
    int lenet_max_threads() nogil

cdef extern from *:
    """
    #ifndef L5_BUILD_TARGET
    #define L5_BUILD_TARGET "-march unknown"
    #endif
    #if defined(__clang__)
    #define L5_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define L5_COMPILER "gcc " __VERSION__
    #else
    #define L5_COMPILER "cc"
    #endif
    static const char *lenet_build = L5_COMPILER " " L5_BUILD_TARGET;
    """
    const char *lenet_build


def openmp_available():
    """True when the kernels were compiled with OpenMP (their prange loops run in parallel)."""
    return bool(lenet_openmp_available())


def max_threads():
    """Threads a parallel loop may use: omp_get_max_threads() (honours $OMP_NUM_THREADS), else 1."""
    return lenet_max_threads()


def build():
    """The compiler, its version and the CPU target the kernels were compiled for,
    e.g. "gcc 12.2.0 -march=znver3": one training command gives the same bits on one build."""
    return lenet_build.decode()
