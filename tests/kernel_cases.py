"""Random instances of every kernel pair, shared by the kernel and gradient tests.

A Case holds a forward call's inputs and output shapes, and says how to call
the matching backward: which forward inputs it differentiates and what else
it reads. The objective whose gradient backward computes is
sum(out * dout) for layers and mean(loss) for losses (dout is None).
<op>_curvature (SDLM's second-order backward) is called for the same inputs,
with hout = dout**2 as the (non-negative) curvature arriving from above.
valid_calls gives one small valid call of every kernel, for the tests of what
the kernels accept, refuse and return.
"""

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lenet_engine import constants, quantize
from lenet_engine.architectures import get_architecture, initial_state
from lenet_engine.backends import get_backend
from lenet_engine.kernels.fused import FusedWeights

F32 = np.float32


@dataclass
class Case:
    op: str                      # kernels are <op>_forward and <op>_backward
    out_shapes: list             # shapes of the forward outputs, in argument order
    inputs: list                 # forward inputs after the outputs (n_threads excluded)
    grad_of: list                # indices in `inputs` that backward writes gradients of, in order
    backward_args: Callable      # (inputs, forward outputs, dout) -> backward arguments after the grads
    dout: np.ndarray | None      # upstream gradient of the first output; None for losses

    def as_dtype(self, dtype):
        """The same case with every floating array cast (ints and tables untouched)."""
        def cast(a):
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                return a.astype(dtype)
            if isinstance(a, (float, np.floating)):
                return dtype(a)
            return a
        dout = None if self.dout is None else self.dout.astype(dtype)
        return Case(self.op, self.out_shapes, [cast(a) for a in self.inputs], self.grad_of,
                    self.backward_args, dout)


