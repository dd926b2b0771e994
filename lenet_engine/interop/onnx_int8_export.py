"""Int8LeNet5.to_onnx: the int8 pass as an ONNX graph of integer operators (opset 17).

The graph computes what the NumPy reference (kernels/numpy/lenet5_int8.py)
computes, in the same integers, so ONNX Runtime's stages equal the engine's
bit for bit: modern's logits exactly, classic's float RBF distances up to
the order of the float64 sum.

    digits       (N, 28, 28) float32 in [0, 1] -> Round(x * 255) as uint8: the pixels the
                 engine's int8 pass reads
    C1, C3       ConvInteger with int8 kernels, + int32 bias; C1 pads the pixels with zeros
                 (pixel 0 is the background); classic C3's unconnected pairs are zero kernels
    C5, F6       MatMulInteger (int8 x int8 -> int32), + int32 bias
    squashing    Cast to float32, * m (one IEEE product) -> Round (half to even) -> Clip(-L, L)
                 -> + L -> Gather in the stage's int8 table
    pooling      Cast to int32 -> ReduceSum over each 2x2 block -> + 508 + map * 1017 -> Gather
                 in the maps' tables, laid end to end
    output       modern: MatMulInteger + bias, Cast to float32, * m: the logits;
                 classic: the RBF (as the fp32 export's) of float32(F6) * F6's scale

Not QDQ: the squashings and poolings are tables, which QuantizeLinear and
DequantizeLinear around float Tanh and AveragePool would only approximate
(a label can move); with the tables as Gathers the graph is the engine's
scheme itself. Outputs as the fp32 export's: `outputs`, `probabilities`, `labels`.
"""

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.interop.onnx_export import INPUT, OUTPUTS, GraphBuilder, rbf_node
from lenet_engine.kernels.fused_int8 import POOL_SUMS

_POOL_OFFSET = (POOL_SUMS - 1) // 2   # a sum of four int8 values, -508..508, + 508 is its table index


def export_int8_onnx(model, path):
    """Write `model` (an Int8LeNet5) to `path` as ONNX (graph in the module docstring); needs the
    onnx package (the [onnx] extra). Checked with onnx.checker, written atomically."""
    onnx = import_optional("onnx", "onnx", "to_onnx")
    q, arch = model._weights, model._arch
    g = GraphBuilder(onnx, {})
    scaled = g.node("Mul", [INPUT, g.constant("pixel_levels", np.float32(255))], "pixels_float")
    rounded = g.node("Round", [scaled], "pixels_rounded")
    pixels = g.node("Cast", [rounded], "pixels", to=onnx.TensorProto.UINT8)
    x = g.node("Unsqueeze", [pixels, g.constant("axis_1", np.array([1], np.int64))], "pixels_nchw")
    x = _conv(g, "c1", x, q.c1_w.reshape(6, 1, 5, 5), q.c1_b, pads=[2, 2, 2, 2])
    x = _squash(g, "c1", x, q.c1_m, q.c1_lut)
    x = _pool(g, "s2", x, q.s2_lut)
    x = _conv(g, "c3", x, _dense_c3(q), q.c3_b)
    x = _squash(g, "c3", x, q.c3_m, q.c3_lut)
    x = _pool(g, "s4", x, q.s4_lut)
    x = g.node("Flatten", [x], "s4.flat", axis=1)
    x = _squash(g, "c5", _matmul(g, "c5", x, q.c5_w, q.c5_b), q.c5_m, q.c5_lut)
    x = _squash(g, "f6", _matmul(g, "f6", x, q.f6_w, q.f6_b), q.f6_m, q.f6_lut)
    if q.distance_output:
        code = g.node("Cast", [x], "f6.code", to=onnx.TensorProto.FLOAT)
        code = g.node("Mul", [code, g.constant("f6.scale", np.float32(q.f6_scale))], "f6.code_value")
        outputs = rbf_node(g, "output", code, OUTPUTS[0], q.out_w)
        scores = g.node("Neg", [outputs], "negated_distances")
    else:
        acc = g.node("Cast", [_matmul(g, "output", x, q.out_w, q.out_b)], "output.float",
                     to=onnx.TensorProto.FLOAT)
        outputs = scores = g.node("Mul", [acc, g.constant("output.m", q.out_m)], OUTPUTS[0])
    g.node("Softmax", [scores], OUTPUTS[1], axis=1)
    g.node("ArgMin" if q.distance_output else "ArgMax", [outputs], OUTPUTS[2], axis=1, keepdims=0)
    g.write(path, arch, model.metadata, precision="int8")


