/* The most threads one kernel call may be given (_checks.pxi refuses more; _build.pyx reports it
   as the backend's MAX_THREADS): the processors this process may run on, or OpenMP's default
   team size where that is larger, within OMP_THREAD_LIMIT; 1 without OpenMP. Not the default
   team size alone: $OMP_NUM_THREADS sets it, which the engine does not read (lenet_engine.backends);
   a prange's num_threads clause overrides it, and the fused passes run threads of their own. */
#ifndef L5_THREADS_H
#define L5_THREADS_H
#ifdef _OPENMP
#include <omp.h>
static int l5_thread_limit(void) {
    int n = omp_get_num_procs() > omp_get_max_threads() ? omp_get_num_procs() : omp_get_max_threads();
    return n < omp_get_thread_limit() ? n : omp_get_thread_limit();
}
#else
static int l5_thread_limit(void) { return 1; }
#endif
#endif
