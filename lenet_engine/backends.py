"""Kernel backends by name, and the thread count the compiled ones use.

A backend is a module of lenet_engine.kernels exporting the same kernel
functions (see kernels/README.md). Backends are imported only when asked
for, so using one never loads another's runtime.
"""

import functools
import importlib
import os

from lenet_engine.errors import UnknownModelError

# "auto" takes the first of these that imports.
PREFERENCE = ("cython", "numba", "numpy")
THREADS_ENV = "LENET_ENGINE_NUM_THREADS"

_num_threads = None


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


def set_num_threads(n):
    """Threads for the compiled kernels from now on (all models, all backends); None restores the default."""
    global _num_threads
    _num_threads = None if n is None else _check_threads(n, "set_num_threads")


def get_num_threads():
    """The thread count kernels run with: set_num_threads, else $LENET_ENGINE_NUM_THREADS, else all cores."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get(THREADS_ENV)
    if env:
        return _check_threads(env, f"${THREADS_ENV}")
    return _cores()


@functools.lru_cache(maxsize=1)
def _cores():
    # os.cpu_count() reads /sys on every call, a sizeable part of one digit's prediction.
    return os.cpu_count() or 1


def _check_threads(n, source):
    try:
        value = int(n)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: thread count must be a positive integer, got {n!r}") from None
    if value < 1 or str(value) != str(n).strip():
        raise ValueError(f"{source}: thread count must be a positive integer, got {n!r}")
    return value