def _normal(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(F32)


def conv2d(rng, n, c_in, c_out, k, h, w):
    x = _normal(rng, n, c_in, h, w)
    wt = _normal(rng, c_out, c_in, k, k, scale=0.3)
    b = _normal(rng, c_out)
    out = (n, c_out, h - k + 1, w - k + 1)
    return Case("conv2d", [out], [x, wt, b], [0, 1, 2],
                lambda i, o, d: [d, i[0], i[1]], _normal(rng, *out))


def random_table(rng, c_in, c_out):
    """A connection table: each output map reads a random non-empty sorted subset of the inputs."""
    rows = []
    for _ in range(c_out):
        size = rng.integers(1, c_in + 1)
        rows.append(tuple(sorted(rng.choice(c_in, size=size, replace=False))))
    return rows


def sparse_conv2d(rng, n, table, c_in, k, h, w):
    conn_start, conn_in = constants.connection_arrays(table)
    x = _normal(rng, n, c_in, h, w)
    wt = _normal(rng, len(conn_in), k, k, scale=0.3)
    b = _normal(rng, len(table))
    out = (n, len(table), h - k + 1, w - k + 1)
    return Case("sparse_conv2d", [out], [x, wt, b, conn_start, conn_in], [0, 1, 2],
                lambda i, o, d: [d, i[0], i[1], i[3], i[4]], _normal(rng, *out))


def avgpool2x2(rng, n, c, ho, wo):
    x = _normal(rng, n, c, 2 * ho, 2 * wo)
    out = (n, c, ho, wo)
    return Case("avgpool2x2", [out], [x], [0], lambda i, o, d: [d], _normal(rng, *out))


def subsample(rng, n, c, ho, wo):
    x = _normal(rng, n, c, 2 * ho, 2 * wo)
    out = (n, c, ho, wo)
    return Case("subsample", [out], [x, _normal(rng, c), _normal(rng, c)], [0, 1, 2],
                lambda i, o, d: [d, i[0], i[1]], _normal(rng, *out))


def linear(rng, n, n_in, n_out):
    out = (n, n_out)
    return Case("linear", [out],
                [_normal(rng, n, n_in), _normal(rng, n_out, n_in, scale=0.3), _normal(rng, n_out)],
                [0, 1, 2], lambda i, o, d: [d, i[0], i[1]], _normal(rng, *out))


def tanh(rng, m, amplitude, slope):
    return Case("tanh", [(m,)], [_normal(rng, m, scale=2.0), F32(amplitude), F32(slope)], [0],
                lambda i, o, d: [d, o[0], i[1], i[2]], _normal(rng, m))


def rbf(rng, n, units, dim):
    out = (n, units)
    return Case("rbf", [out], [_normal(rng, n, dim), _normal(rng, units, dim)], [0, 1],
                lambda i, o, d: [d, i[0], i[1]], _normal(rng, *out))


def softmax_xent(rng, n, classes, scale):
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    return Case("softmax_xent", [(n,), (n, classes)], [_normal(rng, n, classes, scale=scale), labels],
                [0], lambda i, o, d: [o[1], i[1]], None)


def map_loss(rng, n, classes, scale, j):
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    dist = (scale * rng.random((n, classes))).astype(F32)  # distances are >= 0
    return Case("map_loss", [(n,)], [dist, labels, float(j)], [0],
                lambda i, o, d: [i[0], i[1], i[2]], None)


# A case of random sizes per kernel pair, near LeNet-5's own shapes: d(lo, hi) draws a size.
CASE_MAKERS = {
    "conv2d": lambda rng, d: conv2d(rng, d(1, 4), d(1, 4), d(1, 6), 5, d(5, 14), d(5, 14)),
    "sparse_conv2d": lambda rng, d: sparse_conv2d(rng, d(1, 4), constants.TABLE_I, 6, 5, 14, 14),
    # Wider layers, more digits, other kernel sizes: the v4 loops' other paths (output maps in
    # the vector lanes from 12 maps on, groups of 16 maps and a partial one, six input maps at a
    # time, blocks of 32 digits, masked row ends, kernels other than 5x5).
    # Maps are kept small: the gradients' float32 sums over many more terms would round
    # beyond the tests' tolerance on every level.
    "conv2d_wide": lambda rng, d: conv2d(rng, d(1, 36), d(1, 8), d(10, 36), (3, 5, 7)[d(0, 2)],
                                         d(7, 10), d(7, 10)),
    "sparse_conv2d_random": lambda rng, d: sparse_conv2d(rng, d(1, 36), random_table(rng, 7, d(10, 20)),
                                                         7, 5, d(5, 10), d(5, 10)),
    "avgpool2x2": lambda rng, d: avgpool2x2(rng, d(1, 4), d(1, 16), d(1, 14), d(1, 14)),
    "subsample": lambda rng, d: subsample(rng, d(1, 4), d(1, 16), d(1, 14), d(1, 14)),
    "linear": lambda rng, d: linear(rng, d(1, 9), d(1, 400), d(1, 120)),
    "tanh": lambda rng, d: tanh(rng, d(1, 5000), constants.SQUASH_AMPLITUDE, constants.SQUASH_SLOPE),
    "rbf": lambda rng, d: rbf(rng, d(1, 9), 10, 84),
    "softmax_xent": lambda rng, d: softmax_xent(rng, d(1, 9), 10, 5.0),
    "map_loss": lambda rng, d: map_loss(rng, d(1, 9), 10, 100.0, 1.0),
}


def random_case(op, rng):
    """A Case of kernel pair `op` with sizes and values drawn from rng."""
    return CASE_MAKERS[op](rng, lambda lo, hi: int(rng.integers(lo, hi + 1)))


def run_forward(kernels, case, n_threads, dtype):
    """Call <op>_forward on NaN-filled outputs (so an unwritten element shows) and return them."""
    outs = [np.full(s, np.nan, dtype=dtype) for s in case.out_shapes]
    getattr(kernels, f"{case.op}_forward")(*outs, *case.inputs, n_threads)
    return outs


def run_backward(kernels, case, outs, n_threads, dtype):
    """Call <op>_backward on NaN-filled gradient arrays and return them."""
    grads = [np.full(np.shape(case.inputs[i]), np.nan, dtype=dtype) for i in case.grad_of]
    args = case.backward_args(case.inputs, outs, case.dout)
    getattr(kernels, f"{case.op}_backward")(*grads, *args, n_threads)
    return grads


# What <op>_curvature reads after its h arrays: (inputs, forward outputs, dout, hout) -> arguments.
CURVATURE_ARGS = {
    "conv2d": lambda i, o, d, h: [h, i[0], i[1]],
    "sparse_conv2d": lambda i, o, d, h: [h, i[0], i[1], i[3], i[4]],
    "avgpool2x2": lambda i, o, d, h: [h],
    "subsample": lambda i, o, d, h: [h, i[0], i[1]],
    "linear": lambda i, o, d, h: [h, i[0], i[1]],
    "tanh": lambda i, o, d, h: [h, o[0], i[1], i[2]],
    "rbf": lambda i, o, d, h: [h, d, i[0], i[1]],
    "softmax_xent": lambda i, o, d, h: [o[1]],
    "map_loss": lambda i, o, d, h: [i[0], i[2]],
}


def hout_of(case):
    """The curvature arriving at a layer's output in these tests (None for losses)."""
    return None if case.dout is None else case.dout * case.dout


def run_curvature(kernels, case, outs, n_threads, dtype):
    """Call <op>_curvature on NaN-filled arrays (one per input backward differentiates) and return them."""
    hs = [np.full(np.shape(case.inputs[i]), np.nan, dtype=dtype) for i in case.grad_of]
    args = CURVATURE_ARGS[case.op](case.inputs, outs, case.dout, hout_of(case))
    getattr(kernels, f"{case.op}_curvature")(*hs, *args, n_threads)
    return hs


# --- one valid call of every kernel ---------------------------------------------

def _small_cases(rng, n):
    """One small case per kernel pair, every array extent >= 2 (so slicing one makes it non-contiguous)."""
    return [
        conv2d(rng, n, 2, 3, 3, 7, 8),
        sparse_conv2d(rng, n, constants.TABLE_I, 6, 5, 9, 10),
        avgpool2x2(rng, n, 2, 3, 4),
        subsample(rng, n, 2, 3, 4),
        linear(rng, n, 5, 4),
        tanh(rng, 4 * n + 3, constants.SQUASH_AMPLITUDE, constants.SQUASH_SLOPE),
        rbf(rng, n, 4, 6),
        softmax_xent(rng, n, 5, 3.0),
        map_loss(rng, n, 5, 10.0, 1.0),
    ]


def valid_calls(n=3, seed=0):
    """{kernel name: (parameter names, valid float32 arguments without n_threads, number of outputs)}
    for every kernel the reference exports; fresh arrays at every call (tests modify them)."""
    reference = get_backend("numpy")
    calls = {}
    for case in _small_cases(np.random.default_rng(seed), n):
        outs = [np.zeros(s, F32) for s in case.out_shapes]
        # The reference fills the forward outputs that backward reads (tanh's y, softmax's probs).
        getattr(reference, f"{case.op}_forward")(*outs, *case.inputs, 1)
        grads = [np.zeros(np.shape(case.inputs[i]), F32) for i in case.grad_of]
        backward_args = case.backward_args(case.inputs, outs, case.dout)
        calls[f"{case.op}_forward"] = (outs + list(case.inputs), len(outs))
        calls[f"{case.op}_backward"] = (grads + list(backward_args), len(grads))
        curvature_args = CURVATURE_ARGS[case.op](case.inputs, outs, case.dout, hout_of(case))
        calls[f"{case.op}_curvature"] = ([g.copy() for g in grads] + list(curvature_args), len(grads))
    calls["lenet5_forward"] = (_fused_call(n, seed), 1)
    calls["lenet5_squash"] = (_squash_call(n, seed), 1)
    calls["distort_forward"] = (_distort_call(n, seed), 1)
    calls["lenet5_int8_codes"] = (_int8_call(n, seed, np.zeros((n, 84), np.int8)), 1)
    calls["lenet5_int8_forward"] = (_int8_call(n, seed, np.zeros((n, 10), F32)), 1)
    calls["softmax_forward"] = ([np.zeros((n, 5), F32), _normal(np.random.default_rng(seed), n, 5), -1.0], 1)
    names = {name: list(inspect.signature(getattr(reference, name)).parameters) for name in calls}
    return {name: (names[name][:-1], args, n_out) for name, (args, n_out) in calls.items()}


def _fused_call(n, seed):
    """Arguments of lenet5_forward for classic with fresh weights (copies: tests modify them)."""
    spec = get_architecture("classic")
    digits = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    weights = spec.fused_weights(initial_state(spec, seed))
    weights = FusedWeights(*(np.array(a) if isinstance(a, np.ndarray) else a for a in weights))
    return [np.zeros((n, 10), F32), digits, weights]


def _int8_call(n, seed, out):
    """Arguments of lenet5_int8_codes / _forward (by `out`): classic's fresh weights quantized with
    the activation scales of the squashing's full range."""
    spec = get_architecture("classic")
    digits = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    scales = quantize.activation_scales(spec, dict.fromkeys(quantize.STAGES, float(spec.amplitude)))
    return [out, digits, quantize.int8_weights(spec, spec.fused_weights(initial_state(spec, seed)), scales)]


def _squash_call(n, seed):
    """Arguments of lenet5_squash: values to squash in place, the paper's A and S."""
    v = _normal(np.random.default_rng(seed), 4 * n + 3, scale=2.0)
    return [v, F32(constants.SQUASH_AMPLITUDE), F32(constants.SQUASH_SLOPE)]


def _distort_call(n, seed):
    """Arguments of distort_forward: digits, near-identity maps and a small flow."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 7)).astype(F32)
    matrices = (np.eye(2, 3) + rng.normal(0, 0.1, (n, 2, 3))).astype(F32)
    return [np.zeros_like(x), x, matrices, rng.normal(0, 0.5, (n, 2, 6, 7)).astype(F32)]
