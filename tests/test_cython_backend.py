"""What the compiled backends need testing for besides their arithmetic (test_kernels.py).

Their loops run without bounds checks (and Cython's without the GIL), so every
kernel, Cython's and Numba's alike, must refuse, with ValueError or TypeError
and before any loop runs, whatever would make them read or write out of
bounds: a wrong dtype, non-contiguous arrays, inconsistent shapes, labels or
connection-table entries out of range, a thread count outside the pool. And
Cython's results must not depend on the thread count, nor on other Python
threads running kernels at the same time.
"""

import inspect
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import kernel_cases as kc
import lenet_engine as le
from lenet_engine import constants
from lenet_engine.backends import backends, get_backend
from lenet_engine.kernels.fused import FusedWeights

CYTHON = get_backend("cython")
REFERENCE = get_backend("numpy")
# The backends whose kernels must refuse bad arguments themselves (Numba's check them in Python
# first: kernels/contracts.py).
GUARDED = [b for b in ("cython", "numba") if b in backends()]
KERNEL_NAMES = sorted(n for n in dir(REFERENCE) if n.endswith(("_forward", "_backward", "_curvature")))

# Axes no other argument constrains, so changing their length alone is a
# valid call: the class count of map_loss_forward's distances, and the input
# map count of sparse_conv2d_forward (the table need not read every map).
FREE_AXES = {("map_loss_forward", "dist", 1), ("sparse_conv2d_forward", "x", 1)}


def _param_names(name):
    return list(inspect.signature(getattr(REFERENCE, name)).parameters)


def _arrays(names, args):
    """(position, parameter name, array) of every array argument, and of every array in a
    FusedWeights argument (position (i, field), named by its field)."""
    found = []
    for i, a in enumerate(args):
        if isinstance(a, FusedWeights):
            found += [((i, f), f, v) for f, v in zip(a._fields, a) if isinstance(v, np.ndarray)]
        elif isinstance(a, np.ndarray):
            found.append((i, names[i], a))
    return found


def _argument_index(position):
    return position[0] if isinstance(position, tuple) else position


def _call(name, args, n_threads=1, backend="cython"):
    return getattr(get_backend(backend), name)(*args, n_threads)


def _replaced(args, position, new):
    args = list(args)
    if isinstance(position, tuple):
        i, field = position
        args[i] = args[i]._replace(**{field: new})
    else:
        args[position] = new
    return args


def _resized(a, axis, delta):
    """A C-contiguous array like `a` (same dtype, values copied where they fit) with one extent changed."""
    shape = list(a.shape)
    shape[axis] += delta
    out = np.zeros(shape, a.dtype)
    common = tuple(slice(0, min(s, t)) for s, t in zip(a.shape, shape))
    out[common] = a[common]
    return out


