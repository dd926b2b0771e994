"""Models in and out of other frameworks: Keras and PyTorch weights in, ONNX out.

    m = le.from_keras("lenet5.keras")     # or a legacy .h5 (needs h5py: the [keras] extra)
    m = le.from_torch(state_dict_or_path) # .pt/.pth (torch: the [torch] extra) or .safetensors
    m.to_onnx("lenet5.onnx")              # needs onnx: the [onnx] extra

The optional packages are imported inside these functions only
(lenet_engine._optional); lenet_engine itself never needs them.
"""

from lenet_engine.interop.keras_import import from_keras
from lenet_engine.interop.onnx_export import export_onnx
from lenet_engine.interop.torch_import import from_torch

__all__ = ["from_keras", "from_torch", "export_onnx"]
