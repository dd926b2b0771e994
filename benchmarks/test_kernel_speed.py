"""Every kernel of every backend, at LeNet-5's real shapes and a batch of 128 (pytest-benchmark).

One group per kernel and site (e.g. "conv2d_forward C1"), holding the numpy,
numba and cython runs of that same call, so pytest-benchmark's table and the
terminal summary of conftest.py read as ratios between backends. Each kernel
is called once before it is timed, so Numba's compilation (or loading from its
disk cache) stays out of the timings. The compiled backends get
`le.get_num_threads()` threads (all cores unless LENET_ENGINE_NUM_THREADS
says otherwise); the NumPy reference runs on the calling thread.

The inputs are random at the scale the layers see (weights ~0.1, maps ~1);
the kernels' speed does not depend on the values. lenet5_forward runs the
shipped weights on the shipped sample digits.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import lenet_engine as le
from lenet_engine import constants
from lenet_engine.architectures import get_architecture
from lenet_engine.backends import get_backend
from lenet_engine.cli import load_samples

BATCH = 128
F32 = np.float32


@dataclass
class Site:
    """One kernel pair where LeNet-5 calls it: forward outputs and inputs, and the backward call."""
    op: str                    # kernels are <op>_forward and <op>_backward
    where: str                 # the layer(s) of LeNet-5 with these shapes
    out_shapes: list           # forward outputs, in argument order
    make_inputs: Callable      # rng -> forward inputs after the outputs
    grad_shapes: Callable      # inputs -> shapes of backward's outputs, in argument order
    backward_args: Callable    # (inputs, forward outputs, rng) -> backward arguments after its outputs


def _normal(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(F32)


def _conv(where, c_in, side, c_out):
    out = (BATCH, c_out, side - 4, side - 4)
    return Site("conv2d", where, [out],
                lambda r: [_normal(r, BATCH, c_in, side, side), _normal(r, c_out, c_in, 5, 5, scale=0.1),
                           _normal(r, c_out)],
                lambda i: [i[0].shape, i[1].shape, i[2].shape],
                lambda i, o, r: [_normal(r, *out), i[0], i[1]])


def _sparse_conv():
    conn_start, conn_in = constants.connection_arrays()  # Table I
    out = (BATCH, 16, 10, 10)
    return Site("sparse_conv2d", "C3 classic (Table I)", [out],
                lambda r: [_normal(r, BATCH, 6, 14, 14), _normal(r, len(conn_in), 5, 5, scale=0.1),
                           _normal(r, 16), conn_start, conn_in],
                lambda i: [i[0].shape, i[1].shape, i[2].shape],
                lambda i, o, r: [_normal(r, *out), i[0], i[1], i[3], i[4]])


def _avgpool(where, maps, side):
    out = (BATCH, maps, side // 2, side // 2)
    return Site("avgpool2x2", where, [out],
                lambda r: [_normal(r, BATCH, maps, side, side)],
                lambda i: [i[0].shape],
                lambda i, o, r: [_normal(r, *out)])


def _subsample(where, maps, side):
    out = (BATCH, maps, side // 2, side // 2)
    return Site("subsample", where, [out],
                lambda r: [_normal(r, BATCH, maps, side, side), _normal(r, maps, scale=0.1), _normal(r, maps)],
                lambda i: [i[0].shape, i[1].shape, i[2].shape],
                lambda i, o, r: [_normal(r, *out), i[0], i[1]])


def _linear(where, n_in, n_out):
    out = (BATCH, n_out)
    return Site("linear", where, [out],
                lambda r: [_normal(r, BATCH, n_in), _normal(r, n_out, n_in, scale=0.1), _normal(r, n_out)],
                lambda i: [i[0].shape, i[1].shape, i[2].shape],
                lambda i, o, r: [_normal(r, *out), i[0], i[1]])


def _tanh():
    size = BATCH * 6 * 28 * 28
    return Site("tanh", "C1 maps, scaled (1.7159, 2/3)", [(size,)],
                lambda r: [_normal(r, size), F32(constants.SQUASH_AMPLITUDE), F32(constants.SQUASH_SLOPE)],
                lambda i: [i[0].shape],
                lambda i, o, r: [_normal(r, size), o[0], i[1], i[2]])


def _rbf():
    return Site("rbf", "output (84 -> 10)", [(BATCH, 10)],
                lambda r: [_normal(r, BATCH, 84), np.sign(_normal(r, 10, 84)).astype(F32)],
                lambda i: [i[0].shape, i[1].shape],
                lambda i, o, r: [_normal(r, BATCH, 10), i[0], i[1]])


def _labels(rng):
    return rng.integers(0, 10, size=BATCH).astype(np.int64)


def _softmax_xent():
    return Site("softmax_xent", "modern output", [(BATCH,), (BATCH, 10)],
                lambda r: [_normal(r, BATCH, 10, scale=3.0), _labels(r)],
                lambda i: [i[0].shape],
                lambda i, o, r: [o[1], i[1]])


def _map_loss():
    return Site("map_loss", "classic output, j = 1", [(BATCH,)],
                lambda r: [(50.0 * r.random((BATCH, 10))).astype(F32), _labels(r), 1.0],
                lambda i: [i[0].shape],
                lambda i, o, r: [i[0], i[1], i[2]])


SITES = [
    _conv("C1", 1, 32, 6), _conv("C3 modern (full)", 6, 14, 16), _sparse_conv(),
    _avgpool("S2 modern", 6, 28), _avgpool("S4 modern", 16, 10),
    _subsample("S2 classic", 6, 28), _subsample("S4 classic", 16, 10),
    _linear("C5 / dense1 (400 -> 120)", 400, 120), _linear("F6 / dense2 (120 -> 84)", 120, 84),
    _tanh(), _rbf(), _softmax_xent(), _map_loss(),
]
BACKENDS = le.backends()


def _threads(backend):
    return min(le.get_num_threads(), backend.MAX_THREADS)


def _label(benchmark, group, backend, n_threads, **info):
    benchmark.group = group
    benchmark.extra_info.update(backend=backend, threads=n_threads, **info)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("site", SITES, ids=lambda s: f"{s.op}-{s.where.split()[0]}")
def test_forward(benchmark, site, backend_name):
    backend, rng = get_backend(backend_name), np.random.default_rng(0)
    n_threads = _threads(backend)
    kernel = getattr(backend, f"{site.op}_forward")
    inputs = site.make_inputs(rng)
    outs = [np.empty(s, F32) for s in site.out_shapes]
    kernel(*outs, *inputs, n_threads)  # compiles (numba) or loads the cache: not timed
    _label(benchmark, f"{site.op}_forward {site.where}", backend_name, n_threads, batch=BATCH)
    benchmark(kernel, *outs, *inputs, n_threads)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("site", SITES, ids=lambda s: f"{s.op}-{s.where.split()[0]}")
def test_backward(benchmark, site, backend_name):
    backend, rng = get_backend(backend_name), np.random.default_rng(0)
    n_threads = _threads(backend)
    inputs = site.make_inputs(rng)
    outs = [np.empty(s, F32) for s in site.out_shapes]
    getattr(backend, f"{site.op}_forward")(*outs, *inputs, n_threads)
    kernel = getattr(backend, f"{site.op}_backward")
    grads = [np.empty(s, F32) for s in site.grad_shapes(inputs)]
    args = site.backward_args(inputs, outs, rng)
    kernel(*grads, *args, n_threads)  # compiles (numba) or loads the cache: not timed
    _label(benchmark, f"{site.op}_backward {site.where}", backend_name, n_threads, batch=BATCH)
    benchmark(kernel, *grads, *args, n_threads)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("arch", ["classic", "modern"])
def test_lenet5_forward(benchmark, arch, backend_name):
    """The fused inference kernel alone (no input checks, no chunking), shipped weights and digits."""
    backend = get_backend(backend_name)
    n_threads = _threads(backend)
    spec = get_architecture(arch)
    images, _ = load_samples()
    digits = np.resize(images, (BATCH, 28, 28))
    weights = spec.fused_weights(le.load(arch).state_dict())
    out = np.empty((BATCH, 10), F32)
    backend.lenet5_forward(out, digits, weights, n_threads)  # compiles or loads: not timed
    _label(benchmark, f"lenet5_forward {arch}", backend_name, n_threads, batch=BATCH, digits=BATCH)
    benchmark(backend.lenet5_forward, out, digits, weights, n_threads)
