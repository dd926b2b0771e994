/* The threads the fused passes (lenet5.pyx, lenet5_int8.pyx) run a batch on.

   The batch is cut into chunks that the caller and helper threads take in turn, one at a
   time, until none is left. The caller then waits only for chunks already taken, never for a
   helper that has not started: on a host whose cores other processes keep busy, a helper the
   OS has not run yet takes no chunk and holds nothing up. (An OpenMP team starts and ends
   together, so there one late thread held up the whole call: README, "Backends and threads".)

   Helpers are made on first use, as many as the largest thread count asked for less one, and
   live as long as the process. After a batch each spins for L5_SPIN_NS before it sleeps, so
   that back-to-back calls find it awake, as an OpenMP team's spinning threads are. One batch
   at a time is on offer per module: a caller that finds another one's batch on offer runs its
   own alone. Each digit's result does not depend on which thread computes it, so the split
   changes no bit of the outputs.

   On POSIX systems this is pthreads and C11 atomics; elsewhere (MSVC) the chunks are taken
   by an OpenMP team where the build has OpenMP, else on the calling thread. */
#ifndef L5_RUNNER_H
#define L5_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A batch of n_chunks chunks: run(ctx, chunk, scratch) computes chunk `chunk` (0 .. n_chunks - 1)
   in `scratch`, scratch_bytes of the running thread's own. A pass whose scratch_kind is 0 or
   more relies on zeros it never overwrites (borders, padding), in a layout of that kind: each
   thread's scratch is zeroed when it first serves that kind. Below 0: no zeros needed. */
typedef struct {
    void (*run)(void *ctx, long chunk, void *scratch);
    void *ctx;
    long n_chunks;
    size_t scratch_bytes;
    int scratch_kind;
} l5_work_t;

/* All of work's chunks on the calling thread, in a scratch of its own. */
static int l5_run_alone(const l5_work_t *work) {
    void *scratch = malloc(work->scratch_bytes);
    if (scratch == NULL) return -1;
    if (work->scratch_kind >= 0) memset(scratch, 0, work->scratch_bytes);
    for (long c = 0; c < work->n_chunks; c++) work->run(work->ctx, c, scratch);
    free(scratch);
    return 0;
}

#if !defined(_WIN32)

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define L5_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define L5_PAUSE() __asm__ __volatile__("yield")
#else
#define L5_PAUSE() ((void)0)
#endif

#define L5_SPIN_NS 200000L      /* a helper's spin after its last chunk, before it sleeps */
#define L5_WAIT_SPIN_NS 20000L  /* the caller's spin for taken chunks, before it yields its core */
#define L5_MAX_HELPERS 255

/* The batch on offer is one 64-bit word, so that taking a chunk is one compare-and-swap that
   fails whenever anything about the batch has changed: generation (16 bits, which batch),
   helpers wanted (8), chunks in this round (20), next chunk (20). */
#define L5_ROUND_CHUNKS ((1L << 20) - 1)
#define L5_TICKET(gen, wanted, n, next) \
    (((uint64_t)(gen) << 48) | ((uint64_t)(wanted) << 40) | ((uint64_t)(n) << 20) | (uint64_t)(next))
#define L5_GEN(t) ((unsigned)((t) >> 48))
#define L5_WANTED(t) ((long)(((t) >> 40) & 0xff))
#define L5_CHUNKS(t) ((long)(((t) >> 20) & 0xfffff))
#define L5_NEXT(t) ((long)((t) & 0xfffff))

typedef struct {
    pthread_mutex_t lock;             /* with `wake`: sleeping helpers; `helpers` */
    pthread_cond_t wake;
    _Atomic uint64_t ticket;
    const l5_work_t *_Atomic work;    /* the batch of the ticket's generation */
    atomic_long first;                /* its round's first chunk */
    atomic_long done;                 /* chunks of this round computed */
    atomic_int busy;                  /* a caller has a batch on offer */
    atomic_int sleepers;
    void *own;                        /* the scratch of the caller holding `busy` */
    int own_kind;
    int helpers;                      /* started */
    int fork_handler;                 /* registered */
    size_t scratch_bytes;             /* each helper's, set by l5_runner_init */
} l5_pool_t;

static l5_pool_t l5_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* A scratch whose contents suit `work`: zeroed unless it was last zeroed or used for the same
   kind. *kind: the kind it serves, L5_FRESH when it is zeros from its allocation. */
