"""Every compiled kernel against the NumPy reference, on random shapes and values.

The reference runs in float64, the compiled backends in float32 (their
production type), both on NaN-filled outputs so an element a kernel forgets
to write fails the comparison.
"""

import inspect
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernel_cases as kc
from conftest import COMPILED_BACKENDS
from lenet_engine import constants
from lenet_engine.backends import get_backend

REFERENCE = get_backend("numpy")
# Every kernel function a backend exports (lenet5_squash too); Lenet5Forward is a class.
EXPORTED = sorted(n for n, v in vars(REFERENCE).items() if inspect.isfunction(v) and not n.startswith("_"))
SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)
threads = st.sampled_from([1, 2])


def check_kernel(case, backend_name, n_threads):
    """Forward outputs, every backward gradient and every curvature of `backend_name` agree with the reference."""
    backend = get_backend(backend_name)
    n_threads = min(n_threads, backend.MAX_THREADS)
    ref_case = case.as_dtype(np.float64)
    ref_outs = kc.run_forward(REFERENCE, ref_case, 1, np.float64)
    outs = kc.run_forward(backend, case, n_threads, np.float32)
    for got, want in zip(outs, ref_outs):
        _assert_close(got, want, f"{case.op}_forward")
    ref_grads = kc.run_backward(REFERENCE, ref_case, ref_outs, 1, np.float64)
    grads = kc.run_backward(backend, case, outs, n_threads, np.float32)
    for got, want, i in zip(grads, ref_grads, case.grad_of):
        _assert_close(got, want, f"{case.op}_backward (gradient of input {i})")
    ref_hs = kc.run_curvature(REFERENCE, ref_case, ref_outs, 1, np.float64)
    hs = kc.run_curvature(backend, case, outs, n_threads, np.float32)
    for got, want, i in zip(hs, ref_hs, case.grad_of):
        _assert_close(got, want, f"{case.op}_curvature (of input {i})")


def _assert_close(got, want, what):
    assert np.isfinite(got).all(), f"{what}: unwritten (NaN) or non-finite elements"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * scale, err_msg=what)


def _parameters(fn):
    """[(name, default)] of a kernel's parameters, inspect.Parameter.empty for none."""
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("backend", ("numpy",) + COMPILED_BACKENDS)
def test_backend_exports_every_reference_kernel_with_the_same_signature(backend):
    # Parameter names and defaults as the reference's, and no defaults at all: n_threads, last
    # in every kernel, is always passed (the compiled twins' Cython signatures need binding=True,
    # Cython 3's default, to be read here).
    module = get_backend(backend)
    for name in EXPORTED:
        fn = getattr(module, name, None)
        assert fn is not None, f"{backend} lacks {name}"
        want, got = _parameters(getattr(REFERENCE, name)), _parameters(fn)
        assert got == want, f"{backend}.{name}{got} != reference {want}"
        assert got[-1][0] == "n_threads", f"{backend}.{name}: n_threads is not its last parameter"
        assert all(default is inspect.Parameter.empty for _, default in got), (
            f"{backend}.{name} has defaults: {got}")
    assert inspect.isclass(module.Lenet5Forward), f"{backend} lacks Lenet5Forward"


@pytest.mark.parametrize("backend", ("numpy",) + COMPILED_BACKENDS)
def test_every_kernel_returns_none_and_wants_n_threads(backend):
    module = get_backend(backend)
    calls = kc.valid_calls()
    assert set(calls) == set(EXPORTED)
    for name in EXPORTED:
        _, args, _ = calls[name]
        assert getattr(module, name)(*args, 1) is None, f"{backend}.{name} returned something"
        with pytest.raises(TypeError):
            getattr(module, name)(*args)  # n_threads left out


