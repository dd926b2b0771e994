"""Dynamic batching: concurrent small requests to one model run as one batch, as Triton does.

A request of fewer than `max_batch` digits waits in a queue. One collector per
model takes the oldest, waits up to `window` seconds for more when the server is
busy (less if the queue reaches `max_batch` digits first), and runs the lot as one forward pass on a
worker thread; the compiled kernels release the GIL, so the event loop keeps
serving meanwhile, and requests that arrive during a pass make the next batch.
A request of `max_batch` digits or more skips the queue.
"""

import asyncio
import collections
import threading
import time

import numpy as np

from lenet_engine.errors import InvalidInputError


class BatchStats:
    """Counts since start: digits predicted, and forward passes with their time per batch size."""

    def __init__(self):
        self.digits = 0
        self.passes = 0
        self.by_size = {}  # batch size -> [passes, nanoseconds]
        self._lock = threading.Lock()  # passes end on several worker threads

    def add(self, size, nanoseconds):
        with self._lock:
            self.digits += size
            self.passes += 1
            entry = self.by_size.setdefault(size, [0, 0])
            entry[0] += 1
            entry[1] += nanoseconds


class DynamicBatcher:
    """Runs `predict` ((N, 28, 28) digits -> (N, ...) array) on `executor`, batching small requests.

    Start it with start() inside the running event loop; stop() ends the
    collector once the requests already queued have their answers.
    """

    def __init__(self, predict, executor, *, max_batch=64, window=0.001):
        if max_batch < 1 or window < 0:
            raise InvalidInputError(f"max_batch must be >= 1 and window >= 0, got {max_batch} and {window}")
        self.max_batch = max_batch
        self.window = window
        self.stats = BatchStats()
        self._predict = predict
        self._executor = executor
        self._queue = collections.deque()  # (digits, future) in arrival order
        self._queued_digits = 0
        self._arrived = asyncio.Event()
        self._filled = asyncio.Event()
        self._collector = None
        self._stopping = False
        self._last_requests = 0  # requests in the latest pass

    def start(self):
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self):
        self._stopping = True
        self._arrived.set()
        await self._collector

    async def predict(self, digits):
        """The model's output for `digits`, computed in a batch with other requests where it pays."""
        if len(digits) >= self.max_batch or self.max_batch == 1 or not len(digits):
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, [digits])
            return outputs[0]
        future = asyncio.get_running_loop().create_future()
        self._queue.append((digits, future))
        self._queued_digits += len(digits)
        self._arrived.set()
        if self._queued_digits >= self.max_batch:
            self._filled.set()
        return await future

    async def _collect(self):
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # Wait for company only under load (more than one request queued now, or in the last
            # pass): a lone client's request is not held up for the window.
            crowded = len(self._queue) > 1 or self._last_requests > 1
            if self.window and crowded and self._queued_digits < self.max_batch:
                self._filled.clear()
                try:
                    await asyncio.wait_for(self._filled.wait(), self.window)
                except asyncio.TimeoutError:  # the window is over: run what came
                    pass
            batch = self._take()
            self._last_requests = len(batch)
            if not batch:
                continue
            try:
                outputs = await loop.run_in_executor(self._executor, self._run, [d for d, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), output in zip(batch, outputs):
                if not future.done():  # its client may have gone away
                    future.set_result(output)

    def _take(self):
        """Queued requests, oldest first, up to max_batch digits (always at least one request)."""
        batch, size = [], 0
        while self._queue:
            digits, future = self._queue[0]
            if batch and size + len(digits) > self.max_batch:
                break
            self._queue.popleft()
            self._queued_digits -= len(digits)
            if not future.cancelled():
                batch.append((digits, future))
                size += len(digits)
        return batch

    def _run(self, parts):
        """On a worker thread: one forward pass over the concatenated parts -> one output per part."""
        if len(parts) == 1:
            digits = parts[0]
        elif all(p.dtype == np.uint8 for p in parts):
            digits = np.concatenate(parts)
        else:  # uint8 pixels and float digits in one batch: all as float in [0, 1]
            digits = np.concatenate([p / np.float32(255) if p.dtype == np.uint8 else p for p in parts])
        started = time.perf_counter_ns()
        output = self._predict(digits)
        if len(digits):  # an empty request's "pass" is no forward pass: not counted
            self.stats.add(len(digits), time.perf_counter_ns() - started)
        if len(parts) == 1:
            return [output]
        return np.split(output, np.cumsum([len(p) for p in parts[:-1]]))
