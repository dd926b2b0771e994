"""LeNet5.to_onnx: either architecture as an ONNX graph of standard operators (opset 17).

Called by lenet_engine.model.LeNet5.to_onnx. The graph walks the
architecture's layers (lenet_engine.architectures), one small function per
layer type, and is built with the `onnx` package's helper API:

    input          digits (N, 28, 28) float32 in [0, 1] (uint8 pixels / 255; 0 = background)
    field          Unsqueeze to (N, 1, 28, 28), pixel p -> background + (ink - background) * p,
                   Pad by 2 with the background value: the engine's 32x32 input field
    Conv           Conv
    SparseConv     Conv over all 6 input maps with the kernels of the pairs that Table I
                   leaves out set to zero (classic C3)
    Subsample      depthwise 2x2 Conv, stride 2, every tap = the map's coefficient, + bias
    AvgPool        AveragePool 2x2, stride 2
    Squash         Tanh, or Mul(S) -> Tanh -> Mul(A) for the paper's A tanh(S a)
    Linear         Flatten -> Gemm (C5 too: its (120, 16, 5, 5) weight read as (120, 400))
    RBF            in float64: Sub(prototypes) -> Mul -> ReduceSum, as the engine's fused
                   kernel sums in double, then Cast to float32

    outputs        (N, 10) float32: model.forward() (RBF distances for classic, logits for modern)
    probabilities  (N, 10) float32: model.predict_proba() (Softmax of -distances or of logits)
    labels         (N,) int64: model.predict() (ArgMin of the distances, ArgMax of the logits)
"""

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine._version import __version__
from lenet_engine.architectures import get_architecture
from lenet_engine.inputs import DIGIT_SIZE, FIELD_SIZE, N_CLASSES
from lenet_engine.io import atomic
from lenet_engine.layers import RBF, AvgPool, Conv, Linear, SparseConv, Squash, Subsample

OPSET = 17
# The IR version that came with opset 17: files readable by ONNX Runtime 1.12 and later.
IR_VERSION = 8
INPUT = "digits"
OUTPUTS = ("outputs", "probabilities", "labels")
_F32 = np.float32


def export_onnx(model, path):
    """Write `model` (a LeNet5) to `path` as an ONNX model (graph described in the module docstring).

    Needs the onnx package (`pip install "lenet-engine[onnx]"`); the file is
    checked with onnx.checker and written atomically.
    """
    onnx = import_optional("onnx", "onnx", "to_onnx")
    arch = get_architecture(model.arch)
    graph = GraphBuilder(onnx, model.state_dict())
    x = _input_field(graph, arch)
    for i, layer in enumerate(arch.layers):
        out = OUTPUTS[0] if i == len(arch.layers) - 1 else layer.name
        x = _LAYER_OPS[type(layer)](graph, layer, x, out)
    scores = graph.node("Neg", [x], "negated_distances") if arch.predicts_by_distance else x
    graph.node("Softmax", [scores], OUTPUTS[1], axis=1)
    graph.node("ArgMin" if arch.predicts_by_distance else "ArgMax", [x], OUTPUTS[2], axis=1, keepdims=0)
    graph.write(path, arch, model.metadata)


class GraphBuilder:
    """Accumulates nodes and initializers; each node has one output, named like the node."""

    def __init__(self, onnx, state):
        self.onnx, self.state = onnx, state
        self.nodes, self.initializers = [], []

    def constant(self, name, value):
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, name, **attributes):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def write(self, path, arch, metadata, precision="fp32"):
        """Check the finished graph with onnx.checker and write it to `path`, atomically: an
        interrupted export keeps any older file there."""
        proto = self.model(arch, metadata, precision)
        self.onnx.checker.check_model(proto, full_check=True)
        atomic.write_bytes(path, [proto.SerializeToString()])

    def model(self, arch, metadata, precision):
        helper, tensor = self.onnx.helper, self.onnx.TensorProto
        inputs = [helper.make_tensor_value_info(INPUT, tensor.FLOAT, ["N", DIGIT_SIZE, DIGIT_SIZE])]
        outputs = [
            helper.make_tensor_value_info(OUTPUTS[0], tensor.FLOAT, ["N", N_CLASSES]),
            helper.make_tensor_value_info(OUTPUTS[1], tensor.FLOAT, ["N", N_CLASSES]),
            helper.make_tensor_value_info(OUTPUTS[2], tensor.INT64, ["N"]),
        ]
        graph = helper.make_graph(self.nodes, f"lenet5_{arch.name}", inputs, outputs, self.initializers)
        what = "RBF distances (smallest wins)" if arch.predicts_by_distance else "logits"
        graph.doc_string = (
            f"LeNet-5 ({arch.name}, {precision}). Input digits: (N, 28, 28) float32 in [0, 1], 0 = background. "
            f"Outputs: outputs = {what}, probabilities, labels.")
        proto = helper.make_model(graph, producer_name="lenet_engine", producer_version=__version__,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        proto.ir_version = IR_VERSION
        source = metadata.get("imported_from")
        helper.set_model_props(proto, {
            "arch": arch.name,
            "engine_version": __version__,
            "precision": precision,
            "input": "digits (N, 28, 28) float32 in [0, 1]",
            "outputs": f"outputs (N, 10) {what}; probabilities (N, 10); labels (N,) int64",
            **({"imported_from": str(source)} if source else {}),
        })
        return proto


def _input_field(g, arch):
    """(N, 28, 28) digits -> (N, 1, 32, 32) field, as lenet_engine.inputs.to_network_input does."""
    x = g.node("Unsqueeze", [INPUT, g.constant("axis_1", np.array([1], np.int64))], "digits_nchw")
    scale, background = _F32(arch.ink - arch.background), _F32(arch.background)
    if scale != 1:
        x = g.node("Mul", [x, g.constant("input_scale", scale)], "digits_scaled")
    if background != 0:
        x = g.node("Add", [x, g.constant("input_background", background)], "digits_shifted")
    pad = (FIELD_SIZE - DIGIT_SIZE) // 2
    pads = np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64)  # begins of N, C, H, W, then ends
    return g.node("Pad", [x, g.constant("field_pads", pads), g.constant("field_background", background)],
                  "field", mode="constant")


