"""The NumPy reference backend: every kernel written plainly, the oracle for the others.

A backend is a module exporting these names with these signatures:
kernels/numba and kernels/cython export the same ones.
"""

import numpy as _np

from lenet_engine.kernels.numpy.activation import tanh_backward, tanh_curvature, tanh_forward
from lenet_engine.kernels.numpy.conv import (
    conv2d_backward,
    conv2d_curvature,
    conv2d_forward,
    sparse_conv2d_backward,
    sparse_conv2d_curvature,
    sparse_conv2d_forward,
)
from lenet_engine.kernels.numpy.distort import distort_forward
from lenet_engine.kernels.numpy.lenet5_int8 import Lenet5Int8Forward, lenet5_int8_codes, lenet5_int8_forward
from lenet_engine.kernels.numpy.lenet5 import Lenet5Forward, lenet5_forward, lenet5_squash
from lenet_engine.kernels.numpy.linear import linear_backward, linear_curvature, linear_forward
from lenet_engine.kernels.numpy.loss import (
    map_loss_backward,
    map_loss_curvature,
    map_loss_forward,
    softmax_forward,
    softmax_xent_backward,
    softmax_xent_curvature,
    softmax_xent_forward,
)
from lenet_engine.kernels.numpy.pool import (
    avgpool2x2_backward,
    avgpool2x2_curvature,
    avgpool2x2_forward,
    subsample_backward,
    subsample_curvature,
    subsample_forward,
)
from lenet_engine.kernels.numpy.rbf import rbf_backward, rbf_curvature, rbf_forward

NAME = "numpy"

# What the results depend on besides the code: NumPy's version (its own SIMD loops and BLAS).
BUILD = f"numpy {_np.__version__}"

MAX_THREADS = 1  # NumPy kernels run on the calling thread


# The reference refuses the shapes, tables and labels the compiled twins refuse, with the same
# messages (kernels/contracts.py): NumPy would not crash on them, but it could broadcast, or wrap
# a negative index, into an answer that is silently wrong. Any float type and layout is its to take.
from lenet_engine.kernels import contracts as _contracts  # noqa: E402 - after the kernels it guards

_contracts.guard_kernels(globals(), exact_types=False)