#define L5_FRESH (-1000000)
static void l5_suit_scratch(void *scratch, size_t bytes, int *kind, const l5_work_t *work) {
    if (*kind == work->scratch_kind) return;
    if (work->scratch_kind >= 0 && *kind != L5_FRESH) memset(scratch, 0, bytes);
    *kind = work->scratch_kind;
}

static int64_t l5_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The ticket once its generation is no longer `seen`: spin (if `spin`), then sleep. */
static uint64_t l5_next_batch(unsigned seen, int spin) {
    uint64_t t;
    int64_t until = l5_now_ns() + L5_SPIN_NS;
    for (int i = 1; spin; i++) {
        t = atomic_load(&l5_pool.ticket);
        if (L5_GEN(t) != seen) return t;
        L5_PAUSE();
        if (i % 64 == 0 && l5_now_ns() > until) break;
    }
    pthread_mutex_lock(&l5_pool.lock);
    /* Counted before the ticket is read again, and the caller stores the ticket before it
       reads the count (both sequentially consistent): either this thread sees the new
       ticket, or the caller sees it asleep and wakes it under the lock. */
    atomic_fetch_add(&l5_pool.sleepers, 1);
    while (L5_GEN(t = atomic_load(&l5_pool.ticket)) == seen) pthread_cond_wait(&l5_pool.wake, &l5_pool.lock);
    atomic_fetch_sub(&l5_pool.sleepers, 1);
    pthread_mutex_unlock(&l5_pool.lock);
    return t;
}

/* Take chunks of the ticket t's batch until none is left (or the batch has changed: then the
   compare-and-swap fails on the new generation and this returns). kind: what the scratch
   serves (l5_suit_scratch). */
static void l5_take_chunks(uint64_t t, void *scratch, int *kind) {
    unsigned gen = L5_GEN(t);
    while (L5_GEN(t) == gen && L5_NEXT(t) < L5_CHUNKS(t)) {
        if (!atomic_compare_exchange_weak(&l5_pool.ticket, &t, t + 1)) continue;  /* t reloaded */
        /* The chunk is taken and not done, so its caller is still waiting: the batch and its
           round are this generation's until `done` counts it. */
        const l5_work_t *work = atomic_load(&l5_pool.work);
        l5_suit_scratch(scratch, l5_pool.scratch_bytes, kind, work);
        work->run(work->ctx, atomic_load(&l5_pool.first) + L5_NEXT(t), scratch);
        atomic_fetch_add(&l5_pool.done, 1);
        t = atomic_load(&l5_pool.ticket);
    }
}

/* arg: the helper's index, and in its higher bits the generation on offer when it was made
   (its first batch is the next one: the caller that made it publishes that after). */
static void *l5_helper(void *arg) {
    long index = (long)((uintptr_t)arg & 0xff);
    unsigned seen = (unsigned)((uintptr_t)arg >> 8);
    void *scratch = calloc(1, l5_pool.scratch_bytes);
    if (scratch == NULL) return NULL;  /* a helper fewer: the caller takes its chunks */
    int kind = L5_FRESH, wanted = 1;
    for (;;) {
        /* A helper the last batch did not want sleeps at once: calls on fewer threads than an
           earlier one keep only the helpers they use spinning. */
        uint64_t t = l5_next_batch(seen, wanted);
        seen = L5_GEN(t);
        wanted = index < L5_WANTED(t);
        if (wanted) l5_take_chunks(t, scratch, &kind);
    }
    return NULL;
}

/* A forked child has none of its parent's helpers: it starts its own. The lock is held across
   the fork, so that the child's copy is in a known state (held by the forking thread). */
static void l5_lock_for_fork(void) { pthread_mutex_lock(&l5_pool.lock); }
static void l5_unlock_after_fork(void) { pthread_mutex_unlock(&l5_pool.lock); }
static void l5_forget_helpers(void) {
    pthread_cond_init(&l5_pool.wake, NULL);  /* its waiters are the parent's */
    atomic_store(&l5_pool.busy, 0);
    atomic_store(&l5_pool.sleepers, 0);
    l5_pool.helpers = 0;
    pthread_mutex_unlock(&l5_pool.lock);
}

/* Each helper's scratch, the most any batch of this module needs: call before l5_run_chunks. */
static void l5_runner_init(size_t scratch_bytes) { l5_pool.scratch_bytes = scratch_bytes; }

/* Helpers started, at least `want` where the system gives them. Called by the caller holding
   `busy`, before it publishes its batch. */
