"""Kernel backends by name, and the thread count the compiled ones use.

A backend is a module of lenet_engine.kernels exporting the same kernel
functions (see kernels/README.md). Backends are imported only when asked
for, so using one never loads another's runtime.
"""

import contextlib
import functools
import importlib
import os
import threading

from lenet_engine.errors import InvalidInputError, UnknownModelError

# "auto" takes the first of these that imports.
PREFERENCE = ("cython", "numba", "numpy")
THREADS_ENV = "LENET_ENGINE_NUM_THREADS"

_num_threads = None
# thread_limit's per-thread caps: a Dask worker runs one task per thread, each on its own core.
_caps = threading.local()


def backends():
    """Names of the backends that import here, fastest first."""
    names = []
    for name in PREFERENCE:
        try:
            get_backend(name)
        except ImportError:
            continue
        names.append(name)
    return names


def get_backend(name):
    """The kernel module of backend `name` ("numpy", "numba", "cython" or "auto")."""
    if name == "auto":
        for candidate in PREFERENCE:
            try:
                return get_backend(candidate)
            except ImportError:
                continue
    if name not in PREFERENCE:
        raise UnknownModelError(
            f"unknown backend {name!r}: expected 'auto' or one of {', '.join(PREFERENCE)}"
        )
    return importlib.import_module(f"lenet_engine.kernels.{name}")


def info():
    """What this installation runs on, as a dict (`lenet-engine info` prints it):

    version, python, numpy; backends (importable here, "auto"'s order first); threads (the
    kernels' thread count); isa (the Cython kernel level in use: "baseline", "v3", "v4", or
    "native"/"portable" for such builds; None without the Cython backend); isa_available (the
    levels this CPU runs, best first); cpu_level (the x86-64 level of this CPU and OS, 1 to 4;
    0 elsewhere); builds ({backend: what its bits depend on}); int8 (the instructions the
    Cython int8 kernels sum with at that level, e.g. "AVX512-VNNI vpdpbusd"; None without them).
    """
    import sys

    import numpy

    from lenet_engine._version import __version__

    names = backends()
    kernels = {name: get_backend(name) for name in names}
    cython = kernels.get("cython")
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "backends": names,
        "threads": get_num_threads(),
        "isa": cython.ISA if cython else None,
        "isa_available": list(cython.LEVELS_AVAILABLE) if cython else [],
        "cpu_level": cython.CPU_LEVEL if cython else None,
        "builds": {name: module.BUILD for name, module in kernels.items()},
        "int8": getattr(cython, "INT8_INSTRUCTIONS", None),
    }


def set_num_threads(n):
    """Threads for the compiled kernels from now on (all models, all backends); None restores the default."""
    global _num_threads
    _num_threads = None if n is None else _check_threads(n, "set_num_threads")


@contextlib.contextmanager
def thread_limit(n):
    """Kernels called from this Python thread, inside the block, use at most n threads.

    For schedulers that already run one task per core (Dask workers): without it every
    task would start a pool of all the cores, and the cores would be oversubscribed.
    """
    n = _check_threads(n, "thread_limit")
    previous = getattr(_caps, "limit", None)
    _caps.limit = n if previous is None else min(n, previous)
    try:
        yield
    finally:
        _caps.limit = previous


def get_num_threads():
    """The thread count kernels run with: set_num_threads, else $LENET_ENGINE_NUM_THREADS, else the
    CPUs this process may run on (at most thread_limit's, inside one). Not $OMP_NUM_THREADS: Dask's
    LocalCluster sets it to 1 in the process that starts it, and leaves it there."""
    cap = getattr(_caps, "limit", None)
    if cap is not None:
        return min(cap, _configured_threads())
    return _configured_threads()


def _configured_threads():
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get(THREADS_ENV)
    if env:
        return _check_threads(env, f"${THREADS_ENV}")
    return _cores()


@functools.lru_cache(maxsize=1)
def _cores():
    # Read once: it goes to /sys, a sizeable part of one digit's prediction.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _check_threads(n, source):
    try:
        value = int(n)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: thread count must be a positive integer, got {n!r}") from None
    if value < 1 or str(value) != str(n).strip():
        raise InvalidInputError(f"{source}: thread count must be a positive integer, got {n!r}")
    return value