@pytest.mark.parametrize("backend", ("numpy",) + COMPILED_BACKENDS)
def test_bound_fused_forward_counts_outputs_that_are_not_finite(backend):
    # Lenet5Forward(weights)(out, digits, n_threads), the same surface in every backend:
    # lenet5_forward's outputs, and how many of them are not finite.
    module = get_backend(backend)
    _, (out, digits, weights), _ = kc.valid_calls()["lenet5_forward"]
    want = np.full_like(out, np.nan)
    module.lenet5_forward(want, digits, weights, 1)
    bound = module.Lenet5Forward(weights)
    assert bound(out, digits, 1) == 0
    np.testing.assert_array_equal(out, want)
    poisoned = weights._replace(c5_b=np.full_like(weights.c5_b, np.nan))
    assert module.Lenet5Forward(poisoned)(out, digits, 1) == out.size
    with pytest.raises(TypeError):
        bound(out, digits)  # n_threads left out
    with pytest.raises(TypeError):
        module.Lenet5Forward(tuple(weights))  # a plain tuple, not a FusedWeights


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_fused_forward_reads_c3_afresh_and_adds_kernels_listed_twice(backend):
    # The compiled passes repack C3's kernels when binding, and again in any call whose c3_w has
    # changed in place since (training): those updates are seen on one thread and on several, and
    # weights put back read the bind's copy again. A table listing one (output, input) pair twice
    # adds the two kernels, as the reference does.
    module, reference = get_backend(backend), get_backend("numpy")
    _, (out, digits, weights), _ = kc.valid_calls()["lenet5_forward"]
    bound = module.Lenet5Forward(weights)
    before = np.empty_like(out)
    bound(before, digits, 1)
    kept = weights.c3_w.copy()
    weights.c3_w[:] *= np.float32(1.5)
    want = np.empty_like(out)
    reference.lenet5_forward(want, digits, weights, 1)
    for n_threads in (1, 2):
        bound(out, digits, n_threads)
        np.testing.assert_allclose(out, want, rtol=3e-5, atol=3e-5)
    assert np.abs(out - before).max() > 1e-3  # the change shows
    weights.c3_w[:] = kept
    bound(out, digits, 1)
    np.testing.assert_array_equal(out, before)
    twice = weights._replace(c3_w=np.concatenate([weights.c3_w[:1] * np.float32(-0.5), weights.c3_w]),
                             conn_in=np.concatenate([weights.conn_in[:1], weights.conn_in]),
                             conn_start=np.concatenate([[0], weights.conn_start[1:] + 1]))
    reference.lenet5_forward(want, digits, twice, 1)
    module.Lenet5Forward(twice)(out, digits, 1)
    np.testing.assert_allclose(out, want, rtol=3e-5, atol=3e-5)
    # ... which is the kernel at half its weight.
    halved = weights._replace(c3_w=weights.c3_w.copy())
    halved.c3_w[0] *= np.float32(0.5)
    once = np.empty_like(out)
    reference.lenet5_forward(once, digits, halved, 1)
    np.testing.assert_allclose(want, once, rtol=3e-5, atol=3e-5)


def _malformed_fused_weights(weights):
    """(what is wrong, weights with it) for every structural error check_fused_weights names."""
    start = weights.conn_start
    yield "conn_start", weights._replace(conn_start=np.concatenate([[0], start + 1]))   # 18 entries
    yield "conn_start", weights._replace(conn_start=np.concatenate([start[:-1], [start[-1] + 5]]))
    yield "conn_start", weights._replace(conn_start=start[::-1].copy())
    yield "conn_in", weights._replace(conn_in=np.full_like(weights.conn_in, 6))
    yield "c3_w", weights._replace(c3_w=weights.c3_w[:-1].copy())
    yield "c5_w", weights._replace(c5_w=weights.c5_w[:, :399].copy())
    yield "table", weights._replace(table=weights.table[:255].copy())
    yield "c1_w", weights._replace(c1_w=weights.c1_w.astype(np.float64))
    yield "f6_w", weights._replace(f6_w=np.asfortranarray(weights.f6_w))
    yield "out_b", weights._replace(out_b=list(weights.out_b))


@pytest.mark.parametrize("backend", ("numpy",) + COMPILED_BACKENDS)
def test_malformed_fused_weights_are_refused_before_any_loop_runs(backend):
    module = get_backend(backend)
    _, (out, digits, weights), _ = kc.valid_calls()["lenet5_forward"]
    for field, wrong in _malformed_fused_weights(weights):
        with pytest.raises((ValueError, TypeError), match=field):
            module.Lenet5Forward(wrong)(out, digits, 1)
        with pytest.raises((ValueError, TypeError), match=field):
            module.lenet5_forward(out, digits, wrong, 1)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_n_threads_by_position_or_keyword(backend):
    rng = np.random.default_rng(0)
    case = kc.linear(rng, 3, 5, 4)
    module = get_backend(backend)
    by_position, by_keyword = np.empty((3, 4), np.float32), np.empty((3, 4), np.float32)
    module.linear_forward(by_position, *case.inputs, 1)
    module.linear_forward(by_keyword, *case.inputs, n_threads=1)
    np.testing.assert_array_equal(by_position, by_keyword)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(1, 4), c_in=st.integers(1, 4), c_out=st.integers(1, 5),
       k=st.integers(1, 5), extra_h=st.integers(0, 8), extra_w=st.integers(0, 8), n_threads=threads)
