"""from_torch: a PyTorch state_dict of the seed's LeNet-5 -> a `modern` LeNet5.

Called as lenet_engine.from_torch. PyTorch and the engine agree on layouts
(Conv2d weights (out, in, kh, kw), Linear weights (out, in), nn.Flatten
channels-first), so the tensors move over unchanged; only their names are
mapped. The five layers have distinct weight shapes, so each `<prefix>.weight`
is matched to its layer by shape, whatever the module calls it:

    engine layer   PyTorch layer              <prefix>.weight   <prefix>.bias
    conv1          nn.Conv2d(1, 6, 5)         (6, 1, 5, 5)      (6,)
    conv2          nn.Conv2d(6, 16, 5)        (16, 6, 5, 5)     (16,)
    dense1         nn.Linear(400, 120)        (120, 400)        (120,)
    dense2         nn.Linear(120, 84)         (84, 120)         (84,)
    dense3         nn.Linear(84, 10)          (10, 84)          (10,)

The equivalent module, whose state_dict keys are 1.weight ... 12.bias:

    nn.Sequential(nn.ZeroPad2d(2), nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
                  nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                  nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                  nn.Linear(84, 10))

fed (N, 1, 28, 28) float digits in [0, 1] and giving logits. A module with
named layers (conv1, c3, fc1, features.0, a DataParallel `module.` prefix...)
maps the same way. A state_dict cannot show activations, pooling or padding:
those must be the ones above (Conv2d(1, 6, 5, padding=2) in place of the
ZeroPad2d is the same model).
"""

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import UnsupportedModelError, WeightsFileError, WeightsNotFoundError
from lenet_engine.interop._modern import modern_model
from lenet_engine.io import safetensors_file

# Engine layer -> weight shape; the bias has shape (weight_shape[0],).
WEIGHT_SHAPES = {
    "conv1": (6, 1, 5, 5),
    "conv2": (16, 6, 5, 5),
    "dense1": (120, 400),
    "dense2": (84, 120),
    "dense3": (10, 84),
}
_LAYER_BY_SHAPE = {shape: name for name, shape in WEIGHT_SHAPES.items()}
_EXPECTED = ", ".join(f"{name} {shape}" for name, shape in WEIGHT_SHAPES.items())
TORCH_SUFFIXES = (".pt", ".pth")


def from_torch(obj_or_path, *, backend="auto"):
    """A `modern` LeNet5 from a PyTorch state_dict of the seed's LeNet-5, a module, or a file of one.

    obj_or_path: a state_dict (a mapping of names to torch tensors or numpy
    arrays), an nn.Module (its state_dict() is read), or the path of a .pt or
    .pth file saved with torch.save(model.state_dict(), path) (read with
    torch.load(weights_only=True): nothing but tensors is unpickled; needs
    the [torch] extra) or of a .safetensors file of one (read by the engine's
    own reader, no torch needed).

    Keys map to the engine's layers by the shape of their weights (module
    docstring); tensors of any other shape or kind, a weight without its
    bias, or a missing layer raise UnsupportedModelError naming the key.
    The model's forward() equals the PyTorch module's output (logits).
    """
    if isinstance(obj_or_path, (str, os.PathLike)):
        path = Path(os.fspath(obj_or_path))
        state, source = _read_file(path), {"format": "torch", "file": path.name}
        where = str(path)
    else:
        _check_module_layers(obj_or_path)
        state, source, where = _as_state_dict(obj_or_path), {"format": "torch"}, "state_dict"
    arrays = {key: _as_array(value, key, where) for key, value in state.items()}
    return modern_model(engine_state(arrays, where), backend, source)


