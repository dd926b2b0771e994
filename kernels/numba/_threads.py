"""The threads the numba fused passes run their shares of a batch on, and how they split it.

A share is a compiled function (out, digits, start, stop, *args) that releases the GIL and
returns a count. The caller runs shares too; the other threads live in one pool, made on
first use and made again in a forked child, which inherits no threads.
"""

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

MAX_CHUNK = 64  # digits; a share's call costs about 3 us, a digit about 13 (one thread, Zen 4)


def run_in_chunks(share, out, digits, n_threads, args, multiple):
    """Sum of share(out, digits, start, stop, *args) over chunks covering the digits, which
    n_threads threads take in turn until none is left: a core slowed by another process does
    not hold the call up while the others wait, as with fixed shares it would. Every chunk
    but the last is a multiple of `multiple` digits. One thread, or no more digits than one
    chunk's multiple, runs on the calling thread alone, waking no other."""
    n = len(digits)
    if n_threads == 1 or n <= multiple:
        return share(out, digits, 0, n, *args)
    size = _chunk_size(n, n_threads, multiple)
    n_chunks = -(-n // size)
    chunks = itertools.count()  # next() on it is atomic under the GIL

    def take_chunks():
        total = 0
        while (c := next(chunks)) < n_chunks:
            total += share(out, digits, c * size, min(n, (c + 1) * size), *args)
        return total

    others = [_share_threads().submit(take_chunks) for _ in range(n_threads - 1)]
    try:
        total = take_chunks()
    finally:
        # Once the caller finds no chunk left, a helper that has not started (its thread busy
        # with another call's chunks) would find none either: cancelled, not waited for.
        total_others = sum(other.result() for other in others if not other.cancel())
    return total + total_others


def _chunk_size(n, n_threads, multiple):
    """About four chunks a thread, rounded up to a multiple of `multiple`, at most MAX_CHUNK."""
    per_chunk = -(-n // (4 * n_threads))
    return max(multiple, min(MAX_CHUNK, -(-per_chunk // multiple) * multiple))


_share_threads_lock = threading.Lock()
_executor = None


def _share_threads():
    """The threads that run chunks besides the caller: as many as Numba may use, less one."""
    global _executor
    with _share_threads_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                           thread_name_prefix="lenet5-numba")
        return _executor


def _forget_share_threads():
    global _executor, _share_threads_lock
    _executor, _share_threads_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_share_threads)
