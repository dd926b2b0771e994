"""The int8 runtimes of `compare.py --int8`: the engine's int8 model, and the peers' own int8.

- lenet_engine[cython] int8: le.load(arch, precision="int8"), the shipped int8 weights: the
  engine the targets judge.
- lenet_engine[numba] int8: the same weights on the numba backend, shown beside it; no target
  judges it, and it is no peer.
- onnxruntime int8: ONNX Runtime's quantize_static of the peer model (peers.py's ONNX export):
  QDQ format, per-channel int8 weights, uint8 activations, calibrated on CALIBRATION training
  digits (its MinMax default), run as peers.py runs the fp32 model. It quantizes the layers with
  weights (QUANTIZED_OPS), as NNCF does: with its default list it also quantizes classic's scalar
  multiplies, whose QDQ pairs OpenVINO's low-precision pass fails on ("index '0' out of range"),
  and both runtimes ran as fast or faster without them (Zen 4, 2 threads, digits/s with the
  default list / with this one: modern ONNX Runtime 24.7k / 24.8k, OpenVINO 27.5k / 28.0k;
  classic ONNX Runtime 22.5k / 29.7k, OpenVINO failed / 20.0k).
- openvino int8: OpenVINO compiling that QDQ model (it runs the quantized operations in int8;
  the rest at its default precision).
- lenet_engine[cython] fp32: the engine's own fp32 pass, timed in the same rounds on the same
  batch: the yardstick of the int8-against-own-fp32 target, so that a machine whose speed drifts
  between compare.py's fp32 table and its int8 one does not move the ratio. It is no peer.
"""

from pathlib import Path

import numpy as np
import peers

CALIBRATION = 1000
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]
ENGINE = "lenet_engine[cython] int8"
ENGINES = {ENGINE: "cython", "lenet_engine[numba] int8": "numba"}  # row: backend
OWN_FP32 = "lenet_engine[cython] fp32"
OWN = (*ENGINES, OWN_FP32)  # the engine's rows: never a peer
RUNTIMES = (*ENGINES, "onnxruntime int8", "openvino int8", OWN_FP32)
SETTINGS = {
    name: f"le.load(arch, precision='int8', backend='{backend}'): the shipped int8 weights, calibrated on "
          "the first 1,000 MNIST training digits" for name, backend in ENGINES.items()} | {
    "onnxruntime int8": f"onnxruntime.quantization.quantize_static of the fp32 ONNX model: QDQ, per-channel "
                        f"QInt8 weights, QUInt8 activations, MinMax calibration on the first {CALIBRATION} "
                        f"MNIST training digits, quantizing {', '.join(QUANTIZED_OPS)}; then as the fp32 "
                        "onnxruntime peer",
    "openvino int8": "the same QDQ model compiled by OpenVINO's CPU plugin, PERFORMANCE_HINT LATENCY, "
                     "INFERENCE_NUM_THREADS = threads",
    OWN_FP32: "le.load(arch, backend='cython'): the engine's fp32 pass, timed in the int8 rounds as the "
              "yardstick of the int8-against-own-fp32 target",
}


def qdq_file(workdir, arch):
    return Path(workdir) / f"{arch}.forward.qdq.onnx"


def prepare(arch, workdir, calibration_digits):
    """Write the QDQ model of `arch` into workdir (after peers.prepare); {runtime: why not} on failure."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError as exc:
        return {"onnxruntime int8": f"not installed ({exc})", "openvino int8": f"no QDQ model ({exc})"}
    spec = peers.spec_of(arch)

    class Digits(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": peers.torch_input(spec, calibration_digits[i:i + 100])}
                                 for i in range(0, len(calibration_digits), 100)])

        def get_next(self):
            return next(self.batches, None)

    try:
        quantize_static(str(peers.model_file(workdir, arch, "onnx")), str(qdq_file(workdir, arch)), Digits(),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=QUANTIZED_OPS)
    except Exception as exc:  # noqa: BLE001 - any quantizer failure leaves both QDQ peers unmeasured
        return {"onnxruntime int8": f"quantize_static failed: {exc!r}", "openvino int8": f"no QDQ model: {exc!r}"}
    return {}


def runner(name, arch, workdir, threads):
    """digits uint8 (N, 28, 28) -> (N, 10) float32 outputs of int8 runtime `name` (ImportError if absent)."""
    if name in ENGINES or name == OWN_FP32:
        import lenet_engine as le

        backend = ENGINES.get(name, "cython")
        if backend not in le.backends():
            raise ImportError(f"the {backend} backend is not available")
        le.set_num_threads(threads)
        return le.load(arch, backend=backend, precision="fp32" if name == OWN_FP32 else "int8").forward
    import json

    spec = json.loads(peers.model_file(workdir, arch, "spec.json").read_text())
    path = str(qdq_file(workdir, arch))
    if name == "onnxruntime int8":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda digits: session.run(None, {"x": peers.torch_input(spec, digits)})[0]
    if name == "openvino int8":
        import openvino as ov

        compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                         "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda digits: request.infer({0: peers.torch_input(spec, digits)})[0].copy()
    raise ValueError(f"unknown int8 runtime {name!r}: expected one of {', '.join(RUNTIMES)}")


def labels(arch, outputs):
    outputs = np.asarray(outputs)
    return outputs.argmin(axis=1) if peers.spec_of(arch)["predicts_by_distance"] else outputs.argmax(axis=1)
