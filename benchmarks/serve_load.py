"""Load on `lenet-engine serve`'s code from a bounded generator on 127.0.0.1 only.

    python benchmarks/serve_load.py --engine lenet --max-batch 64 --clients 1,8,64,256 --requests 20000
    python benchmarks/serve_load.py --engine onnx ...    # ONNX Runtime behind the same server code
    python benchmarks/serve_load.py --engine noop ...    # a model that computes nothing: the server's own cost

The server runs in a subprocess (lenet_engine.serve.run with the chosen model); the generator
here keeps `clients` HTTP/1.1 keep-alive connections busy over raw asyncio streams (cheap on the
CPU it shares with the server), each sending the next request when its answer is in, until
`requests` answers. Requests use the binary tensor extension both ways, as tritonclient does.
Prints one Markdown row per client count: requests/s, digits/s, p50/p99 latency, errors, the
generator's CPU share, and the server's RSS after warm-up and at the end.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

MODEL = "classic"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server side ------------------------------------------------------------


class OnnxModel:
    """The engine's model exported to ONNX, run by ONNX Runtime with as many threads a pass as the engine."""

    arch = MODEL

    def __init__(self, model):
        import onnxruntime as ort

        from lenet_engine.serve.app import pass_threads_default

        path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        model.to_onnx(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = pass_threads_default()
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def predict_proba(self, digits):
        floats = digits.astype(np.float32) / np.float32(255) if digits.dtype == np.uint8 else digits
        return self.session.run(["probabilities"], {"digits": floats})[0]


class NoopModel:
    """Answers without computing: what is left is the server's cost."""

    arch = MODEL

    def predict_proba(self, digits):
        return np.full((len(digits), 10), 0.1, np.float32)


def serve(args):
    import lenet_engine as le
    from lenet_engine.serve import run

    model = le.load(MODEL)
    model = {"lenet": lambda: model, "onnx": lambda: OnnxModel(model), "noop": NoopModel}[args.engine]()
    run({MODEL: model}, port=args.port, max_batch=args.max_batch, batch_window=args.window_ms / 1000,
        log_level="warning")


# --- the load generator -----------------------------------------------------------


def request_bytes(port, digits):
    header = json.dumps({"inputs": [{"name": "digits", "datatype": "UINT8", "shape": list(digits.shape),
                                     "parameters": {"binary_data_size": digits.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    body = header + digits.tobytes()
    head = (f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(header)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def client(port, request, budget, latencies, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0])
    finally:
        writer.close()


async def load(port, request, clients, requests):
    latencies, errors, budget = [], [], [requests]
    started = time.perf_counter()
    await asyncio.gather(*(client(port, request, budget, latencies, errors) for _ in range(clients)))
    return time.perf_counter() - started, np.array(latencies), errors


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def measure(args):
    from lenet_engine.cli import load_samples

    port = free_port()
    command = [sys.executable, __file__, "--serve", "--engine", args.engine, "--port", str(port),
               "--max-batch", str(args.max_batch), "--window-ms", str(args.window_ms)]
    server = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)
        digits = np.resize(load_samples()[0], (args.digits, 28, 28))
        request = request_bytes(port, np.ascontiguousarray(digits))
        asyncio.run(load(port, request, 64, 2000))  # warm-up
        rss_start = rss_mb(server.pid)
        print(f"| engine | batching | digits/request | clients | requests | requests/s | digits/s | p50 ms | p99 ms "
              f"| errors | generator CPU | server RSS MB |\n|{' --- |' * 12}")
        for clients in args.clients:
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            seconds, latencies, errors = asyncio.run(load(port, request, clients, args.requests))
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu_share = (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / seconds
            rate = len(latencies) / seconds
            batching = "off" if args.max_batch == 1 else f"{args.max_batch} / {args.window_ms:g} ms"
            print(f"| {args.engine} | {batching} | {args.digits} | {clients} | {len(latencies):,} | {rate:,.0f} "
                  f"| {rate * args.digits:,.0f} | {np.percentile(latencies, 50) * 1e3:.2f} "
                  f"| {np.percentile(latencies, 99) * 1e3:.2f} | {len(errors)} | {cpu_share:.0%} of a core "
                  f"| {rss_start:.0f} -> {rss_mb(server.pid):.0f} |", flush=True)
    finally:
        server.terminate()
        server.wait(60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("lenet", "onnx", "noop"), default="lenet")
    parser.add_argument("--max-batch", type=int, default=64, help="1: batching off")
    parser.add_argument("--window-ms", type=float, default=1.0)
    parser.add_argument("--clients", type=lambda t: [int(v) for v in t.split(",")], default=[1, 8, 64, 256])
    parser.add_argument("--requests", type=int, default=20000, help="per client count")
    parser.add_argument("--digits", type=int, default=1, help="digits per request")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server subprocess
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    serve(args) if args.serve else measure(args)


if __name__ == "__main__":
    main()
