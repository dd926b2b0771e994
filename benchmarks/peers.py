"""The runtimes compare.py measures, each as a function digits -> outputs, and the model files they load.

    prepare(arch, workdir)                  # once, in the parent: writes the files below
    run = runner("onnxruntime", arch, workdir, threads=2)
    run(digits)                             # uint8 (N, 28, 28) -> (N, 10) float32 outputs
    run.precision                           # "f32", or the reduced precision the runtime chose
    proba = runner("onnxruntime", arch, workdir, threads=2, output="proba")  # what predict_proba returns

Files per architecture in `workdir`: <arch>.spec.json (input scaling,
squashing constants, how outputs become probabilities), <arch>.torch.pt
(state dict of the equivalent PyTorch module) and, per output ("forward":
the network's outputs; "proba": their softmax, computed in the peer's own
graph), <arch>.<output>.ts.pt (TorchScript, traced and frozen) and
<arch>.<output>.onnx (exported from the PyTorch module, for ONNX Runtime and
OpenVINO). Every runtime runs the engine's shipped weights.

Fresh processes (cold start, memory) import this module and build one
runner, so it imports nothing heavy at module level: each runner imports only
its own runtime, and the peers never import lenet_engine.
"""

import json
from pathlib import Path

import numpy as np

ENGINE_BACKENDS = ("cython", "numba")
# The fp32 peers: the yardsticks of compare.py's targets, each computing in float32 as the engine does.
FP32_PEERS = ("pytorch eager", "torchscript", "onnxruntime", "openvino")
# OpenVINO left at its own default precision (bf16 on CPUs with AMX): shown beside the fp32 peers
# with its accuracy, never a yardstick, since it computes something else.
OPENVINO_DEFAULT = "openvino default precision"
PEERS = FP32_PEERS + (OPENVINO_DEFAULT,)
RUNTIMES = tuple(f"lenet_engine[{b}]" for b in ENGINE_BACKENDS) + PEERS
# What a runner returns: the network's outputs (model.forward) or class probabilities
# (model.predict_proba), each peer computing the softmax in its own graph.
OUTPUTS = ("forward", "proba")

# Settings each peer gets (reported with the results).
_OPENVINO = "CPU plugin, PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS = threads, one sync infer request"
SETTINGS = {
    "pytorch eager": "torch.inference_mode, torch.set_num_threads(threads)",
    "torchscript": "torch.jit.trace, saved frozen, torch.jit.optimize_for_inference at load, inference_mode, "
                   "set_num_threads(threads)",
    "onnxruntime": "CPUExecutionProvider, ORT_ENABLE_ALL graph optimisations, intra_op_num_threads = threads, "
                   "inter_op 1, sequential execution",
    "openvino": _OPENVINO + ", INFERENCE_PRECISION_HINT f32",
    OPENVINO_DEFAULT: _OPENVINO + ", INFERENCE_PRECISION_HINT left at the plugin's default (read back from "
                      "the compiled model)",
}


def spec_of(arch):
    """Constants the peers need, read from the engine: input scaling, the squashing function, the outputs' sense."""
    from lenet_engine import constants
    from lenet_engine.architectures import get_architecture

    a = get_architecture(arch)
    return {"arch": arch, "background": float(a.background), "ink": float(a.ink),
            "amplitude": constants.SQUASH_AMPLITUDE, "slope": constants.SQUASH_SLOPE,
            "predicts_by_distance": bool(a.predicts_by_distance)}


def torch_input(spec, digits):
    """The float32 (N, 1, 28, 28) input the PyTorch module takes; the engine scales uint8 digits itself."""
    scale = np.float32((spec["ink"] - spec["background"]) / 255.0)
    x = digits[:, None].astype(np.float32)
    x *= scale
    x += np.float32(spec["background"])
    return x


def model_file(workdir, arch, kind, output="forward"):
    """Path of one model file: kind "spec.json" or "torch.pt" (one per arch), "ts.pt" or "onnx" (per output)."""
    if kind in ("spec.json", "torch.pt"):
        return Path(workdir) / f"{arch}.{kind}"
    return Path(workdir) / f"{arch}.{output}.{kind}"


