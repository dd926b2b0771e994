/* kernels/cython/l5_runner.h under load: four caller threads at once, each running batches of
   random sizes on 1 to 4 threads, in three scratch kinds; then one batch of more chunks than a
   round of the ticket holds. Every chunk of a batch must run once, and a pass of kind 0 or more
   must find the bytes it keeps zero zeroed. Prints "ok", or what went wrong. argv[1]: batches
   per caller. */
#include "l5_runner.h"

#include <stdio.h>

#define SCRATCH 256
#define MAX_CHUNKS 300
#define KEPT_ZERO 8  /* bytes a pass of kind >= 0 never writes */

typedef struct {
    int *runs;  /* per chunk */
    int kind;
    int dirty;
} batch_t;

static void run_chunk(void *ctx, long chunk, void *scratch) {
    batch_t *batch = ctx;
    unsigned char *bytes = scratch;
    if (batch->kind >= 0) {
        for (int i = 0; i < KEPT_ZERO; i++)
            if (bytes[i] != 0) __atomic_store_n(&batch->dirty, 1, __ATOMIC_RELAXED);
    } else {
        bytes[0] = 0xff;  /* a pass that needs no zeros writes anywhere */
    }
    __atomic_fetch_add(&batch->runs[chunk], 1, __ATOMIC_RELAXED);
    volatile double work = 0;  /* chunks of uneven length */
    for (int i = 0; i < (int)(chunk % 7) * 50; i++) work += i;
}

#if defined(_WIN32)
#define RANDOM(seed) (*(seed) = *(seed) * 1103515245u + 12345u, (*(seed) >> 16) & 0x7fff)
#else
#define RANDOM(seed) rand_r(seed)
#endif

static int run_batches(unsigned seed, int n_batches) {
    for (int b = 0; b < n_batches; b++) {
        int runs[MAX_CHUNKS] = {0};
        batch_t batch = {runs, (int)(RANDOM(&seed) % 3) - 1, 0};
        l5_work_t work = {run_chunk, &batch, RANDOM(&seed) % MAX_CHUNKS, SCRATCH, batch.kind};
        if (l5_run_chunks(&work, 1 + RANDOM(&seed) % 4) != 0) {
            printf("no memory\n");
            return 1;
        }
        for (long c = 0; c < work.n_chunks; c++) {
            if (runs[c] != 1) {
                printf("batch %d: chunk %ld of %ld ran %d times\n", b, c, work.n_chunks, runs[c]);
                return 1;
            }
        }
        if (batch.dirty) {
            printf("batch %d: a scratch of kind %d was not zeroed\n", b, batch.kind);
            return 1;
        }
    }
    return 0;
}

static void count_chunk(void *ctx, long chunk, void *scratch) {
    (void)scratch;
    __atomic_fetch_add(&((unsigned char *)ctx)[chunk], 1, __ATOMIC_RELAXED);
}

/* Three rounds of 2^20 - 1 chunks and a few more (l5_runner.h's L5_ROUND_CHUNKS). */
static int run_rounds(void) {
    long n = 3 * ((1L << 20) - 1) + 5;
    unsigned char *runs = calloc(n, 1);
    l5_work_t work = {count_chunk, runs, n, SCRATCH, -1};
    int failed = runs == NULL || l5_run_chunks(&work, 3) != 0;
    for (long c = 0; !failed && c < n; c++) {
        if (runs[c] != 1) {
            printf("a batch of %ld chunks: chunk %ld ran %d times\n", n, c, runs[c]);
            failed = 1;
        }
    }
    free(runs);
    return failed;
}

#if defined(_WIN32)
int main(int argc, char **argv) {
    l5_runner_init(SCRATCH);
    int failed = run_batches(1, argc > 1 ? atoi(argv[1]) : 1000) || run_rounds();
    printf(failed ? "FAILED\n" : "ok\n");
    return failed;
}
#else
static int n_batches;

static void *caller(void *seed) { return (void *)(intptr_t)run_batches((unsigned)(uintptr_t)seed, n_batches); }

int main(int argc, char **argv) {
    n_batches = argc > 1 ? atoi(argv[1]) : 1000;
    l5_runner_init(SCRATCH);
    pthread_t callers[4];
    int failed = 0;
    for (int i = 0; i < 4; i++) pthread_create(&callers[i], NULL, caller, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++) {
        void *result;
        pthread_join(callers[i], &result);
        failed |= result != NULL;
    }
    failed = failed || run_rounds();
    printf(failed ? "FAILED\n" : "ok\n");
    return failed;
}
#endif
