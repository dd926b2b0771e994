"""The one place the Numba compilation flags are set, for every kernel of this backend.

cache=True keeps compiled code on disk between processes; nogil=True lets
callers run kernels from several Python threads. fastmath allows
reassociation and contraction (so reductions vectorise) but keeps NaN and inf
semantics, so bad values still show.
"""

import functools
import threading
import types

import numba

FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
OPTIONS = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
# For kernels whose float operations must be the reference's IEEE ones (the int8 pass).
EXACT = dict(cache=True, nogil=True, error_model="numpy")


def kernel(fn):
    """Compile a serial kernel (or a helper that kernels call)."""
    return numba.njit(**OPTIONS)(fn)


def parallel_kernel(fn=None, *, exact=False, serial_when_one=False):
    """Compile a kernel whose prange loops run on Numba's thread pool (exact: without fastmath).

    The kernel's last argument is n_threads. It is applied here, outside the
    compiled code, because calling set_num_threads inside a kernel would make
    Numba refuse to cache it. serial_when_one: a call with one thread runs a
    serial compilation instead, which never starts the pool (its GNU OpenMP
    threads would make any later fork() of the process fail in the child): for
    the small kernels that predicting and scoring call on one thread.
    """
    if fn is None:
        return functools.partial(parallel_kernel, exact=exact, serial_when_one=serial_when_one)
    options = EXACT if exact else OPTIONS
    compiled = numba.njit(parallel=True, **options)(fn)
    serial = numba.njit(**options)(_renamed(fn, "_serial")) if serial_when_one else None
    n_params = fn.__code__.co_argcount

    @functools.wraps(fn)
    def run(*args, n_threads=None):
        # n_threads may come last among the positional arguments, as in the
        # reference's signature, or by keyword; it has no default there either.
        if len(args) != (n_params if n_threads is None else n_params - 1):
            raise TypeError(f"{fn.__name__}() takes {n_params} arguments, n_threads last, "
                            f"got {len(args) + (n_threads is not None)}")
        if n_threads is None:
            *args, n_threads = args
        if serial is not None and n_threads == 1:
            return serial(*args, n_threads)
        numba.set_num_threads(n_threads)
        if _layer_is_threadsafe():
            return compiled(*args, n_threads)
        with _workqueue_lock:
            return compiled(*args, n_threads)

    run.compiled = compiled
    return run


def _renamed(fn, suffix):
    """A copy of fn under another name: Numba's disk cache files a function by its name and line,
    and would take a serial and a parallel compilation of one function for each other."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + suffix
    return twin


# Numba's "workqueue" threading layer (the fallback when neither OpenMP nor
# TBB loads) aborts the process if two threads enter parallel code at once;
# under it, and until a layer is chosen, parallel kernels run one at a time.
_workqueue_lock = threading.Lock()


def _layer_is_threadsafe():
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel kernel has run yet, so no layer is chosen
        return False
