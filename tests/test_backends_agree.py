"""The compiled backends against each other: kernel by kernel, and as whole models on MNIST."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernel_cases as kc
import lenet_engine as le
from conftest import COMPILED_BACKENDS
from lenet_engine.backends import get_backend
from lenet_engine.inputs import kernel_digits, to_network_input

ARCHS = ("classic", "modern")


def test_every_compiled_backend_is_available_here():
    # CI builds the Cython extension from the clean clone: a failed build must fail the suite.
    assert set(COMPILED_BACKENDS) <= set(le.backends())
    assert le.backends()[0] == "cython"
    assert le.LeNet5("modern").backend == "cython"


def _close(a, b, what):
    """Within 1e-5 relative to the array's scale (float32, different summation orders)."""
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


def _all_backends_agree(case, n_threads):
    n_threads = min([n_threads] + [get_backend(b).MAX_THREADS for b in COMPILED_BACKENDS])
    outs = {name: kc.run_forward(get_backend(name), case, n_threads, np.float32)
            for name in ("numpy",) + COMPILED_BACKENDS}
    grads = {name: kc.run_backward(get_backend(name), case, outs[name], n_threads, np.float32)
             for name in outs}
    base = COMPILED_BACKENDS[0]
    for name in outs:
        for got, want in zip(outs[name] + grads[name], outs[base] + grads[base]):
            _close(got, want, f"{case.op}: {name} vs {base}")


@pytest.mark.parametrize("op", sorted(kc.CASE_MAKERS))
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_threads=st.sampled_from([1, 2]))
def test_all_backends_agree_kernel_by_kernel(op, seed, n_threads):
    rng = np.random.default_rng(seed)
    _all_backends_agree(kc.random_case(op, rng), n_threads)


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_models_agree_on_2000_test_digits(arch, mnist_test):
    images = mnist_test[0][:2000]
    outputs = {b: le.load(arch, backend=b).forward(images) for b in COMPILED_BACKENDS}
    base = outputs[COMPILED_BACKENDS[0]]
    for name, out in outputs.items():
        # Within 3e-5 of max(1, |y|), what each backend promises against the reference (on the Zen 4:
        # 5.4e-6 for classic, whose distances near 100 differ by up to 1.1e-4, a few float32 ulp).
        assert (np.abs(out - base) <= 3e-5 * np.maximum(1, np.abs(base))).all(), name
        np.testing.assert_array_equal(out.argmin(1) if arch == "classic" else out.argmax(1),
                                      base.argmin(1) if arch == "classic" else base.argmax(1))


@pytest.mark.parametrize("arch", ARCHS)
def test_one_epoch_of_training_agrees_across_backends(arch, mnist_train):
    x, y = mnist_train[0][:5000], mnist_train[1][:5000]
    histories = {}
    for b in COMPILED_BACKENDS:
        model = le.LeNet5(arch, seed=0, backend=b)
        histories[b] = model.fit(x, y, epochs=1, batch_size=32, seed=0, verbose=0)
    losses = [h["loss"][0] for h in histories.values()]
    assert max(losses) - min(losses) <= 1e-3, histories


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_threads=st.sampled_from([1, 2]))
def test_fused_forward_takes_any_c3_connection_table(backend, seed, n_threads):
    # The fused kernels walk C3's table by input map, two output maps at a time (numba), or
    # repack it (cython): a random table, with odd and even counts of readers per input map
    # and some input maps read by none, against the reference.
    from lenet_engine.architectures import get_architecture, initial_state

    rng = np.random.default_rng(seed)
    reads = [np.flatnonzero(rng.random(6) < rng.uniform(0.1, 0.9)) for _ in range(16)]
    reads = [r if len(r) else rng.integers(0, 6, 1) for r in reads]
    conn_in = np.concatenate(reads).astype(np.int64)
    conn_start = np.concatenate([[0], np.cumsum([len(r) for r in reads])]).astype(np.int64)
    spec = get_architecture("classic")
    weights = spec.fused_weights(initial_state(spec, seed % 1000))._replace(
        c3_w=rng.uniform(-0.2, 0.2, (len(conn_in), 5, 5)).astype(np.float32),
        conn_start=conn_start, conn_in=conn_in)
    digits = rng.integers(0, 256, (9, 28, 28), dtype=np.uint8)
    module = get_backend(backend)
    want = np.empty((9, 10), np.float32)
    get_backend("numpy").lenet5_forward(want, digits, weights, 1)
    got = np.full((9, 10), np.nan, np.float32)
    module.lenet5_forward(got, digits, weights, min(n_threads, module.MAX_THREADS))
    _close(got, want, f"lenet5_forward {backend}, table {reads}")


