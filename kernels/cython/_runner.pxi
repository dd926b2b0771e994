# Included (textually) by the fused passes, lenet5.pyx and lenet5_int8.pyx: l5_runner.h, the
# threads they run a batch on. Each module has its own helpers and calls l5_runner_init once, at
# import, with the largest scratch a thread of it needs.

cdef extern from "l5_runner.h":
    ctypedef struct l5_work_t:
        # A batch: run(ctx, chunk, scratch) computes one of its n_chunks chunks.
        void (*run)(void* ctx, long chunk, void* scratch) noexcept nogil
        void* ctx
        long n_chunks
        size_t scratch_bytes
        int scratch_kind  # >= 0: the pass relies on zeros it never overwrites, in this kind's layout
    void l5_runner_init(size_t scratch_bytes) noexcept nogil
    int l5_run_chunks(const l5_work_t* work, int n_threads) noexcept nogil  # 0, or -1: no memory
