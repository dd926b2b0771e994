"""The runtimes compare.py measures, each as a function digits -> outputs, and the model files they load.

    prepare(arch, workdir)                  # once, in the parent: writes the files below
    run = runner("onnxruntime", arch, workdir, threads=2)
    run(digits)                             # uint8 (N, 28, 28) -> (N, 10) float32 outputs

Files per architecture in `workdir`: <arch>.spec.json (input scaling and
squashing constants), <arch>.torch.pt (state dict of the equivalent PyTorch
module), <arch>.ts.pt (TorchScript, traced and frozen) and
<arch>.onnx (exported from the PyTorch module, for ONNX Runtime and
OpenVINO). Every runtime runs the engine's shipped weights.

Fresh processes (cold start, memory) import this module and build one
runner, so it imports nothing heavy at module level: each runner imports only
its own runtime, and the peers never import lenet_engine.
"""

import json
from pathlib import Path

import numpy as np

ENGINE_BACKENDS = ("cython", "numba")
PEERS = ("pytorch eager", "torchscript", "onnxruntime", "openvino")
RUNTIMES = tuple(f"lenet_engine[{b}]" for b in ENGINE_BACKENDS) + PEERS

# Settings each peer gets (reported with the results).
SETTINGS = {
    "pytorch eager": "torch.inference_mode, torch.set_num_threads(threads)",
    "torchscript": "torch.jit.trace, saved frozen, torch.jit.optimize_for_inference at load, inference_mode, "
                   "set_num_threads(threads)",
    "onnxruntime": "CPUExecutionProvider, ORT_ENABLE_ALL graph optimisations, intra_op_num_threads = threads, "
                   "inter_op 1, sequential execution",
    "openvino": "CPU plugin, PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS = threads, one sync infer request",
}


def spec_of(arch):
    """Constants the peers need, read from the engine: input scaling and (classic) the squashing function."""
    from lenet_engine import constants
    from lenet_engine.architectures import get_architecture

    a = get_architecture(arch)
    return {"arch": arch, "background": float(a.background), "ink": float(a.ink),
            "amplitude": constants.SQUASH_AMPLITUDE, "slope": constants.SQUASH_SLOPE}


def torch_input(spec, digits):
    """The float32 (N, 1, 28, 28) input the PyTorch module takes; the engine scales uint8 digits itself."""
    scale = np.float32((spec["ink"] - spec["background"]) / 255.0)
    x = digits[:, None].astype(np.float32)
    x *= scale
    x += np.float32(spec["background"])
    return x


