"""SIGTERM to `lenet-engine serve`: the requests in flight are answered before the process exits."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from conftest import require
from lenet_engine.cli import load_samples
from serving import Server

require("starlette")
require("uvicorn")
httpx = require("httpx")

REQUESTS = 8
DIGITS = 5000  # per request: 3.9 MB of UINT8, under the 4 MB limit, and a while to compute


def test_sigterm_drains_requests_in_flight(tmp_path):
    digits = np.ascontiguousarray(np.resize(load_samples()[0], (DIGITS, 28, 28)))
    header = json.dumps({"inputs": [{"name": "digits", "datatype": "UINT8", "shape": [DIGITS, 28, 28],
                                     "parameters": {"binary_data_size": digits.nbytes}}],
                         "outputs": [{"name": "labels", "parameters": {"binary_data": True}}]}).encode()
    server = Server("--model", "modern", "--threads", "1", log_path=tmp_path / "server.log")
    signalled = []

    def post(_):
        with httpx.Client(timeout=120) as http:
            response = http.post(server.url + "/v2/models/modern/infer", content=header + digits.tobytes(),
                                 headers={"Inference-Header-Content-Length": str(len(header))})
        if not signalled:  # the first answer: the others are still queued on the server
            signalled.append(time.perf_counter())
            server.process.terminate()
        return response, time.perf_counter()

    try:
        with ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(post, range(REQUESTS)))
    finally:
        clean = server.stop()
    for response, _ in answers:
        assert response.status_code == 200, response.text
        assert len(response.content) == int(response.headers["inference-header-content-length"]) + 8 * DIGITS
    assert sum(done > signalled[0] for _, done in answers) >= REQUESTS // 2, "too few requests were still in flight"
    assert clean, server.log()


def test_requests_still_running_when_the_drain_timeout_ends_are_answered_503(tmp_path):
    # The numpy backend takes about a second for each request: most are still queued when the
    # 1 s drain ends, and uvicorn cancels them.
    digits = np.ascontiguousarray(np.resize(load_samples()[0], (DIGITS, 28, 28)))
    header = json.dumps({"inputs": [{"name": "digits", "datatype": "UINT8", "shape": [DIGITS, 28, 28],
                                     "parameters": {"binary_data_size": digits.nbytes}}]}).encode()
    server = Server("--model", "modern", "--backend", "numpy", "--threads", "1", "--drain-timeout", "1",
                    log_path=tmp_path / "server.log")

    def post(_):
        with httpx.Client(timeout=120) as http:
            return http.post(server.url + "/v2/models/modern/infer", content=header + digits.tobytes(),
                             headers={"Inference-Header-Content-Length": str(len(header))})

    try:
        with ThreadPoolExecutor(REQUESTS) as pool:
            pending = [pool.submit(post, k) for k in range(REQUESTS)]
            time.sleep(1.0)
            server.process.terminate()
            answers = [future.result() for future in pending]
    finally:
        server.stop()
    statuses = [response.status_code for response in answers]
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    for response in answers:
        if response.status_code == 503:
            assert "drain timeout" in response.json()["error"]
    assert "Traceback" not in server.log(), server.log()
