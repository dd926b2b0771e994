"""Int8LeNet5: a LeNet-5 quantized to 8-bit integers (the scheme: lenet_engine.quantize).

    q = le.load("modern").quantize(calibration_digits)   # or le.load("modern", precision="int8")
    q.predict(x), q.predict_proba(x), q.score(x, y)      # as a LeNet5's
    q.save("modern-int8.safetensors")

It predicts as a float model does (lenet_engine.predictor) but does not
train: train the float model, then quantize it again.
"""

import numpy as np

from lenet_engine import network, quantize
from lenet_engine.architectures import get_architecture
from lenet_engine.backends import PREFERENCE, backends, get_backend
from lenet_engine.errors import CorruptWeightsError, InvalidInputError, UnknownModelError
from lenet_engine.inputs import check_digits, to_network_input
from lenet_engine.io import weights_file
from lenet_engine.kernels.fused_int8 import Int8Weights, check_int8_weights
from lenet_engine.predictor import PREDICT_CHUNK, Predictor

TENSOR_PREFIX = "int8."
# The Int8Weights fields that are arrays, as the tensors of a weights file.
ARRAY_FIELDS = tuple(f for f in Int8Weights._fields if f not in ("f6_scale", "distance_output"))


class Int8LeNet5(Predictor):
    """A quantized LeNet-5: int8 weights and activations, int32 sums (see lenet_engine.quantize)."""

    precision = "int8"

    def __init__(self, arch, weights, metadata, backend="auto"):
        check_int8_weights(weights)
        self._arch = arch
        self._weights = weights
        self.metadata = metadata
        self.backend = backend

    @property
    def backend(self):
        return self._kernels.NAME

    @backend.setter
    def backend(self, name):
        if name == "auto":
            name = next(b for b in PREFERENCE if b in backends() and hasattr(get_backend(b), "Lenet5Int8Forward"))
        kernels = get_backend(name)
        if not hasattr(kernels, "Lenet5Int8Forward"):
            raise UnknownModelError(f"the {name} backend has no int8 kernels")
        self._kernels = kernels
        self._backend_asked = name
        self._bound = None

    @property
    def num_parameters(self):
        return self._arch.num_parameters

    def __repr__(self):
        return f"Int8LeNet5(arch={self.arch!r}, backend={self.backend!r})"

    def _bind(self):
        return self._kernels.Lenet5Int8Forward(self._weights)

    def _kernel_input(self, digits):
        # The int8 pass reads pixels: float digits in [0, 1] are rounded to the nearest 1/255.
        if digits.dtype == np.uint8:
            return np.ascontiguousarray(digits)
        return np.rint(digits.astype(np.float32) * np.float32(255)).astype(np.uint8, order="C")  # the kernels' layout

    def layer_outputs(self, x):
        """{"input": (N, 1, 32, 32) field, then C1, S2, C3, S4, C5, F6's layer names: their int8
        outputs as float32 values, and the output layer's name: forward's outputs}: what the integer
        stages hold, for looking inside (lenet-engine visualize, the served page's maps)."""
        from lenet_engine.kernels.numpy.lenet5_int8 import int8_layers

        digits = self._kernel_input(check_digits(x))
        stages = int8_layers(digits, self._weights)
        scales = self.metadata["activation_scales"]
        names = [self._arch.layers[i].name for i in quantize.stage_layers(self._arch)]
        result = {"input": to_network_input(digits, self._arch.background, self._arch.ink)}
        for stage, name in zip(quantize.STAGES, names):
            result[name] = stages[stage].astype(np.float32) * np.float32(scales[stage])
        result[self._arch.layers[-1].name] = self._forward_checked(digits)
        return result

    def to_onnx(self, path):
        """Write the int8 pass as ONNX (needs the [onnx] extra), with the fp32 export's interface:
        input digits (N, 28, 28) float32 in [0, 1]; outputs `outputs`, `probabilities`, `labels`.
        Integer operators and table Gathers, exact (lenet_engine.interop.onnx_int8_export)."""
        from lenet_engine.interop.onnx_int8_export import export_int8_onnx

        export_int8_onnx(self, path)

    # --- pickling and files ------------------------------------------------

    def __getstate__(self):
        return {"arch": self.arch, "weights": self._weights._asdict(), "metadata": self.metadata,
                "backend": self._backend_asked}

    def __setstate__(self, saved):
        self.__init__(get_architecture(saved["arch"]), Int8Weights(**saved["weights"]),
                      saved["metadata"], saved["backend"])

    def save(self, path):
        """Write the int8 tensors, their scales and tables, and the metadata as .safetensors (atomic)."""
        record = {k: v for k, v in self.metadata.items() if k not in ("arch", "engine_version")}
        record["f6_scale"] = float(self._weights.f6_scale)
        tensors = {TENSOR_PREFIX + f: getattr(self._weights, f) for f in ARRAY_FIELDS}
        weights_file.save(path, tensors, self.arch, record)

    @classmethod
    def from_file_contents(cls, arch_name, tensors, metadata, backend, source):
        """The model of a weights file whose metadata says precision int8 (weights_file.load's output)."""
        arch = get_architecture(arch_name, source=source)
        arrays = {}
        for f in ARRAY_FIELDS:
            if TENSOR_PREFIX + f not in tensors:
                raise CorruptWeightsError(f"{source}: int8 weights without the tensor {TENSOR_PREFIX + f!r}")
            arrays[f] = tensors[TENSOR_PREFIX + f]
        scale = metadata.get("f6_scale")
        if not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
            raise CorruptWeightsError(f"{source}: int8 weights without a valid f6_scale")
        weights = Int8Weights(**arrays, f6_scale=np.float32(scale), distance_output=arch.predicts_by_distance)
        try:
            check_int8_weights(weights)
        except (TypeError, ValueError) as exc:
            raise CorruptWeightsError(f"{source}: {exc}") from None
        return cls(arch, weights, metadata, backend)  # an unknown backend is the caller's error, not the file's


def quantized(model, calibration_digits):
    """model (a float LeNet5) quantized with activation scales measured on calibration_digits."""
    digits = check_digits(calibration_digits)
    if not len(digits):
        raise InvalidInputError("quantizing needs at least one calibration digit")
    arch = model._arch
    top = None
    for start in range(0, len(digits), PREDICT_CHUNK):
        field = to_network_input(digits[start:start + PREDICT_CHUNK], arch.background, arch.ink)
        _, activations = network.forward_layers(arch, model._kernels, model._state, field,
                                                model._threads(len(field)))
        chunk_top = {k: float(np.abs(v).max()) for k, v in quantize.stage_outputs(arch, activations).items()}
        top = chunk_top if top is None else {k: max(top[k], chunk_top[k]) for k in top}
    scales = quantize.activation_scales(arch, top)
    weights = quantize.int8_weights(arch, arch.fused_weights(model._state), scales)
    # The float model's recipe (classic's MAP constant) carries over; its training record does not.
    metadata = {k: model.metadata[k] for k in ("arch", "recipe") if k in model.metadata}
    metadata.update(precision="int8", activation_scales=scales, calibration_digits=len(digits),
                    quantized_from=model.metadata.get("command", "a LeNet5 in memory"))
    return Int8LeNet5(arch, weights, metadata, model._backend_asked)