def _strided(a):
    """The values of `a` in a non-contiguous view (every other element of the last axis)."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    view = wide[..., ::2]
    view[...] = a
    return view


# --- the module ---------------------------------------------------------------

def test_backend_reports_its_name_and_threads():
    assert CYTHON.NAME == "cython"
    assert isinstance(CYTHON.OPENMP, bool)
    assert isinstance(CYTHON.MAX_THREADS, int) and CYTHON.MAX_THREADS >= 1
    if not CYTHON.OPENMP:
        assert CYTHON.MAX_THREADS == 1


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_valid_call_runs_and_returns_none(name):
    # The refusals below mean something only if the unmodified call is accepted.
    names, args, _ = kc.valid_calls()[name]
    assert _call(name, args) is None


# --- what the memoryview arguments refuse ---------------------------------------

@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_wrong_dtype_is_refused(name, backend):
    names, args, _ = kc.valid_calls()[name]
    for i, param, a in _arrays(names, args):
        wrong = a.astype(np.float64 if a.dtype == np.float32 else np.int32)
        with pytest.raises(ValueError):
            _call(name, _replaced(args, i, wrong), 1, backend)


@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_non_contiguous_array_is_refused(name, backend):
    names, args, _ = kc.valid_calls()[name]
    for i, param, a in _arrays(names, args):
        view = _strided(a)
        assert not view.flags.c_contiguous
        with pytest.raises(ValueError):
            _call(name, _replaced(args, i, view), 1, backend)
        # Fortran order is contiguous, but not in the layout the loops index.
        if a.ndim > 1:
            with pytest.raises(ValueError):
                _call(name, _replaced(args, i, np.asfortranarray(a)), 1, backend)


# The convolutions' backward takes dx=None to skip the input gradient (a network's first layer).
OPTIONAL = {("conv2d_backward", "dx"), ("sparse_conv2d_backward", "dx")}


@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_wrong_dimension_count_and_none_are_refused(name, backend):
    names, args, _ = kc.valid_calls()[name]
    for i, param, a in _arrays(names, args):
        with pytest.raises(ValueError):
            _call(name, _replaced(args, i, a[None]), 1, backend)
        if (name, param) in OPTIONAL:
            _call(name, _replaced(args, i, None), 1, backend)
            continue
        with pytest.raises(TypeError):
            _call(name, _replaced(args, i, None), 1, backend)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_read_only_inputs_are_accepted_and_read_only_outputs_refused(name):
    names, args, n_outputs = kc.valid_calls()[name]
    for i, param, a in _arrays(names, args):
        if _argument_index(i) >= n_outputs:
            a.flags.writeable = False
    _call(name, args)
    args[0].flags.writeable = False
    with pytest.raises(ValueError):
        _call(name, args)


# --- what the kernels check themselves -------------------------------------------

@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_inconsistent_shapes_are_refused(name, backend):
    names, args, _ = kc.valid_calls()[name]
    for i, param, a in _arrays(names, args):
        for axis in range(a.ndim):
            if (name, param, axis) in FREE_AXES:
                continue
            for delta in (-1, 1):
                with pytest.raises(ValueError, match=name):
                    _call(name, _replaced(args, i, _resized(a, axis, delta)), 1, backend)


@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("n_threads", [0, -1, "above the limit", 100_000])
def test_thread_count_outside_one_to_the_openmp_limit_is_refused(name, n_threads, backend):
    # Above the limit libgomp would try to start every thread (and abort the process when it cannot).
    if n_threads == "above the limit":
        n_threads = get_backend(backend).MAX_THREADS + 1
    names, args, _ = kc.valid_calls()[name]
    with pytest.raises(ValueError, match="n_threads"):
        _call(name, args, n_threads, backend)


@pytest.mark.parametrize("name", [n for n in KERNEL_NAMES if n.startswith(("softmax", "map_loss"))
                                  and "labels" in _param_names(n)])
@pytest.mark.parametrize("bad", [-1, 5, 2**40])
@pytest.mark.parametrize("backend", GUARDED)
def test_labels_out_of_range_are_refused(name, bad, backend):
    names, args, _ = kc.valid_calls()[name]
    i = names.index("labels")
    labels = args[i].copy()
    labels[1] = bad  # the cases have 5 classes
    with pytest.raises(ValueError, match="labels"):
        _call(name, _replaced(args, i, labels), 1, backend)


@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("name", ["sparse_conv2d_forward", "sparse_conv2d_backward", "sparse_conv2d_curvature"])
def test_connection_table_out_of_range_is_refused(name, backend):
    names, args, _ = kc.valid_calls()[name]
    i_start, i_in = names.index("conn_start"), names.index("conn_in")
    conn_start, conn_in = args[i_start], args[i_in]
    for bad in (-1, 6, 2**40):  # the input has 6 maps
        wrong = conn_in.copy()
        wrong[7] = bad
        with pytest.raises(ValueError, match="conn_in"):
            _call(name, _replaced(args, i_in, wrong), 1, backend)
    broken_starts = []
    first_not_zero = conn_start.copy()
    first_not_zero[0] = 1
    broken_starts.append(first_not_zero)
    decreasing = conn_start.copy()
    decreasing[3] = decreasing[5]  # then decreasing[4] < decreasing[3]
    broken_starts.append(decreasing)
    short_end = conn_start.copy()
    short_end[-1] -= 1  # the last kernel of w would belong to no output map
    broken_starts.append(short_end)
    past_end = conn_start.copy()
    past_end[-2] = past_end[-1] + 3
    past_end[-1] = past_end[-2]
    broken_starts.append(past_end)
    for wrong in broken_starts:
        with pytest.raises(ValueError, match="conn_start"):
            _call(name, _replaced(args, i_start, wrong), 1, backend)


@pytest.mark.parametrize("backend", GUARDED)
@pytest.mark.parametrize("k", [0, 4])
def test_kernel_that_does_not_fit_the_input_is_refused(k, backend):
    # A 0x0 kernel would make the output larger than the input; a 4x4 one on
    # a 3x3 input has no valid position. Either would send the loops out of bounds.
    kernels = get_backend(backend)
    size = 3 - k + 1 if k <= 3 else 1
    out = np.zeros((1, 1, size, size), np.float32)
    x = np.zeros((1, 1, 3, 3), np.float32)
    b = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        kernels.conv2d_forward(out, x, np.zeros((1, 1, k, k), np.float32), b, 1)
    with pytest.raises(ValueError, match="does not fit"):
        kernels.conv2d_backward(np.zeros_like(x), np.zeros((1, 1, k, k), np.float32), np.zeros_like(b),
                               out, x, np.zeros((1, 1, k, k), np.float32), 1)
    conn_start, conn_in = np.array([0, 1]), np.array([0])
    with pytest.raises(ValueError, match="does not fit"):
        kernels.sparse_conv2d_forward(out, x, np.zeros((1, k, k), np.float32), b, conn_start, conn_in, 1)


@pytest.mark.parametrize("backend", GUARDED)
def test_non_square_kernel_is_refused(backend):
    kernels = get_backend(backend)
    with pytest.raises(ValueError, match="square"):
        kernels.conv2d_forward(np.zeros((1, 1, 3, 2), np.float32), np.zeros((1, 1, 5, 5), np.float32),
                              np.zeros((1, 1, 3, 4), np.float32), np.zeros(1, np.float32), 1)


def test_empty_batch_is_a_valid_call():
    out = np.zeros((0, 2, 3, 3), np.float32)
    CYTHON.conv2d_forward(out, np.zeros((0, 1, 5, 5), np.float32), np.ones((2, 1, 3, 3), np.float32),
                          np.ones(2, np.float32), 2)
    dw, db = np.full((2, 1, 3, 3), np.nan, np.float32), np.full(2, np.nan, np.float32)
    CYTHON.conv2d_backward(np.zeros((0, 1, 5, 5), np.float32), dw, db, out,
                           np.zeros((0, 1, 5, 5), np.float32), np.ones((2, 1, 3, 3), np.float32), 2)
    assert not dw.any() and not db.any()  # a sum over no samples is zero


@pytest.mark.parametrize("h, w", [(300, 40), (3, 4097), (3, 4200)])
def test_tall_and_wide_inputs_match_the_reference(h, w):
    # The forward convolution sums bands of output rows in a 4096-float
    # buffer: several bands for a tall input, one row per band for a wide
    # one, and row by row when an output row alone exceeds the buffer.
    rng = np.random.default_rng(h * w)
    conn_start, conn_in = np.array([0, 1, 3]), np.array([1, 0, 1])
    x = rng.standard_normal((2, 2, h, w)).astype(np.float32)
    dense_w = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    sparse_w = rng.standard_normal((3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    for name, args in [("conv2d_forward", [x, dense_w, b]),
                       ("sparse_conv2d_forward", [x, sparse_w, b, conn_start, conn_in])]:
        got = np.full((2, 2, h - 2, w - 2), np.nan, np.float32)
        getattr(CYTHON, name)(got, *args, 2)
        want = np.empty(got.shape)
        getattr(REFERENCE, name)(want, *[a.astype(np.float64) if a.dtype == np.float32 else a
                                         for a in args], 1)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * max(1.0, np.abs(want).max()),
                                   err_msg=name)


# --- threads ----------------------------------------------------------------------

def _run_all(name, n_threads, n=9, seed=1):
    """Outputs of `name` on a fresh valid call (outputs NaN-filled first)."""
    names, args, n_outputs = kc.valid_calls(n, seed)[name]
    for a in args[:n_outputs]:
        a.fill(np.nan)
    _call(name, args, n_threads)
    return args[:n_outputs]


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_results_do_not_depend_on_the_thread_count(name):
    one = _run_all(name, 1)
    for n_threads in range(2, CYTHON.MAX_THREADS + 1):
        for got, want in zip(_run_all(name, n_threads), one):
            assert np.isfinite(got).all()
            np.testing.assert_array_equal(got, want)


def _in_threads(work, n=8):
    """Run work(t) in n Python threads started together; return their results in order."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(t):
        try:
            barrier.wait()
            results[t] = work(t)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    return results


