"""lenet_engine against PyTorch, TorchScript, ONNX Runtime and OpenVINO, on the same machine, in one run.

    pip install -e ".[bench]"
    python benchmarks/compare.py                  # both architectures, 2 threads
    python benchmarks/compare.py --json out.json

Every peer runs the same model (the engine's shipped weights, copied into an
equivalent PyTorch module, exported from it to ONNX for ONNX Runtime and
OpenVINO) on the same digits, and its outputs are checked against the
engine's before anything is timed. Peers missing from this Python are
reported as such and skipped. Measured so far: inference throughput per batch
size, batch-1 latency and (with --train) seconds per training epoch of
`modern` with Adam, batch 128, against PyTorch eager. Not yet: cold start of
the peers, memory, the plot.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import lenet_engine as le
from lenet_engine import constants
from lenet_engine.cli import load_samples

AGREEMENT = 1e-4  # max |output difference| a peer may show before it is timed


# --- the same networks in PyTorch ---------------------------------------------


def torch_model(engine):
    """An nn.Module computing what `engine` (a LeNet5) computes, with its weights."""
    import torch
    from torch import nn

    state = {k: torch.from_numpy(v.copy()) for k, v in engine.state_dict().items()}

    class Squash(nn.Module):
        def __init__(self, amplitude, slope):
            super().__init__()
            self.amplitude, self.slope = amplitude, slope

        def forward(self, a):
            return self.amplitude * torch.tanh(self.slope * a)

    def conv(name, n_in, n_out, weight=None):
        layer = nn.Conv2d(n_in, n_out, 5)
        layer.weight.data = state[f"{name}.weight"] if weight is None else weight
        layer.bias.data = state[f"{name}.bias"]
        return layer

    def linear(name, n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        layer.weight.data = state[f"{name}.weight"].reshape(n_out, n_in)
        layer.bias.data = state[f"{name}.bias"]
        return layer

    if engine.arch == "modern":
        return nn.Sequential(
            nn.ZeroPad2d(2), conv("conv1", 1, 6), nn.Tanh(), nn.AvgPool2d(2),
            conv("conv2", 6, 16), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            linear("dense1", 400, 120), nn.Tanh(), linear("dense2", 120, 84), nn.Tanh(),
            linear("dense3", 84, 10),
        ).eval()

    def subsample(name, maps):
        # coef * (sum of the 2x2 block) + bias, as a depthwise 2x2 convolution of stride 2.
        layer = nn.Conv2d(maps, maps, 2, stride=2, groups=maps)
        layer.weight.data = state[f"{name}.coef"].reshape(maps, 1, 1, 1).expand(maps, 1, 2, 2).clone()
        layer.bias.data = state[f"{name}.bias"]
        return layer

    # Sparse C3 as a dense convolution whose missing connections are zero.
    c3 = torch.zeros(16, 6, 5, 5)
    conn_start, conn_in = constants.connection_arrays()
    for o in range(16):
        for p in range(conn_start[o], conn_start[o + 1]):
            c3[o, conn_in[p]] = state["c3.weight"][p]

    class RBF(nn.Module):
        def __init__(self, prototypes):
            super().__init__()
            self.register_buffer("w", prototypes)
            self.register_buffer("w2", (prototypes * prototypes).sum(1))

        def forward(self, x):  # |x - w|^2 = |x|^2 - 2 x.w + |w|^2, as matrix products
            return (x * x).sum(1, keepdim=True) - 2 * x @ self.w.T + self.w2

    a, s = constants.SQUASH_AMPLITUDE, constants.SQUASH_SLOPE
    return nn.Sequential(
        nn.ConstantPad2d(2, constants.CLASSIC_BACKGROUND),
        conv("c1", 1, 6), Squash(a, s), subsample("s2", 6), Squash(a, s),
        conv("c3", 6, 16, weight=c3), Squash(a, s), subsample("s4", 16), Squash(a, s),
        conv("c5", 16, 120), Squash(a, s), nn.Flatten(), linear("f6", 120, 84), Squash(a, s),
        RBF(state["output.prototypes"]),
    ).eval()


def torch_input(engine, digits):
    """The float input the PyTorch module takes (the engine scales uint8 itself)."""
    x = digits.astype(np.float32)[:, None] / np.float32(255)
    if engine.arch == "classic":
        span = np.float32(constants.CLASSIC_INK - constants.CLASSIC_BACKGROUND)
        x = x * span + np.float32(constants.CLASSIC_BACKGROUND)
    return x


# --- runners: each maps uint8 digits (N, 28, 28) to outputs (N, 10) -------------


def engine_runners(arch, threads):
    le.set_num_threads(threads)
    return {f"lenet_engine[{b}]": le.load(arch, backend=b).forward
            for b in le.backends() if b != "numpy"}


def peer_runners(engine, threads, workdir):
    runners, missing = {}, {}
    try:
        import torch
    except ImportError as exc:
        return runners, {"pytorch": str(exc)}
    torch.set_num_threads(threads)
    module = torch_model(engine)

    def eager(digits):
        with torch.inference_mode():
            return module(torch.from_numpy(torch_input(engine, digits))).numpy()

    runners["pytorch eager"] = eager
    example = torch.from_numpy(torch_input(engine, np.zeros((4, 28, 28), np.uint8)))
    with torch.inference_mode():
        scripted = torch.jit.optimize_for_inference(torch.jit.trace(module, example))

    def torchscript(digits):
        with torch.inference_mode():
            return scripted(torch.from_numpy(torch_input(engine, digits))).numpy()

    runners["torchscript"] = torchscript
    onnx_path = Path(workdir) / f"{engine.arch}.onnx"
    try:
        torch.onnx.export(module, example, str(onnx_path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means no ONNX peers
        missing["onnx export"] = repr(exc)
        return runners, missing
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        runners["onnxruntime"] = lambda d: session.run(None, {"x": torch_input(engine, d)})[0]
    except ImportError as exc:
        missing["onnxruntime"] = str(exc)
    try:
        import openvino as ov

        compiled = ov.Core().compile_model(str(onnx_path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        runners["openvino"] = lambda d: request.infer({0: torch_input(engine, d)})[0].copy()
    except ImportError as exc:
        missing["openvino"] = str(exc)
    return runners, missing


# --- timing -----------------------------------------------------------------------


def median_seconds(run, digits, min_time=0.5, min_repeats=5):
    run(digits)  # warm-up: JIT, caches, allocations
    times = []
    started = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - started < min_time:
        t = time.perf_counter()
        run(digits)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(arch, threads, batches, workdir):
    images, _ = load_samples()
    engine = le.load(arch, backend="numpy")
    runners = engine_runners(arch, threads)
    peers, missing = peer_runners(engine, threads, workdir)
    reference = engine.forward(images)
    result = {"arch": arch, "missing": missing, "runtimes": {}}
    for name, run in {**runners, **peers}.items():
        diff = float(np.abs(np.asarray(run(images), dtype=np.float64) - reference).max())
        entry = {"max_abs_diff": diff, "digits_per_second": {}}
        result["runtimes"][name] = entry
        if diff > AGREEMENT:
            entry["error"] = f"outputs differ from the engine's by {diff:.2e}: not timed"
            continue
        entry["latency_ms"] = 1e3 * median_seconds(run, images[:1], min_repeats=200)
        for n in batches:
            batch = np.resize(images, (n, 28, 28))
            entry["digits_per_second"][n] = n / median_seconds(run, batch)
    return result


def training_seconds_per_epoch(threads, digits=6000, batch=128):
    """Seconds per 60,000-digit epoch of modern with Adam, batch 128: engine backends and PyTorch eager,
    timed on the first `digits` training digits (one warm-up pass first) and scaled to 60,000."""
    x, y = le.datasets.load_mnist("train")
    x, y = x[:digits], y[:digits]
    le.set_num_threads(threads)
    result = {}
    for backend in [b for b in le.backends() if b != "numpy"]:
        model = le.LeNet5("modern", seed=0, backend=backend)
        model.fit(x[:batch * 2], y[:batch * 2], epochs=1, batch_size=batch, verbose=0)
        started = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        result[f"lenet_engine[{backend}]"] = (time.perf_counter() - started) * 60000 / digits
    try:
        import torch
    except ImportError:
        return result
    torch.set_num_threads(threads)
    module = torch_model(le.LeNet5("modern", seed=0, backend="numpy")).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, eps=1e-7)
    inputs = torch.from_numpy(x.astype(np.float32)[:, None] / np.float32(255))
    targets = torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(n):
        order = torch.randperm(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(module(inputs[idx]), targets[idx]).backward()
            optimizer.step()

    epoch(batch * 2)
    started = time.perf_counter()
    epoch(digits)
    result["pytorch eager"] = (time.perf_counter() - started) * 60000 / digits
    return result


def print_report(result, batches):
    rows = result["runtimes"]
    print(f"\n== {result['arch']} ==")
    header = f"{'runtime':<22}{'batch-1 ms':>11}" + "".join(f"{f'N={n:,}':>12}" for n in batches)
    print(header + "   (digits/s)")
    for name, entry in rows.items():
        if "error" in entry:
            print(f"{name:<22}{entry['error']}")
            continue
        rates = "".join(f"{entry['digits_per_second'][n]:>12,.0f}" for n in batches)
        print(f"{name:<22}{entry['latency_ms']:>11.3f}{rates}")
    for peer, why in result["missing"].items():
        print(f"{peer:<22}not measured: {why}")
    engines = {k: v for k, v in rows.items() if k.startswith("lenet_engine") and "error" not in v}
    others = {k: v for k, v in rows.items() if not k.startswith("lenet_engine") and "error" not in v}
    if not engines or not others:
        return
    print("ratios, best engine backend / best peer:")
    for n in batches:
        best = max(v["digits_per_second"][n] for v in engines.values())
        peer_name, peer = max(others.items(), key=lambda kv: kv[1]["digits_per_second"][n])
        print(f"  throughput N={n:,}: {best / peer['digits_per_second'][n]:.2f}x ({peer_name})")
    fastest = min(v["latency_ms"] for v in engines.values())
    peer_name, peer = min(others.items(), key=lambda kv: kv[1]["latency_ms"])
    print(f"  batch-1 latency: {fastest / peer['latency_ms']:.2f}x of {peer_name}'s (lower is better)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,64,1024,10000")
    parser.add_argument("--archs", default="classic,modern")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--train", action="store_true", help="also time training epochs (needs MNIST)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": sys.version.split()[0], "threads": args.threads}
    print(f"machine: {machine}")
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for arch in args.archs.split(","):
            results.append(measure(arch, args.threads, batches, workdir))
            print_report(results[-1], batches)
    training = None
    if args.train:
        training = training_seconds_per_epoch(args.threads)
        print("\n== training: seconds per 60,000-digit epoch, modern, Adam, batch 128 ==")
        for name, seconds in training.items():
            print(f"{name:<22}{seconds:8.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine, "results": results, "training_seconds_per_epoch": training}, indent=2))


if __name__ == "__main__":
    main()