def test_conv2d(backend, seed, n, c_in, c_out, k, extra_h, extra_w, n_threads):
    rng = np.random.default_rng(seed)
    check_kernel(kc.conv2d(rng, n, c_in, c_out, k, k + extra_h, k + extra_w), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(1, 4), c_in=st.integers(1, 6), c_out=st.integers(1, 6),
       k=st.integers(1, 5), extra=st.integers(0, 6), n_threads=threads)
def test_sparse_conv2d_random_tables(backend, seed, n, c_in, c_out, k, extra, n_threads):
    rng = np.random.default_rng(seed)
    table = kc.random_table(rng, c_in, c_out)
    check_kernel(kc.sparse_conv2d(rng, n, table, c_in, k, k + extra, k + extra + 1), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_sparse_conv2d_on_lenet_c3(backend):
    rng = np.random.default_rng(3)
    check_kernel(kc.sparse_conv2d(rng, 3, constants.TABLE_I, 6, 5, 14, 14), backend, 2)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("seed", range(3))
def test_sparse_conv2d_random_tables_at_lenet_c3s_shape(backend, seed):
    # At C3's exact shape the numba twin groups output maps by the input they share, four, then
    # two, then a lone one (paired with a scratch row), each group on its maps' own rows where
    # they are consecutive, else on scratch rows added to them: these tables' counts per input
    # (7 to 15 for seeds 0-2, every remainder of 4) reach each of its branches.
    rng = np.random.default_rng(seed)
    check_kernel(kc.sparse_conv2d(rng, 3, kc.random_table(rng, 6, 16), 6, 5, 14, 14), backend, 2)


def test_numba_convolution_passes_check_only_their_input_against_their_rows_at_run_time():
    # The numba twin's passes take their output maps as consecutive rows of one flat array, so
    # the compiler tells them apart and each kernel row's vectorised loop checks at run time only
    # whether the input overlaps them: one conflict test (LLVM's found.conflict) a loop, at most
    # K. Maps as separate rows made it test every pair (26 in the four-map pass, 55 in the
    # two-map one), which cost a third of C3's time where the pass was not inlined into a caller
    # that allocated the arrays. Compiled afresh here: the cached code has no IR to read.
    import numba

    from lenet_engine.kernels.numba import _jit, conv

    src, w = np.zeros(5 * conv.C3_SHIFT, np.float32), np.zeros((16, 5, 5), np.float32)
    for helper, maps in ((conv._conv_quad, (0, 1, 2, 3)), (conv._conv_pair, (0, 1))):
        fresh = numba.njit(**dict(_jit.OPTIONS, cache=False))(helper.py_func)
        fresh(np.zeros(20 * 100, np.float32), 0, src, w, *maps, 100, 10, conv.C3_SHIFT)
        ir = "\n".join(fresh.inspect_llvm().values())
        assert "vector.body" in ir  # vectorised at all
        assert len(re.findall(r"found\.conflict[0-9]* = ", ir)) <= conv.K, helper.py_func.__name__


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("c_in, c_out, side", [(1, 6, 32), (6, 16, 14)])
def test_conv2d_on_lenet_shapes(backend, c_in, c_out, side):
    # C1 and modern's C2: maps wide enough for the compiled loops' four-vector blocks.
    rng = np.random.default_rng(side)
    check_kernel(kc.conv2d(rng, 3, c_in, c_out, 5, side, side), backend, 2)


@pytest.mark.parametrize("backend", ("numpy",) + COMPILED_BACKENDS)
@pytest.mark.parametrize("sparse", [False, True])
def test_conv_backward_without_input_gradient(backend, sparse):
    # dx=None (a network's first layer) skips dx and leaves dw and db as they were.
    rng = np.random.default_rng(5)
    case = (kc.sparse_conv2d(rng, 3, constants.TABLE_I, 6, 5, 14, 14) if sparse
            else kc.conv2d(rng, 3, 1, 6, 5, 32, 32))
    module = get_backend(backend)
    x, w = case.inputs[0], case.inputs[1]
    args = case.backward_args(case.inputs, None, case.dout)
    with_dx = [np.zeros_like(x), np.zeros_like(w), np.zeros_like(case.inputs[2])]
    without = [None, np.zeros_like(w), np.zeros_like(case.inputs[2])]
    getattr(module, f"{case.op}_backward")(*with_dx, *args, 2 if backend != "numpy" else 1)
    getattr(module, f"{case.op}_backward")(*without, *args, 2 if backend != "numpy" else 1)
    np.testing.assert_array_equal(without[1], with_dx[1])
    np.testing.assert_array_equal(without[2], with_dx[2])


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("op", ["avgpool2x2", "subsample"])
@SETTINGS
@given(seed=seeds, n=st.integers(1, 4), c=st.integers(1, 6), ho=st.integers(1, 7),
       wo=st.integers(1, 7), n_threads=threads)
def test_pooling(backend, op, seed, n, c, ho, wo, n_threads):
    rng = np.random.default_rng(seed)
    check_kernel(getattr(kc, op)(rng, n, c, ho, wo), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(1, 6), n_in=st.integers(1, 64), n_out=st.integers(1, 24),
       n_threads=threads)
def test_linear(backend, seed, n, n_in, n_out, n_threads):
    check_kernel(kc.linear(np.random.default_rng(seed), n, n_in, n_out), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("n, n_in, n_out", [(15, 84, 10), (17, 300, 11), (65, 257, 10), (128, 400, 120)])
def test_linear_at_tiled_sizes(backend, n, n_in, n_out):
    # Batches past the numba twin's tiling thresholds (16 forward, 64 backward) with a short
    # last group, rows past the 256-element blocks of the dot products, odd unit counts.
    check_kernel(kc.linear(np.random.default_rng(n), n, n_in, n_out), backend, 2)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, m=st.integers(1, 300),
       squash=st.sampled_from([(1.0, 1.0), (constants.SQUASH_AMPLITUDE, constants.SQUASH_SLOPE)]),
       n_threads=threads)
def test_tanh(backend, seed, m, squash, n_threads):
    check_kernel(kc.tanh(np.random.default_rng(seed), m, *squash), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(1, 6), units=st.integers(1, 10), dim=st.integers(1, 90),
       n_threads=threads)
def test_rbf(backend, seed, n, units, dim, n_threads):
    check_kernel(kc.rbf(np.random.default_rng(seed), n, units, dim), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(1, 8), classes=st.integers(2, 10),
       scale=st.sampled_from([0.1, 3.0, 30.0]), n_threads=threads)
def test_softmax_xent(backend, seed, n, classes, scale, n_threads):
    check_kernel(kc.softmax_xent(np.random.default_rng(seed), n, classes, scale), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(1, 8), classes=st.integers(2, 10),
       scale=st.sampled_from([0.5, 10.0, 200.0]), j=st.sampled_from([0.1, 1.0, 10.0]),
       n_threads=threads)
def test_map_loss(backend, seed, n, classes, scale, j, n_threads):
    check_kernel(kc.map_loss(np.random.default_rng(seed), n, classes, scale, j), backend, n_threads)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@SETTINGS
@given(seed=seeds, n=st.integers(0, 130), classes=st.integers(1, 10),
       scale=st.sampled_from([0.1, 3.0, 300.0]), sign=st.sampled_from([1.0, -1.0]), n_threads=threads)
def test_softmax(backend, seed, n, classes, scale, sign, n_threads):
    # Up to 130 rows: one thread below 65, the thread team above. Scores up to 300 would
    # overflow exp without the shift by each row's largest.
    scores = (scale * np.random.default_rng(seed).standard_normal((n, classes))).astype(np.float32)
    want = np.full((n, classes), np.nan)
    REFERENCE.softmax_forward(want, scores, sign, 1)
    got = np.full((n, classes), np.nan, dtype=np.float32)
    get_backend(backend).softmax_forward(got, scores, sign, min(n_threads, get_backend(backend).MAX_THREADS))
    _assert_close(got, want, "softmax_forward")
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    in_place = scores.copy()  # as predict_proba calls it
    get_backend(backend).softmax_forward(in_place, in_place, sign, 1)
    np.testing.assert_array_equal(in_place, got)
