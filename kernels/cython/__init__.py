"""The Cython backend: every kernel of the NumPy reference, compiled ahead of time, nogil, OpenMP.

Same names and signatures as kernels/numpy (the reference) and kernels/numba
(the JIT twin). setup.py compiles each kernels/cython/<name>.pyx once per
x86-64 level, into lenet_engine.kernels.cython.<name>_<level>; at import this
package takes the kernels of the best level this CPU runs (or the one
LENET_ENGINE_ISA names) and exports them under their plain names. Each kernel
checks its arguments' shapes before its unchecked loops run, and releases the
GIL while they do.
"""

import importlib
import os
import types

from lenet_engine.errors import UnknownModelError, UnsupportedCPUError
from lenet_engine.kernels.cython import _build

NAME = "cython"
ISA_ENV = "LENET_ENGINE_ISA"

# The kernel modules and the names each exports: one per .pyx but _build.
MODULES = {
    "activation": ("tanh_forward", "tanh_backward", "tanh_curvature"),
    "conv": ("conv2d_forward", "conv2d_backward", "conv2d_curvature",
             "sparse_conv2d_forward", "sparse_conv2d_backward", "sparse_conv2d_curvature"),
    "distort": ("distort_forward",),
    "lenet5": ("Lenet5Forward", "lenet5_forward", "lenet5_squash"),
    "lenet5_int8": ("Lenet5Int8Forward", "lenet5_int8_codes", "lenet5_int8_forward", "INT8_INSTRUCTIONS"),
    "linear": ("linear_forward", "linear_backward", "linear_curvature"),
    "loss": ("map_loss_forward", "map_loss_backward", "map_loss_curvature", "softmax_forward",
             "softmax_xent_forward", "softmax_xent_backward", "softmax_xent_curvature"),
    "pool": ("avgpool2x2_forward", "avgpool2x2_backward", "avgpool2x2_curvature",
             "subsample_forward", "subsample_backward", "subsample_curvature"),
    "rbf": ("rbf_forward", "rbf_backward", "rbf_curvature"),
}
# The x86-64 level (psABI numbering) each kernel level needs, best first; a native build runs on
# the CPU it was built for, a portable one anywhere.
NEEDS = {"native": 0, "v4": 4, "v3": 3, "baseline": 1, "portable": 0}

# The x86-64 level of this CPU and OS (1 to 4; 0 on other processors).
CPU_LEVEL = _build.cpu_level()
# Every level this build has, with its compile flags; those this CPU runs, best first.
LEVELS_BUILT = _build.levels_built()
LEVELS_AVAILABLE = tuple(level for level in NEEDS if level in LEVELS_BUILT and CPU_LEVEL >= NEEDS[level])
# False when the compiler had no OpenMP: the kernels then run on the calling thread.
OPENMP = _build.openmp_available()
# Kernels are given at most this many threads (l5_threads.h: the processors, not $OMP_NUM_THREADS's cap).
MAX_THREADS = _build.max_threads()


def level_kernels(level):
    """The kernels of one level, as a module-like namespace of the same names as this package.

    For tests and benchmarks, which compare the levels this CPU runs; the models use the level
    this package exports.
    """
    if level not in LEVELS_BUILT:
        raise UnknownModelError(f"{ISA_ENV}: unknown level {level!r}: this build has "
                                f"{', '.join(LEVELS_BUILT)}")
    if level not in LEVELS_AVAILABLE:
        raise UnsupportedCPUError(f"{ISA_ENV}={level}: this CPU (x86-64 level {CPU_LEVEL}) cannot "
                                  f"run the {level} kernels; it runs {', '.join(LEVELS_AVAILABLE)}")
    kernels = types.ModuleType(f"{__name__}[{level}]")
    for module, names in MODULES.items():
        compiled = importlib.import_module(f"{__name__}.{module}_{level}")
        for name in names:
            setattr(kernels, name, getattr(compiled, name))
    kernels.NAME, kernels.ISA, kernels.OPENMP, kernels.MAX_THREADS = NAME, level, OPENMP, MAX_THREADS
    # What the bits depend on: trained weights record it (one command gives the same bits on one build).
    kernels.BUILD = f"{_build.compiler()} {level} ({LEVELS_BUILT[level]})".replace(" ()", "")
    return kernels


def _chosen_level():
    forced = os.environ.get(ISA_ENV, "").strip()
    if forced:
        return forced
    if not LEVELS_AVAILABLE:
        raise UnsupportedCPUError(f"this CPU runs none of the Cython kernel levels built ({', '.join(LEVELS_BUILT)})")
    return LEVELS_AVAILABLE[0]


_chosen = level_kernels(_chosen_level())
globals().update({name: getattr(_chosen, name) for names in MODULES.values() for name in names})
# The level in use, and the build it is: BUILD names the compiler, level and flags.
ISA, BUILD = _chosen.ISA, _chosen.BUILD
del _chosen