def test_cython_prediction_never_imports_numba():
    # Nor the other modules a cold start to the first prediction can do without.
    code = (
        "import sys, numpy as np, lenet_engine as le\n"
        "for backend in ('cython', 'auto'):\n"
        "    m = le.load('classic', backend=backend)\n"
        "    m.predict(np.zeros((2, 28, 28), np.uint8))\n"
        "    assert m.backend == 'cython', m.backend\n"
        "print(sorted(set(sys.modules) & {'numba', 'numpy.ma', 'tempfile', 'zipfile', 'secrets',\n"
        "                                  'lenet_engine.distortions', 'lenet_engine.checkpoints'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_fused_forward_bits_do_not_depend_on_threads_or_batch(arch, backend, precision):
    # The threads take the digits in chunks as they come free (numba: _threads.py; cython:
    # l5_runner.h): which thread computes a digit, and beside which others, must not change its bits.
    from lenet_engine.architectures import get_architecture, initial_state

    model = le.LeNet5(arch, backend=backend)
    model.load_state_dict(initial_state(get_architecture(arch), 7))
    if precision == "int8":
        model = model.quantize(np.random.default_rng(2).integers(0, 256, (64, 28, 28), dtype=np.uint8))
    bound = model._bind()
    max_threads = get_backend(backend).MAX_THREADS
    digits = np.random.default_rng(3).integers(0, 256, (203, 28, 28), dtype=np.uint8)
    one = np.full((203, 10), np.nan, np.float32)
    assert bound(one, digits, 1) == 0
    for n_threads in range(2, max_threads + 1):
        got = np.full((203, 10), np.nan, np.float32)
        assert bound(got, digits, n_threads) == 0
        np.testing.assert_array_equal(got, one, err_msg=f"{n_threads} threads")
    for lo, hi in ((0, 1), (5, 42), (130, 203)):
        part = np.full((hi - lo, 10), np.nan, np.float32)
        assert bound(part, digits[lo:hi], max_threads) == 0
        np.testing.assert_array_equal(part, one[lo:hi], err_msg=f"digits {lo}:{hi} alone")


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_fused_passes_called_from_six_python_threads_at_once_give_the_serial_bits(backend, precision):
    # Each call shares its digits among the backend's threads (numba: one pool of Python threads
    # for every call, the callers taking chunks too; cython: the first caller takes the module's
    # helpers, the others run alone); calls overlapping must not mix their work.
    import threading

    model = le.load("modern", backend=backend, precision=precision)
    bound = model._bind()
    digits = np.random.default_rng(5).integers(0, 256, (6, 150, 28, 28), dtype=np.uint8)
    n_threads = get_backend(backend).MAX_THREADS
    want = np.empty((6, 150, 10), np.float32)
    for t in range(6):
        bound(want[t], digits[t], 1)
    got = np.full((6, 150, 10), np.nan, np.float32)
    barrier = threading.Barrier(6)

    def call(t):
        barrier.wait()
        for _ in range(3):
            bound(got[t], digits[t], n_threads)

    threads = [threading.Thread(target=call, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    np.testing.assert_array_equal(got, want)


def _forward_in_child(bound, digits, n_threads, results):
    import os

    threads_before = len(os.listdir("/proc/self/task"))
    out = np.full((len(digits), 10), np.nan, np.float32)
    bound(out, digits, n_threads)
    results.put((out, threads_before, len(os.listdir("/proc/self/task"))))


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc; forks")
def test_a_forked_child_runs_the_fused_passes_on_threads_of_its_own(backend, precision):
    # The parent's threads (cython: l5_runner.h's helpers; numba: the pool of _threads.py) are
    # not in a child made by fork (multiprocessing's default on Linux, Dask's nanny): the child
    # must make its own, not wait for the parent's to take its chunks.
    import multiprocessing

    model = le.load("modern", backend=backend, precision=precision)
    bound = model._bind()
    digits = np.random.default_rng(6).integers(0, 256, (120, 28, 28), dtype=np.uint8)
    n_threads = max(2, min(4, get_backend(backend).MAX_THREADS))
    want = np.full((120, 10), np.nan, np.float32)
    bound(want, digits, 1)
    got = np.full((120, 10), np.nan, np.float32)
    bound(got, digits, n_threads)  # the parent's threads started, and busy once
    np.testing.assert_array_equal(got, want)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_forward_in_child, args=(bound, digits, n_threads, results))
    child.start()
    try:
        got, threads_before, threads_after = results.get(timeout=60)
        np.testing.assert_array_equal(got, want)
        assert threads_after > threads_before, "the child ran its call without threads of its own"
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


_FORK_AFTER_SCORING = """
import multiprocessing, sys
import numpy as np
import lenet_engine as le

backend = sys.argv[1]
x = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
y = np.zeros(300, np.int64)
model = le.load("modern", backend=backend)
want = model.predict_proba(x)
model.score(x, y)
le.load("classic", backend=backend).score(x, y)


def child(queue):
    queue.put(model.predict_proba(x))


if __name__ == "__main__":
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    got = queue.get(timeout=120)
    process.join(30)
    assert np.array_equal(got, want) and process.exitcode == 0
    print("forked child predicted")
"""


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
def test_a_process_may_fork_after_predicting_and_scoring(backend, tmp_path):
    # predict_proba's softmax and score's losses once started an OpenMP team (Numba's pool), and
    # a forked child then hung in them. A fresh process: other tests here train, which does.
    script = tmp_path / "fork_after_scoring.py"
    script.write_text(_FORK_AFTER_SCORING)
    done = subprocess.run([sys.executable, str(script), backend], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "forked child predicted" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 7), n_threads=st.sampled_from([1, 2]))
def test_fused_forward_matches_the_reference_layer_by_layer(arch, backend, seed, n, n_threads):
    # Random weights (not the trained ones) and random inputs, on NaN-filled outputs.
    from lenet_engine import network
    from lenet_engine.architectures import get_architecture, initial_state

    spec = get_architecture(arch)
    state = initial_state(spec, seed % 1000)
    rng = np.random.default_rng(seed)
    for name in state:
        if name != "output.prototypes":
            state[name] = state[name] * np.float32(3) + np.float32(0.05) * rng.standard_normal(
                state[name].shape).astype(np.float32)
    digits = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    module = get_backend(backend)
    n_threads = min(n_threads, module.MAX_THREADS)
    field = to_network_input(digits, spec.background, spec.ink)
    want, _ = network.forward_layers(spec, get_backend("numpy"), state, field, 1)
    weights = spec.fused_weights(state)
    # uint8 pixels, and the same digits as float32 network input: the two inputs the kernel reads.
    for inputs in (digits, kernel_digits(digits.astype(np.float64) / 255, spec.background, spec.ink)):
        got = np.full((n, 10), np.nan, np.float32)
        module.lenet5_forward(got, inputs, weights, n_threads)
        _close(got, want, f"lenet5_forward {arch} {backend} {inputs.dtype}")
        # Bound to the weights once (the backend's Lenet5Forward), called twice: the same bits.
        bound = network.bound_forward(spec, module, state)
        for _ in range(2):
            again = np.full((n, 10), np.nan, np.float32)
            assert bound(again, inputs, n_threads) == 0  # outputs that are not finite
            np.testing.assert_array_equal(again, got)
