"""DynamicBatcher on its own: which requests share a forward pass, and that each gets its own answer."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lenet_engine as le
from conftest import require
from lenet_engine.cli import load_samples

require("starlette")
from lenet_engine.serve.batching import DynamicBatcher


class Recorder:
    """A predict function that notes each batch it is given; optionally blocks until released."""

    def __init__(self, predict, gate=None):
        self.predict = predict
        self.sizes = []
        self.gate = gate

    def __call__(self, digits):
        if self.gate is not None:
            self.gate.wait(10)
        self.sizes.append(len(digits))
        return self.predict(digits)


@pytest.fixture(scope="module")
def model():
    return le.load("modern")


@pytest.fixture(scope="module")
def digits():
    return load_samples()[0][:64]


@pytest.fixture
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def run(batcher, *requests):
    async def main():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict(r) for r in requests))
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_requests_within_the_window_share_one_pass(model, digits, executor):
    recorder = Recorder(model.predict_proba)
    batcher = DynamicBatcher(recorder, executor, max_batch=64, window=0.05)
    answers = run(batcher, *(digits[i:i + 1] for i in range(10)))
    assert recorder.sizes == [10]
    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer, model.predict_proba(digits[i:i + 1]))
    assert (batcher.stats.digits, batcher.stats.passes, batcher.stats.by_size[10][0]) == (10, 1, 1)


def test_batches_never_exceed_max_batch(model, digits, executor):
    recorder = Recorder(model.predict_proba)
    batcher = DynamicBatcher(recorder, executor, max_batch=16, window=0.05)
    requests = [digits[i % 64:i % 64 + 1 + i % 3] for i in range(60)]
    answers = run(batcher, *requests)
    assert max(recorder.sizes) <= 16 and sum(recorder.sizes) == sum(len(r) for r in requests)
    assert len(recorder.sizes) < len(requests)
    for request, answer in zip(requests, answers):
        np.testing.assert_allclose(answer, model.predict_proba(request), rtol=1e-6, atol=1e-7)


def test_a_full_queue_does_not_wait_for_the_window(model, digits, executor):
    batcher = DynamicBatcher(model.predict_proba, executor, max_batch=8, window=30.0)
    answers = run(batcher, *(digits[i:i + 1] for i in range(8)))  # would take 30 s if it waited
    assert len(answers) == 8 and batcher.stats.passes == 1


def test_large_requests_skip_the_queue(model, digits, executor):
    recorder = Recorder(model.predict_proba)
    batcher = DynamicBatcher(recorder, executor, max_batch=8, window=0.05)
    (answer,) = run(batcher, digits[:40])
    assert recorder.sizes == [40] and answer.shape == (40, 10)


def test_max_batch_one_turns_batching_off(model, digits, executor):
    recorder = Recorder(model.predict_proba)
    batcher = DynamicBatcher(recorder, executor, max_batch=1, window=0.05)
    run(batcher, *(digits[i:i + 1] for i in range(5)))
    assert recorder.sizes == [1] * 5


def test_uint8_and_float_requests_batch_together(model, digits, executor):
    batcher = DynamicBatcher(model.predict_proba, executor, max_batch=64, window=0.05)
    floats = (digits[2:4] / np.float32(255)).astype(np.float32)
    as_bytes, as_floats = run(batcher, digits[:2], floats)
    assert batcher.stats.passes == 1
    np.testing.assert_allclose(as_bytes, model.predict_proba(digits[:2]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(as_floats, model.predict_proba(floats), rtol=1e-5, atol=1e-7)


def test_a_failed_pass_fails_each_of_its_requests(executor, digits):
    def broken(batch):
        raise FloatingPointError("overflow")

    batcher = DynamicBatcher(broken, executor, max_batch=64, window=0.05)

    async def main():
        batcher.start()
        results = await asyncio.gather(*(batcher.predict(digits[i:i + 1]) for i in range(3)), return_exceptions=True)
        await batcher.stop()
        return results

    assert [type(r) for r in asyncio.run(main())] == [FloatingPointError] * 3


def test_requests_queued_during_a_pass_form_the_next_batch(model, digits, executor):
    gate = threading.Event()
    recorder = Recorder(model.predict_proba, gate)
    batcher = DynamicBatcher(recorder, executor, max_batch=64, window=0.0)

    async def main():
        batcher.start()
        first = asyncio.ensure_future(batcher.predict(digits[:1]))
        await asyncio.sleep(0.05)  # the first pass is running, held at the gate
        rest = [asyncio.ensure_future(batcher.predict(digits[i:i + 1])) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)
        await batcher.stop()

    asyncio.run(main())
    assert recorder.sizes == [1, 5]


def test_a_cancelled_request_is_left_out_and_stop_answers_the_rest(model, digits, executor):
    recorder = Recorder(model.predict_proba)
    batcher = DynamicBatcher(recorder, executor, max_batch=64, window=0.05)

    async def main():
        batcher.start()
        gone = asyncio.ensure_future(batcher.predict(digits[:1]))
        kept = asyncio.ensure_future(batcher.predict(digits[1:3]))
        await asyncio.sleep(0)
        gone.cancel()
        await batcher.stop()  # returns once the queued request has its answer
        return kept.done() and kept.result()

    answer = asyncio.run(main())
    assert recorder.sizes == [2]
    np.testing.assert_array_equal(answer, model.predict_proba(digits[1:3]))


@pytest.mark.parametrize("max_batch, window", [(0, 0.001), (8, -1.0)])
def test_bad_settings_are_refused(executor, max_batch, window):
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(len, executor, max_batch=max_batch, window=window)


class ThreadCounter:
    """A model whose predict_proba notes the kernel thread count it would run with."""

    arch = "modern"

    def __init__(self):
        self.seen = []

    def predict_proba(self, digits):
        self.seen.append(le.get_num_threads())
        return np.zeros((len(digits), 10), np.float32)


@pytest.mark.parametrize("threads,default", [(1, 1), (2, 1), (4, 3)])
def test_passes_leave_a_core_to_the_event_loop_unless_told(threads, default, executor, digits):
    from lenet_engine.serve.app import pass_threads_default
    from lenet_engine.serve.models import ServedModel

    previous = le.get_num_threads()
    le.set_num_threads(threads)
    try:
        assert pass_threads_default() == default
        for asked, want in ((default, default), (threads, threads)):
            counter = ThreadCounter()
            served = ServedModel("m", counter, executor, max_batch=4, window=0.001, pass_threads=asked)
            run(served.batcher, digits[:1], digits[:1], digits[:8])
            assert counter.seen and set(counter.seen) == {want}
            assert le.get_num_threads() == threads   # the limit stays on the worker thread's pass
    finally:
        le.set_num_threads(previous)
