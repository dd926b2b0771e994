"""The Cython backend: every kernel of the NumPy reference, compiled ahead of time, nogil, OpenMP.

Same names and signatures as kernels/numpy (the reference) and kernels/numba
(the JIT twin). setup.py compiles each kernels/cython/*.pyx into
lenet_engine.kernels.cython.<name>, with OpenMP when the compiler has it;
each kernel checks its arguments' shapes before its unchecked loops run, and
releases the GIL while they do.
"""

from lenet_engine.kernels.cython._threads import build as _build
from lenet_engine.kernels.cython._threads import max_threads as _max_threads
from lenet_engine.kernels.cython._threads import openmp_available as _openmp_available
from lenet_engine.kernels.cython.activation import tanh_backward, tanh_curvature, tanh_forward
from lenet_engine.kernels.cython.conv import (
    conv2d_backward,
    conv2d_curvature,
    conv2d_forward,
    sparse_conv2d_backward,
    sparse_conv2d_curvature,
    sparse_conv2d_forward,
)
from lenet_engine.kernels.cython.distort import distort_forward
from lenet_engine.kernels.cython.lenet5 import Lenet5Forward, lenet5_forward, lenet5_squash
from lenet_engine.kernels.cython.linear import linear_backward, linear_curvature, linear_forward
from lenet_engine.kernels.cython.loss import (
    map_loss_backward,
    map_loss_curvature,
    map_loss_forward,
    softmax_xent_backward,
    softmax_xent_curvature,
    softmax_xent_forward,
)
from lenet_engine.kernels.cython.pool import (
    avgpool2x2_backward,
    avgpool2x2_curvature,
    avgpool2x2_forward,
    subsample_backward,
    subsample_curvature,
    subsample_forward,
)
from lenet_engine.kernels.cython.rbf import rbf_backward, rbf_curvature, rbf_forward

NAME = "cython"

# The compiler and CPU target of this build: trained weights record it (bits repeat on one build).
BUILD = _build()

# False when the compiler had no OpenMP: the kernels then run on the calling thread.
OPENMP = _openmp_available()

# Kernels are given at most this many threads (OpenMP's limit, read at import).
MAX_THREADS = _max_threads()