def torch_module(spec, engine_state=None):
    """An nn.Module computing what the engine computes for spec["arch"]; with the engine's weights if given."""
    import torch
    from torch import nn

    state = None
    if engine_state is not None:
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in engine_state.items()}

    class Squash(nn.Module):
        def __init__(self, amplitude, slope):
            super().__init__()
            self.amplitude, self.slope = amplitude, slope

        def forward(self, a):
            return self.amplitude * torch.tanh(self.slope * a)

    class RBF(nn.Module):
        def __init__(self, prototypes):
            super().__init__()
            self.register_buffer("w", prototypes)
            self.register_buffer("w2", (prototypes * prototypes).sum(1))

        def forward(self, x):  # |x - w|^2 = |x|^2 - 2 x.w + |w|^2, as matrix products
            return (x * x).sum(1, keepdim=True) - 2 * x @ self.w.T + self.w2

    def conv(name, n_in, n_out, weight=None):
        layer = nn.Conv2d(n_in, n_out, 5)
        if state is not None:
            layer.weight.data = state[f"{name}.weight"] if weight is None else weight
            layer.bias.data = state[f"{name}.bias"]
        return layer

    def linear(name, n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        if state is not None:
            layer.weight.data = state[f"{name}.weight"].reshape(n_out, n_in)
            layer.bias.data = state[f"{name}.bias"]
        return layer

    if spec["arch"] == "modern":
        return nn.Sequential(
            nn.ZeroPad2d(2), conv("conv1", 1, 6), nn.Tanh(), nn.AvgPool2d(2),
            conv("conv2", 6, 16), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            linear("dense1", 400, 120), nn.Tanh(), linear("dense2", 120, 84), nn.Tanh(),
            linear("dense3", 84, 10),
        ).eval()

    def subsample(name, maps):
        # coef * (sum of the 2x2 block) + bias, as a depthwise 2x2 convolution of stride 2.
        layer = nn.Conv2d(maps, maps, 2, stride=2, groups=maps)
        if state is not None:
            layer.weight.data = state[f"{name}.coef"].reshape(maps, 1, 1, 1).expand(maps, 1, 2, 2).clone()
            layer.bias.data = state[f"{name}.bias"]
        return layer

    c3 = prototypes = None
    if state is not None:
        from lenet_engine import constants

        # Sparse C3 as a dense convolution whose missing connections are zero.
        c3 = torch.zeros(16, 6, 5, 5)
        conn_start, conn_in = constants.connection_arrays()
        for o in range(16):
            for p in range(conn_start[o], conn_start[o + 1]):
                c3[o, conn_in[p]] = state["c3.weight"][p]
        prototypes = state["output.prototypes"]
    a, s = spec["amplitude"], spec["slope"]
    return nn.Sequential(
        nn.ConstantPad2d(2, spec["background"]),
        conv("c1", 1, 6), Squash(a, s), subsample("s2", 6), Squash(a, s),
        conv("c3", 6, 16, weight=c3), Squash(a, s), subsample("s4", 16), Squash(a, s),
        conv("c5", 16, 120), Squash(a, s), nn.Flatten(), linear("f6", 120, 84), Squash(a, s),
        RBF(torch.zeros(10, 84) if prototypes is None else prototypes),
    ).eval()


def prepare(arch, workdir):
    """Write every peer's model file for `arch` into workdir; returns {peer: why not} for files that failed."""
    import lenet_engine as le

    workdir = Path(workdir)
    spec = spec_of(arch)
    (workdir / f"{arch}.spec.json").write_text(json.dumps(spec))
    failed = {}
    try:
        import torch
    except ImportError as exc:
        return {p: f"no torch: {exc}" for p in PEERS}
    module = torch_module(spec, le.load(arch).state_dict())
    torch.save(module.state_dict(), workdir / f"{arch}.torch.pt")
    example = torch.from_numpy(torch_input(spec, np.zeros((4, 28, 28), np.uint8)))
    with torch.inference_mode():
        traced = torch.jit.trace(module, example)
    # Saved frozen; optimize_for_inference runs at load (a module it has optimised fails to load again).
    torch.jit.save(torch.jit.freeze(traced), str(workdir / f"{arch}.ts.pt"))
    try:
        torch.onnx.export(module, example, str(workdir / f"{arch}.onnx"), input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                          opset_version=17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means no ONNX peers
        failed["onnxruntime"] = failed["openvino"] = f"ONNX export failed: {exc!r}"
    return failed


def runner(name, arch, workdir, threads, spinning=True):
    """digits uint8 (N, 28, 28) -> outputs (N, 10) for runtime `name`, loaded from workdir's files.

    Raises ImportError when the runtime is not installed. `spinning` is ONNX
    Runtime's intra-op spin-wait (its default, on).
    """
    workdir = Path(workdir)
    if name.startswith("lenet_engine["):
        import lenet_engine as le

        le.set_num_threads(threads)
        return le.load(arch, backend=name[len("lenet_engine["):-1]).forward
    spec = json.loads((workdir / f"{arch}.spec.json").read_text())
    if name in ("pytorch eager", "torchscript"):
        import torch

        if name == "torchscript":
            module = torch.jit.optimize_for_inference(torch.jit.load(str(workdir / f"{arch}.ts.pt")))
        else:
            module = torch_module(spec)
            module.load_state_dict(torch.load(workdir / f"{arch}.torch.pt", weights_only=True))

        def run_torch(digits):
            # PyTorch's thread count is global: set per call (~0.3 us), so runners with different
            # counts can take turns in one process.
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return module(torch.from_numpy(torch_input(spec, digits))).numpy()

        return run_torch
    if name == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(workdir / f"{arch}.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        return lambda digits: session.run(None, {"x": torch_input(spec, digits)})[0]
    if name == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(workdir / f"{arch}.onnx"), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        # The request reuses its output buffer: copy, as a caller keeping the result must.
        return lambda digits: request.infer({0: torch_input(spec, digits)})[0].copy()
    raise ValueError(f"unknown runtime {name!r}: expected one of {', '.join(RUNTIMES)}")


# --- training ---------------------------------------------------------------------------

TRAINING_RUNTIMES = tuple(f"lenet_engine[{b}]" for b in ENGINE_BACKENDS) + ("pytorch eager",)
TRAINING_SETTINGS = "modern, Adam (lr 1e-3, eps 1e-7), batch 128, shuffled, cross-entropy; " \
                    "PyTorch: train mode, set_num_threads(threads), zero_grad / backward / step per batch"


def training_epoch(name, threads, digits, labels, batch=128):
    """A function n -> None that trains `name`'s modern model for one pass over the first n digits."""
    if name.startswith("lenet_engine["):
        import lenet_engine as le

        le.set_num_threads(threads)
        model = le.LeNet5("modern", seed=0, backend=name[len("lenet_engine["):-1])
        return lambda n: model.fit(digits[:n], labels[:n], epochs=1, batch_size=batch, verbose=0)
    if name != "pytorch eager":
        raise ValueError(f"no training loop for {name!r}")
    import torch

    import lenet_engine as le

    torch.set_num_threads(threads)
    spec = spec_of("modern")
    # The engine's initial weights for seed 0: both start from the same point.
    module = torch_module(spec, le.LeNet5("modern", seed=0, backend="numpy").state_dict()).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, eps=1e-7)
    inputs = torch.from_numpy(torch_input(spec, digits))
    targets = torch.from_numpy(labels.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(n):
        order = torch.randperm(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(module(inputs[idx]), targets[idx]).backward()
            optimizer.step()

    return epoch