def test_eight_python_threads_running_kernels_at_once_get_the_serial_results():
    # The kernels release the GIL, so these calls really overlap; shared
    # read-only inputs and private outputs must give the serial answer exactly.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 1, 32, 32)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    conn_start, conn_in = constants.connection_arrays()
    x3 = rng.standard_normal((64, 6, 14, 14)).astype(np.float32)
    w3 = rng.standard_normal((len(conn_in), 5, 5)).astype(np.float32)
    d3 = rng.standard_normal((64, 16, 10, 10)).astype(np.float32)
    for a in (x, w, b, x3, w3, d3):
        a.flags.writeable = False

    def work(t):
        n_threads = 1 + t % 2
        out = np.full((64, 6, 28, 28), np.nan, np.float32)
        CYTHON.conv2d_forward(out, x, w, b, n_threads)
        dx = np.full(x3.shape, np.nan, np.float32)
        dw = np.full(w3.shape, np.nan, np.float32)
        db = np.full(16, np.nan, np.float32)
        CYTHON.sparse_conv2d_backward(dx, dw, db, d3, x3, w3, conn_start, conn_in, n_threads)
        return out, dx, dw, db

    want = work(0)
    for got in _in_threads(work):
        for g, e in zip(got, want):
            np.testing.assert_array_equal(g, e)