def engine_state(arrays, where):
    """{key: array} of a PyTorch state_dict -> the engine's state dict, matching layers by weight shape."""
    found = {}  # engine layer -> the state_dict prefix holding it
    for key, array in arrays.items():
        prefix, _, kind = key.rpartition(".")
        if kind not in ("weight", "bias"):
            raise UnsupportedModelError(
                f"{where}: {key!r} is neither a weight nor a bias; the seed's LeNet-5 has only "
                f"weights and biases of {_EXPECTED}")
        if kind == "bias":
            if f"{prefix}.weight" not in arrays:
                raise UnsupportedModelError(f"{where}: {key!r} is a bias without a weight {prefix + '.weight'!r}")
            continue
        layer = _LAYER_BY_SHAPE.get(array.shape)
        if layer is None:
            raise UnsupportedModelError(
                f"{where}: {key!r} has shape {array.shape}, which fits no layer of the seed's LeNet-5 "
                f"(weight shapes: {_EXPECTED})")
        if layer in found:
            raise UnsupportedModelError(
                f"{where}: {key!r} and {found[layer] + '.weight'!r} both have the shape of {layer}'s weight")
        bias_key = f"{prefix}.bias" if prefix else "bias"
        bias = arrays.get(bias_key)
        if bias is None or bias.shape != array.shape[:1]:
            have = "is missing" if bias is None else f"has shape {bias.shape}"
            raise UnsupportedModelError(
                f"{where}: {key!r} is {layer}'s weight, but its bias {bias_key!r} {have}; "
                f"expected shape {array.shape[:1]}")
        found[layer] = prefix
    missing = [name for name in WEIGHT_SHAPES if name not in found]
    if missing:
        raise UnsupportedModelError(
            f"{where}: no weight of shape {WEIGHT_SHAPES[missing[0]]} ({missing[0]} of the seed's LeNet-5); "
            f"missing: {', '.join(missing)}")
    state = {}
    for layer, prefix in found.items():
        dot = f"{prefix}." if prefix else ""
        state[f"{layer}.weight"] = arrays[f"{dot}weight"]
        state[f"{layer}.bias"] = arrays[f"{dot}bias"]
    return state


def _read_file(path):
    if not path.is_file():
        raise WeightsNotFoundError(f"no PyTorch weights file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors, _ = safetensors_file.load_file(path)
        return tensors
    if suffix not in TORCH_SUFFIXES:
        raise WeightsFileError(
            f"{path}: expected a .pt or .pth file saved with torch.save(model.state_dict(), path), "
            f"or a .safetensors file")
    torch = import_optional("torch", "torch", "from_torch on a .pt/.pth file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - bytes that are not torch.save's raise KeyError, EOFError, ...
        reason = str(exc) or type(exc).__name__
        raise WeightsFileError(
            f"{path} could not be read as a state_dict with torch.load(weights_only=True): {reason}") from None
    return _as_state_dict(loaded, str(path))


# The layers a module of the seed's LeNet-5 may hold (a state_dict cannot show the others).
_SEED_LAYERS = {"Conv2d", "Linear", "Tanh", "AvgPool2d", "ZeroPad2d", "Flatten", "Dropout", "Identity"}


def _check_module_layers(obj):
    """An nn.Module's layers, where it is one: those a state_dict cannot show (activations,
    pooling) must be the seed's, or its forward would differ from the engine's."""
    if not callable(getattr(obj, "named_modules", None)):
        return
    for name, module in obj.named_modules():
        kind = type(module).__name__
        if next(module.children(), None) is None and kind not in _SEED_LAYERS:
            raise UnsupportedModelError(
                f"module layer {name!r} is a {kind}: the seed's LeNet-5 has only "
                f"{', '.join(sorted(_SEED_LAYERS))} layers (pass its state_dict to map the weights anyway)")
        if kind == "AvgPool2d" and (module.kernel_size not in (2, (2, 2)) or module.stride not in (2, (2, 2))):
            raise UnsupportedModelError(f"module layer {name!r} is AvgPool2d({module.kernel_size}, "
                                        f"stride={module.stride}): the seed's pools 2x2, stride 2")


def _as_state_dict(obj, where="state_dict"):
    if callable(getattr(obj, "state_dict", None)):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise UnsupportedModelError(
            f"{where}: expected a state_dict (a mapping of names to tensors) or a module, "
            f"got {type(obj).__name__}")
    for key in obj:
        if not isinstance(key, str):
            raise UnsupportedModelError(f"{where}: key {key!r} is not a string: this is not a state_dict")
    return obj


def _as_array(value, key, where):
    """A float32 numpy copy of a tensor or array value of the state_dict."""
    if hasattr(value, "detach"):  # a torch tensor; converted without importing torch here
        if not value.is_floating_point():
            raise UnsupportedModelError(f"{where}: {key!r} is a {value.dtype} tensor, not floats")
        return value.detach().cpu().float().numpy().copy()
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float32)
    hint = " (a training checkpoint? pass its model state_dict)" if isinstance(value, (Mapping, int, float)) else ""
    raise UnsupportedModelError(
        f"{where}: {key!r} is of type {type(value).__name__}, not a float tensor{hint}")