static int l5_helpers(int want) {
    if (want > L5_MAX_HELPERS) want = L5_MAX_HELPERS;
    pthread_mutex_lock(&l5_pool.lock);
    if (!l5_pool.fork_handler)
        l5_pool.fork_handler = pthread_atfork(l5_lock_for_fork, l5_unlock_after_fork, l5_forget_helpers) == 0;
    while (l5_pool.helpers < want) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* Signals go to the process's other threads (Python's handler runs in the main one). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        uintptr_t arg = ((uintptr_t)L5_GEN(atomic_load(&l5_pool.ticket)) << 8) | (uintptr_t)l5_pool.helpers;
        int failed = pthread_create(&thread, &attr, l5_helper, (void *)arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (failed) break;
        l5_pool.helpers++;
    }
    int have = l5_pool.helpers;
    pthread_mutex_unlock(&l5_pool.lock);
    return have;
}

/* Run every chunk of `work` on the calling thread and at most n_threads - 1 helpers. Returns 0,
   or -1 where no scratch could be had for the calling thread (then nothing ran). The caller
   holding the pool computes in the pool's scratch, kept between calls as the helpers keep
   theirs: a call allocates and zeroes none. */
static int l5_run_chunks(const l5_work_t *work, int n_threads) {
    int expected = 0;
    int wanted = n_threads - 1 < L5_MAX_HELPERS ? n_threads - 1 : L5_MAX_HELPERS;
    if (wanted < 1 || work->n_chunks < 2 || work->scratch_bytes > l5_pool.scratch_bytes ||
        !atomic_compare_exchange_strong(&l5_pool.busy, &expected, 1))
        return l5_run_alone(work);
    if (l5_pool.own == NULL) {
        l5_pool.own = calloc(1, l5_pool.scratch_bytes);
        l5_pool.own_kind = L5_FRESH;
        if (l5_pool.own == NULL) {
            atomic_store(&l5_pool.busy, 0);
            return l5_run_alone(work);
        }
    }
    l5_suit_scratch(l5_pool.own, l5_pool.scratch_bytes, &l5_pool.own_kind, work);
    int helpers = l5_helpers(wanted);
    if (helpers < wanted) wanted = helpers;
    atomic_store(&l5_pool.work, work);
    for (long first = 0; first < work->n_chunks; first += L5_ROUND_CHUNKS) {
        long n = work->n_chunks - first < L5_ROUND_CHUNKS ? work->n_chunks - first : L5_ROUND_CHUNKS;
        atomic_store(&l5_pool.first, first);
        atomic_store(&l5_pool.done, 0);
        uint64_t t = L5_TICKET(L5_GEN(atomic_load(&l5_pool.ticket)) + 1, wanted, n, 0);
        atomic_store(&l5_pool.ticket, t);
        if (atomic_load(&l5_pool.sleepers) > 0) {
            pthread_mutex_lock(&l5_pool.lock);
            pthread_cond_broadcast(&l5_pool.wake);
            pthread_mutex_unlock(&l5_pool.lock);
        }
        l5_take_chunks(t, l5_pool.own, &l5_pool.own_kind);
        /* Every chunk is taken: wait for those a helper is computing, spinning while that is
           short, then yielding the core (a helper the OS has stopped may need it). */
        int64_t until = l5_now_ns() + L5_WAIT_SPIN_NS;
        for (int i = 1; atomic_load(&l5_pool.done) < n && (i % 64 != 0 || l5_now_ns() <= until); i++)
            L5_PAUSE();
        while (atomic_load(&l5_pool.done) < n) sched_yield();
    }
    atomic_store(&l5_pool.busy, 0);
    return 0;
}

#else  /* no pthreads */

static void l5_runner_init(size_t scratch_bytes) { (void)scratch_bytes; }

static int l5_run_chunks(const l5_work_t *work, int n_threads) {
#if defined(_OPENMP)
    if (n_threads > 1 && work->n_chunks > 1) {
        int failed = 0;
        #pragma omp parallel num_threads(n_threads) reduction(|:failed)
        {
            void *own = calloc(1, work->scratch_bytes);
            failed |= own == NULL;
            #pragma omp for schedule(dynamic, 1)
            for (long c = 0; c < work->n_chunks; c++)
                if (own != NULL) work->run(work->ctx, c, own);
            free(own);
        }
        if (!failed) return 0;
        /* A thread without scratch skipped the chunks it took: all again, on this thread (each
           chunk's result is the same whoever computes it). */
    }
#else
    (void)n_threads;
#endif
    return l5_run_alone(work);
}

#endif
#endif
