# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# The thread side of the Cython backend; no twin (Numba reports its own pool size).
"""Whether this build of the Cython kernels has OpenMP, and how many threads it may use.

setup.py compiles every kernels/cython/*.pyx with the same flags, -fopenmp
only when the compiler accepts it; this module, built with them, reports
which build it is. Read by kernels/cython/__init__.py.
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


def openmp_available():
    """True when the kernels were compiled with OpenMP (their prange loops run in parallel)."""
    return bool(lenet_openmp_available())


def max_threads():
    """Threads a parallel loop may use: omp_get_max_threads() (honours $OMP_NUM_THREADS), else 1."""
    return lenet_max_threads()