def _conv(g, layer, x, out):
    weight, bias = g.state[f"{layer.name}.weight"], g.state[f"{layer.name}.bias"]
    return _conv_node(g, layer.name, x, out, weight, bias)


def _conv_node(g, name, x, out, weight, bias, **attributes):
    return g.node("Conv", [x, g.constant(f"{name}.weight", weight), g.constant(f"{name}.bias", bias)],
                  out, **attributes)


def _sparse_conv(g, layer, x, out):
    # Unconnected pairs get zero kernels: their products add exact zeros.
    kernels = g.state[f"{layer.name}.weight"]
    n_out, n_in, k = layer.out_shape[0], layer.in_shape[0], layer.kernel
    dense = np.zeros((n_out, n_in, k, k), _F32)
    for o in range(n_out):
        span = slice(layer.conn_start[o], layer.conn_start[o + 1])
        dense[o, layer.conn_in[span]] = kernels[span]
    return _conv_node(g, layer.name, x, out, dense, g.state[f"{layer.name}.bias"])


def _subsample(g, layer, x, out):
    coef = g.state[f"{layer.name}.coef"]
    taps = np.repeat(coef, 4).reshape(len(coef), 1, 2, 2).astype(_F32)
    return _conv_node(g, layer.name, x, out, taps, g.state[f"{layer.name}.bias"],
                      kernel_shape=[2, 2], strides=[2, 2], group=len(coef))


def _avgpool(g, layer, x, out):
    return g.node("AveragePool", [x], out, kernel_shape=[2, 2], strides=[2, 2])


def _squash(g, layer, x, out):
    if layer.amplitude == 1 and layer.slope == 1:
        return g.node("Tanh", [x], out)
    scaled = g.node("Mul", [x, g.constant(f"{layer.name}.slope", _F32(layer.slope))], f"{layer.name}.scaled")
    tanh = g.node("Tanh", [scaled], f"{layer.name}.tanh")
    return g.node("Mul", [tanh, g.constant(f"{layer.name}.amplitude", _F32(layer.amplitude))], out)


def _linear(g, layer, x, out):
    flat = g.node("Flatten", [x], f"{layer.name}.flat", axis=1)
    weight = g.state[f"{layer.name}.weight"].reshape(layer.out_shape[0], layer.n_in)
    return g.node("Gemm", [flat, g.constant(f"{layer.name}.weight", weight),
                           g.constant(f"{layer.name}.bias", g.state[f"{layer.name}.bias"])],
                  out, transB=1)


def _rbf(g, layer, x, out):
    return rbf_node(g, layer.name, x, out, g.state[f"{layer.name}.prototypes"])


def rbf_node(g, name, x, out, prototypes):
    """(N, 84) float32 x -> (N, 10) float32 squared distances to prototypes' rows, summed in float64."""
    x64 = g.node("Cast", [x], f"{name}.x64", to=g.onnx.TensorProto.DOUBLE)
    rows = g.node("Unsqueeze", [x64, g.constant("axis_1_rbf", np.array([1], np.int64))], f"{name}.rows")
    diff = g.node("Sub", [rows, g.constant(f"{name}.prototypes", prototypes.astype(np.float64))], f"{name}.diff")
    square = g.node("Mul", [diff, diff], f"{name}.square")
    total = g.node("ReduceSum", [square, g.constant("axis_2", np.array([2], np.int64))], f"{name}.sum64",
                   keepdims=0)
    return g.node("Cast", [total], out, to=g.onnx.TensorProto.FLOAT)


_LAYER_OPS = {
    Conv: _conv,
    SparseConv: _sparse_conv,
    Subsample: _subsample,
    AvgPool: _avgpool,
    Squash: _squash,
    Linear: _linear,
    RBF: _rbf,
}
