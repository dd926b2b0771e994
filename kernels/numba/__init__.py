"""The Numba backend: every kernel of the NumPy reference, JIT-compiled, parallel over the batch.

Same names and signatures as kernels/numpy; compiled on first call and cached on disk.
"""

from lenet_engine.kernels.numba.activation import tanh_backward, tanh_curvature, tanh_forward
from lenet_engine.kernels.numba.conv import (
    conv2d_backward,
    conv2d_curvature,
    conv2d_forward,
    sparse_conv2d_backward,
    sparse_conv2d_curvature,
    sparse_conv2d_forward,
)
from lenet_engine.kernels.numba.distort import distort_forward
from lenet_engine.kernels.numba.lenet5_int8 import Lenet5Int8Forward, lenet5_int8_codes, lenet5_int8_forward
from lenet_engine.kernels.numba.lenet5 import Lenet5Forward, lenet5_forward, lenet5_squash
from lenet_engine.kernels.numba.linear import linear_backward, linear_curvature, linear_forward
from lenet_engine.kernels.numba.loss import (
    map_loss_backward,
    map_loss_curvature,
    map_loss_forward,
    softmax_forward,
    softmax_xent_backward,
    softmax_xent_curvature,
    softmax_xent_forward,
)
from lenet_engine.kernels.numba.pool import (
    avgpool2x2_backward,
    avgpool2x2_curvature,
    avgpool2x2_forward,
    subsample_backward,
    subsample_curvature,
    subsample_forward,
)
from lenet_engine.kernels.numba.rbf import rbf_backward, rbf_curvature, rbf_forward

NAME = "numba"

import os as _os

import llvmlite.binding as _llvm
import numba as _numba

# Threading layer, chosen on purpose: OpenMP first, since the Cython backend's
# kernels use the same libgomp, so a process running both keeps one OpenMP
# runtime; then TBB; then workqueue, under which _jit serialises parallel calls.
# A user's NUMBA_THREADING_LAYER(_PRIORITY) still wins.
if "NUMBA_THREADING_LAYER_PRIORITY" not in _os.environ:
    _numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

# What the compiled code depends on: Numba's version and the CPU LLVM compiles for (the host's,
# unless NUMBA_CPU_NAME says otherwise). Trained weights record it (bits repeat on one build).
BUILD = f"numba {_numba.__version__} for {_numba.config.CPU_NAME or _llvm.get_host_cpu_name()}"

# Kernels are given at most this many threads (Numba fixes its pool size at start-up).
MAX_THREADS = _numba.config.NUMBA_NUM_THREADS


# The compiled loops check no bounds: each public kernel checks its arguments and thread count
# first (kernels/contracts.py), so a wrong shape, connection table or label raises instead of
# reading or writing past an array.
from lenet_engine.kernels import contracts as _contracts  # noqa: E402 - after the kernels it guards

_contracts.guard_kernels(globals(), MAX_THREADS)