def torch_module(spec, engine_state=None, output="forward"):
    """An nn.Module computing what the engine computes for spec["arch"]; with the engine's weights if given.

    Built as a PyTorch user would write it (padding inside the convolution where the pad is
    zero), and the weights are copied into the module's own parameters.
    """
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

    class Probabilities(nn.Module):
        """predict_proba's posteriors: softmax of the logits, or of minus the RBF distances."""

        def __init__(self, sign):
            super().__init__()
            self.sign = sign

        def forward(self, y):
            return torch.softmax(self.sign * y, dim=1)

    def load(layer, weight, bias):
        with torch.no_grad():
            layer.weight.copy_(weight.reshape(layer.weight.shape))
            layer.bias.copy_(bias)
        return layer

    def conv(name, n_in, n_out, weight=None, padding=0):
        layer = nn.Conv2d(n_in, n_out, 5, padding=padding)
        if state is None:
            return layer
        return load(layer, state[f"{name}.weight"] if weight is None else weight, state[f"{name}.bias"])

    def linear(name, n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        return layer if state is None else load(layer, state[f"{name}.weight"], state[f"{name}.bias"])

    if spec["arch"] == "modern":
        # modern's blank pixel is 0: the first convolution pads by itself.
        module = nn.Sequential(
            conv("conv1", 1, 6, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            conv("conv2", 6, 16), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            linear("dense1", 400, 120), nn.Tanh(), linear("dense2", 120, 84), nn.Tanh(),
            linear("dense3", 84, 10),
        )
    else:
        def subsample(name, maps):
            # coef * (sum of the 2x2 block) + bias, as a depthwise 2x2 convolution of stride 2.
            layer = nn.Conv2d(maps, maps, 2, stride=2, groups=maps)
            if state is None:
                return layer
            return load(layer, state[f"{name}.coef"].reshape(maps, 1, 1, 1).expand(maps, 1, 2, 2),
                        state[f"{name}.bias"])

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
        module = nn.Sequential(
            # The padding is the background value (not zero): a layer of its own.
            nn.ConstantPad2d(2, spec["background"]),
            conv("c1", 1, 6), Squash(a, s), subsample("s2", 6), Squash(a, s),
            conv("c3", 6, 16, weight=c3), Squash(a, s), subsample("s4", 16), Squash(a, s),
            conv("c5", 16, 120), Squash(a, s), nn.Flatten(), linear("f6", 120, 84), Squash(a, s),
            RBF(torch.zeros(10, 84) if prototypes is None else prototypes),
        )
    if output == "proba":
        module.append(Probabilities(-1.0 if spec["predicts_by_distance"] else 1.0))
    elif output != "forward":
        raise ValueError(f"unknown output {output!r}: expected one of {', '.join(OUTPUTS)}")
    return module.eval()


def prepare(arch, workdir):
    """Write every peer's model files for `arch` into workdir; returns {peer: why not} for files that failed."""
    import lenet_engine as le

    spec = spec_of(arch)
    model_file(workdir, arch, "spec.json").write_text(json.dumps(spec))
    failed = {}
    try:
        import torch
    except ImportError as exc:
        return {p: f"no torch: {exc}" for p in PEERS}
    state = le.load(arch).state_dict()
    torch.save(torch_module(spec, state).state_dict(), model_file(workdir, arch, "torch.pt"))
    example = torch.from_numpy(torch_input(spec, np.zeros((4, 28, 28), np.uint8)))
    for output in OUTPUTS:
        module = torch_module(spec, state, output)
        with torch.inference_mode():
            traced = torch.jit.trace(module, example)
        # Saved frozen; optimize_for_inference runs at load (a module it has optimised fails to load again).
        torch.jit.save(torch.jit.freeze(traced), str(model_file(workdir, arch, "ts.pt", output)))
        try:
            torch.onnx.export(module, example, str(model_file(workdir, arch, "onnx", output)),
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - any exporter failure means no ONNX peers
            for peer in ("onnxruntime", "openvino", OPENVINO_DEFAULT):
                failed[peer] = f"ONNX export ({output}) failed: {exc!r}"
    return failed


def runner(name, arch, workdir, threads, spinning=True, output="forward"):
    """digits uint8 (N, 28, 28) -> (N, 10) float32 for runtime `name`, loaded from workdir's files.

    output "forward": the network's outputs; "proba": class probabilities, as predict_proba.
    The function's `precision` attribute is the precision the runtime computes in ("f32" but
    for OpenVINO at its default, which reports its own). Raises ImportError when the runtime is
    not installed. `spinning` is ONNX Runtime's intra-op spin-wait (its default, on).
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}: expected one of {', '.join(OUTPUTS)}")
    run = _runner(name, arch, Path(workdir), threads, spinning, output)
    if not hasattr(run, "precision"):
        run.precision = "f32"
    return run


def _runner(name, arch, workdir, threads, spinning, output):
    if name.startswith("lenet_engine["):
        import lenet_engine as le

        le.set_num_threads(threads)
        model = le.load(arch, backend=name[len("lenet_engine["):-1])
        method = model.forward if output == "forward" else model.predict_proba

        def run_engine(digits):
            return method(digits)

        return run_engine
    spec = json.loads(model_file(workdir, arch, "spec.json").read_text())
    if name in ("pytorch eager", "torchscript"):
        import torch

        if name == "torchscript":
            module = torch.jit.optimize_for_inference(torch.jit.load(str(model_file(workdir, arch, "ts.pt", output))))
        else:
            module = torch_module(spec, output=output)
            module.load_state_dict(torch.load(model_file(workdir, arch, "torch.pt"), weights_only=True))

        def run_torch(digits):
            # PyTorch's thread count is global: set per call (~0.3 us), so runners with different
            # counts can take turns in one process.
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return module(torch.from_numpy(torch_input(spec, digits))).numpy()

        return run_torch
    onnx = str(model_file(workdir, arch, "onnx", output))
    if name == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])

        def run_ort(digits):
            return session.run(None, {"x": torch_input(spec, digits)})[0]

        return run_ort
    if name in ("openvino", OPENVINO_DEFAULT):
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if name == "openvino":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = ov.Core().compile_model(onnx, "CPU", config)
        request = compiled.create_infer_request()

        def run_openvino(digits):
            # The request reuses its output buffer: copy, as a caller keeping the result must.
            return request.infer({0: torch_input(spec, digits)})[0].copy()

        run_openvino.precision = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        return run_openvino
    raise ValueError(f"unknown runtime {name!r}: expected one of {', '.join(RUNTIMES)}")


def _type_name(element_type):
    """OpenVINO's element type as its short name ("f32", "bf16", "f16"); str() for anything else."""
    get = getattr(element_type, "get_type_name", None)
    return get() if callable(get) else str(element_type)


# --- training ---------------------------------------------------------------------------

TRAINING_RUNTIMES = tuple(f"lenet_engine[{b}]" for b in ENGINE_BACKENDS) + ("pytorch eager",)
TRAINING_SETTINGS = "modern, Adam (lr 1e-3, eps 1e-7), batch 128, shuffled, cross-entropy; " \
                    "PyTorch: the plain loop (torch_module as nn.Sequential with the engine's initial " \
                    "weights, F.cross_entropy, torch.optim.Adam, tensors indexed with a randperm), " \
                    "train mode, set_num_threads(threads), zero_grad / backward / step per batch"


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
    import torch.nn.functional as F

    import lenet_engine as le

    torch.set_num_threads(threads)
    spec = spec_of("modern")
    # The loop a PyTorch user writes, the training target's yardstick: nn.Sequential padding inside
    # its first convolution, parameters that are the module's own tensors, F.cross_entropy,
    # torch.optim.Adam, tensors indexed with a permutation. The loop timed here before was slower
    # than such a plain loop, and differed from it in the model alone: a ZeroPad2d layer in front
    # (one more operation per batch, writing a padded copy of the batch that the convolution then
    # reads as 32x32 planes) and parameters that were NumPy arrays put in through `.data`, memory
    # the PyTorch allocator neither chose nor aligned, instead of the tensors the module made.
    # Threads, digits, their order, batches and passes are as they were.
    # The engine's initial weights for seed 0, copied in: both start from the same point.
    module = torch_module(spec, le.LeNet5("modern", seed=0, backend="numpy").state_dict()).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, eps=1e-7)
    inputs = torch.from_numpy(torch_input(spec, digits))
    targets = torch.from_numpy(labels.astype(np.int64))

    def epoch(n):
        order = torch.randperm(min(n, len(inputs)))  # the first n digits, as the engine's digits[:n]
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            F.cross_entropy(module(inputs[idx]), targets[idx]).backward()
            optimizer.step()

    return epoch