def _dense_c3(q):
    """(16, 6, 5, 5) int8: C3's kernels, zero where a pair is not connected (zeros add nothing)."""
    dense = np.zeros((16, 6, 5, 5), np.int8)
    for o in range(16):
        span = slice(q.conn_start[o], q.conn_start[o + 1])
        dense[o, q.conn_in[span]] = q.c3_w[span].reshape(-1, 5, 5)
    return dense


def _conv(g, name, x, weight, bias, **attributes):
    acc = g.node("ConvInteger", [x, g.constant(f"{name}.weight", weight)], f"{name}.acc", **attributes)
    return g.node("Add", [acc, g.constant(f"{name}.bias", bias.reshape(1, -1, 1, 1))], f"{name}.sum")


def _matmul(g, name, x, weight, bias):
    acc = g.node("MatMulInteger", [x, g.constant(f"{name}.weight", np.ascontiguousarray(weight.T))],
                 f"{name}.acc")
    return g.node("Add", [acc, g.constant(f"{name}.bias", bias)], f"{name}.sum")


def _squash(g, name, acc, multiplier, lut):
    """int32 sums (channel on axis 1) -> int8: lut[clip(rint(float32(acc) * m), -L, L) + L]."""
    half = (len(lut) - 1) // 2
    shape = (1, -1, 1, 1) if name in ("c1", "c3") else (1, -1)
    z = g.node("Cast", [acc], f"{name}.float", to=g.onnx.TensorProto.FLOAT)
    z = g.node("Mul", [z, g.constant(f"{name}.m", multiplier.reshape(shape))], f"{name}.scaled")
    z = g.node("Round", [z], f"{name}.rounded")
    z = g.node("Clip", [z, g.constant(f"{name}.low", np.float32(-half)), g.constant(f"{name}.high", np.float32(half))],
               f"{name}.clipped")
    index = g.node("Cast", [z], f"{name}.steps", to=g.onnx.TensorProto.INT64)
    index = g.node("Add", [index, g.constant(f"{name}.half", np.int64(half))], f"{name}.index")
    return g.node("Gather", [g.constant(f"{name}.table", lut), index], f"{name}.out")


def _pool(g, name, x, luts):
    """(N, C, H, W) int8 -> (N, C, H/2, W/2) int8: each 2x2 block's sum looked up in its map's table."""
    maps = luts.shape[0]
    side = {"s2": 28, "s4": 10}[name] // 2
    wide = g.node("Cast", [x], f"{name}.int32", to=g.onnx.TensorProto.INT32)
    blocks = g.node("Reshape", [wide, g.constant(f"{name}.blocks_shape",
                                                 np.array([-1, maps, side, 2, side, 2], np.int64))],
                    f"{name}.blocks")
    sums = g.node("ReduceSum", [blocks, g.constant(f"{name}.block_axes", np.array([3, 5], np.int64))],
                  f"{name}.sums", keepdims=0)
    offsets = (_POOL_OFFSET + POOL_SUMS * np.arange(maps, dtype=np.int32)).reshape(1, maps, 1, 1)
    index = g.node("Add", [sums, g.constant(f"{name}.offsets", offsets)], f"{name}.index32")
    index = g.node("Cast", [index], f"{name}.index", to=g.onnx.TensorProto.INT64)
    return g.node("Gather", [g.constant(f"{name}.tables", luts.reshape(-1)), index], f"{name}.out")