_THREAD_DEFAULTS = """
import os, sys
import lenet_engine as le
from lenet_engine.kernels import cython

cores = len(os.sched_getaffinity(0))
model = le.load("modern", backend="cython")
print(le.get_num_threads(), cython.MAX_THREADS >= cores, model._threads(100))
le.set_num_threads(cores)
print(model._threads(100) == cores)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the CPU affinity")
def test_omp_num_threads_is_neither_the_default_count_nor_a_cap():
    # OMP_NUM_THREADS=1 once held the fused passes to one thread while get_num_threads() said all
    # cores; nor is it the default (Dask's LocalCluster leaves it at 1 in the process that starts it).
    env = {k: v for k, v in os.environ.items() if k != "LENET_ENGINE_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", _THREAD_DEFAULTS], capture_output=True, text=True,
                          env={**env, "OMP_NUM_THREADS": "1"}, timeout=120)
    cores = len(os.sched_getaffinity(0))
    assert done.stdout.split() == [str(cores), "True", str(min(cores, 100)), "True"], done.stderr


def test_bad_thread_counts_are_engine_errors(monkeypatch):
    with pytest.raises(le.InvalidInputError, match="thread count must be a positive integer"):
        le.set_num_threads(0)
    monkeypatch.setattr(sys.modules["lenet_engine.backends"], "_num_threads", None)  # read where none was set
    monkeypatch.setenv("LENET_ENGINE_NUM_THREADS", "abc")
    with pytest.raises(le.InvalidInputError, match=r"\$LENET_ENGINE_NUM_THREADS"):
        le.get_num_threads()
