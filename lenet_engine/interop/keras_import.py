"""from_keras: a saved Keras model of the seed's LeNet-5 -> a `modern` LeNet5, read with h5py (no TensorFlow).

Called as lenet_engine.from_keras. Keras saves a model in one of two containers:

- `.keras` (Keras 2.13+ and 3): a zip holding config.json (the architecture)
  and model.weights.h5, where the variables of the k-th layer of a class sit
  in layers/<class name in snake case>[_k]/vars/0 (kernel) and 1 (bias);
- legacy `.h5` (model.save("m.h5"), Keras 2 and 3): one HDF5 file whose root
  attribute model_config holds the architecture and whose group
  model_weights/<layer name> lists its datasets in the attribute weight_names.

Both are checked against the seed's model layer by layer before any weight
is read; the first layer that differs is named in the UnsupportedModelError.
Keras's layouts differ from the engine's (LENET5.md): conv kernels are
(kh, kw, in, out), dense kernels (in, out), and Flatten is channels-last, so
the rows of the first dense kernel are permuted from (h, w, c) to (c, h, w).
"""

import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import UnsupportedModelError, WeightsFileError, WeightsNotFoundError
from lenet_engine.interop._modern import modern_model

# The largest kernel of the seed's model, dense1's (400, 120).
_MAX_WEIGHT_VALUES = 400 * 120
# Larger members than this in a .keras zip are not the seed's model (its
# weights with Adam's state take under 1 MB); refusing them bounds memory.
_MAX_MEMBER_BYTES = 64 * 2**20

# The seed's layers after the input, in order: (class, config entries that must
# hold, how the layer reads in a message). A set lists the values allowed.
# Entries Keras leaves out take their Keras defaults (see _normalised).
_CONV = {"kernel_size": (5, 5), "strides": (1, 1), "padding": "valid",
         "dilation_rate": (1, 1), "groups": 1, "activation": "tanh", "use_bias": True}
_POOL = {"pool_size": (2, 2), "strides": (2, 2), "padding": "valid"}
SEED_LAYERS = (
    ("ZeroPadding2D", {"padding": ((2, 2), (2, 2))}, "ZeroPadding2D(padding=2)"),
    ("Conv2D", {"filters": 6, **_CONV}, "Conv2D(6, 5, activation='tanh')"),
    ("AveragePooling2D", _POOL, "AveragePooling2D(pool_size=2, strides=2)"),
    ("Conv2D", {"filters": 16, **_CONV}, "Conv2D(16, 5, activation='tanh')"),
    ("AveragePooling2D", _POOL, "AveragePooling2D(pool_size=2, strides=2)"),
    ("Flatten", {}, "Flatten()"),
    ("Dense", {"units": 120, "activation": "tanh", "use_bias": True}, "Dense(120, activation='tanh')"),
    ("Dense", {"units": 84, "activation": "tanh", "use_bias": True}, "Dense(84, activation='tanh')"),
    # The last layer may also leave the softmax to the loss (from_logits=True).
    ("Dense", {"units": 10, "activation": {"softmax", "linear"}, "use_bias": True},
     "Dense(10, activation='softmax')"),
)
INPUT_SHAPE = (None, 28, 28, 1)

# Keras's kernel shapes of the weighted layers, in order, and the engine's names for them.
_KERAS_KERNELS = (
    ("conv1", (5, 5, 1, 6)),
    ("conv2", (5, 5, 6, 16)),
    ("dense1", (400, 120)),
    ("dense2", (120, 84)),
    ("dense3", (84, 10)),
)


def from_keras(path, *, backend="auto"):
    """A `modern` LeNet5 from a `.keras` or legacy `.h5` file of the seed's Keras model.

    The file must hold the whole model (model.save), not only its weights
    (model.save_weights), since its architecture is checked: ZeroPadding2D(2),
    Conv2D(6, 5, tanh), AveragePooling2D(2), Conv2D(16, 5, tanh),
    AveragePooling2D(2), Flatten, Dense(120, tanh), Dense(84, tanh),
    Dense(10, softmax or linear), channels-last, input (28, 28, 1). Anything
    else raises UnsupportedModelError naming the first layer that differs;
    a file that is not a Keras model raises WeightsFileError. Needs h5py
    (`pip install "lenet-engine[keras]"`), never TensorFlow.

    Keras's inputs are x / 255 for uint8 digits x of shape (N, 28, 28, 1); the
    model's forward() gives the logits before Keras's softmax, predict_proba()
    its outputs.
    """
    h5py = import_optional("h5py", "keras", "from_keras")
    path = Path(os.fspath(path))
    if not path.is_file():
        raise WeightsNotFoundError(f"no Keras file at {path}")
    if zipfile.is_zipfile(path):
        config, weights, version = _read_keras_zip(h5py, path)
    else:
        config, weights, version = _read_legacy_h5(h5py, path)
    state = _engine_state(weights)
    return modern_model(state, backend, {"format": "keras", "file": path.name, "keras_version": version})


# --- the two containers ----------------------------------------------------


def _read_keras_zip(h5py, path):
    """(model config, [(kernel, bias)] of the weighted layers, Keras version) from a .keras zip."""
    with zipfile.ZipFile(path) as archive:
        config = _json(_zip_member(archive, path, "config.json"), path, "config.json")
        metadata = {}
        if "metadata.json" in archive.namelist():
            metadata = _json(_zip_member(archive, path, "metadata.json"), path, "metadata.json")
        layers = _checked_layers(config, path)
        raw = _zip_member(archive, path, "model.weights.h5")
    with _open_h5(h5py, io.BytesIO(raw), f"{path} (model.weights.h5)") as f:
        weights = []
        for group in _keras_zip_groups(layers):
            vars_path = f"layers/{group}/vars"
            if vars_path not in f:
                raise UnsupportedModelError(f"{path}: model.weights.h5 has no {vars_path} (weights of "
                                            f"the layer the config lists there)")
            weights.append(_kernel_and_bias(f[vars_path], ("0", "1"), f"{path}: {vars_path}"))
    return config, weights, str(metadata.get("keras_version", "unknown"))


def _keras_zip_groups(layers):
    """Group names of the weighted layers in model.weights.h5: Keras names them after their class, not their name.

    The first Conv2D of the model is `conv2d`, the second `conv2d_1`, and so on per class.
    """
    seen = {}
    groups = []
    for layer in layers:
        snake = _snake_case(layer["class_name"])
        count = seen.get(snake, 0)
        seen[snake] = count + 1
        if layer["class_name"] in ("Conv2D", "Dense"):
            groups.append(snake if count == 0 else f"{snake}_{count}")
    return groups


def _read_legacy_h5(h5py, path):
    """(model config, [(kernel, bias)] of the weighted layers, Keras version) from a legacy .h5 file."""
    with _open_h5(h5py, path, str(path)) as f:
        if "model_config" not in f.attrs:
            if "layer_names" in f.attrs or "layers" in f:
                raise WeightsFileError(
                    f"{path} holds weights only (model.save_weights), without the model's architecture; "
                    f"save the whole model with model.save('model.keras') or model.save('model.h5')")
            raise WeightsFileError(f"{path} is an HDF5 file but not a saved Keras model (no model_config)")
        config = _json(f.attrs["model_config"], path, "model_config")
        layers = _checked_layers(config, path)
        if "model_weights" not in f:
            raise UnsupportedModelError(f"{path}: the file has a model_config but no model_weights group")
        root = f["model_weights"]
        weights = []
        for layer in layers:
            if layer["class_name"] not in ("Conv2D", "Dense"):
                continue
            name = layer["config"]["name"]
            if name not in root:
                raise UnsupportedModelError(f"{path}: no weights for layer {name!r} in model_weights")
            group = root[name]
            names = [_text(n) for n in group.attrs.get("weight_names", [])]
            weights.append(_kernel_and_bias(group, names, f"{path}: model_weights/{name}"))
        version = _text(f.attrs.get("keras_version", "unknown"))
    return config, weights, version


def _open_h5(h5py, source, where):
    try:
        return h5py.File(source, "r")
    except OSError as exc:
        raise WeightsFileError(f"{where} is neither a .keras zip nor an HDF5 file ({exc})") from None


def _zip_member(archive, path, name):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise WeightsFileError(f"{path} is a zip but not a .keras file: it has no {name}") from None
    if info.file_size > _MAX_MEMBER_BYTES:
        raise WeightsFileError(f"{path}: {name} is {info.file_size} bytes, more than the seed's model holds")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise WeightsFileError(f"{path}: {name} cannot be read from the zip ({exc})") from None


def _kernel_and_bias(group, names, where):
    """(kernel, bias) float32 arrays from the datasets `names` of an HDF5 group, told apart by rank."""
    arrays = []
    for name in names:
        try:
            dataset = group[name]
            # The shape is checked before the data is read: a lying file cannot make us allocate much.
            if dataset.size > _MAX_WEIGHT_VALUES:
                raise UnsupportedModelError(
                    f"{where}: weight {name!r} has shape {dataset.shape}, larger than any of the seed's")
            array = np.asarray(dataset[()])
        except (KeyError, TypeError, AttributeError, OSError) as exc:
            raise UnsupportedModelError(f"{where}: weight {name!r} cannot be read ({exc})") from None
        if array.dtype.kind != "f":
            raise UnsupportedModelError(f"{where}: weight {name!r} has dtype {array.dtype}, expected floats")
        arrays.append(array)
    if len(arrays) != 2 or sorted(a.ndim for a in arrays)[0] != 1:
        shapes = [a.shape for a in arrays]
        raise UnsupportedModelError(f"{where}: expected a kernel and a bias, found weights of shapes {shapes}")
    kernel, bias = sorted(arrays, key=lambda a: -a.ndim)
    return kernel.astype(np.float32), bias.astype(np.float32)


# --- the architecture --------------------------------------------------------


def _checked_layers(config, path):
    """The config's layers after the input, or UnsupportedModelError naming the first that is not the seed's."""
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise UnsupportedModelError(
            f"{path}: the model is a {kind}, not a Sequential model like the seed's LeNet-5")
    body = config.get("config")
    layers = body if isinstance(body, list) else (body or {}).get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise WeightsFileError(f"{path}: the model config has no list of layers")
    if layers and layers[0].get("class_name") == "InputLayer":
        _check_input(layers[0], path)
        layers = layers[1:]
    for index, layer in enumerate(layers):
        problem = _layer_problem(layer, index)
        if problem:
            name = (layer.get("config") or {}).get("name", "?")
            raise UnsupportedModelError(
                f"{path}: layer {index + 1} ({name!r}, {layer.get('class_name')}) does not fit the "
                f"seed's LeNet-5: {problem}")
    if len(layers) < len(SEED_LAYERS):
        missing = ", ".join(expected for _, _, expected in SEED_LAYERS[len(layers):])
        raise UnsupportedModelError(
            f"{path}: the model ends after {len(layers)} layers; the seed's LeNet-5 goes on with {missing}")
    return layers


def _check_input(layer, path):
    config = layer.get("config") or {}
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if shape is not None and tuple(shape) != INPUT_SHAPE:
        raise UnsupportedModelError(
            f"{path}: the input layer ({config.get('name', '?')!r}) takes batches of shape {tuple(shape)}; "
            f"the seed's LeNet-5 takes {INPUT_SHAPE}")


def _layer_problem(layer, index):
    """Why `layer` is not the seed's layer number `index` (after the input), or None when it is."""
    if index >= len(SEED_LAYERS):
        return "the seed's LeNet-5 ends with Dense(10, activation='softmax') before it"
    class_name, required, expected = SEED_LAYERS[index]
    if layer.get("class_name") != class_name:
        return f"expected {expected}"
    config = _normalised(layer.get("config") or {})
    if config.get("data_format", "channels_last") != "channels_last":
        return f"data_format is {config['data_format']!r}; expected channels_last"
    for key, want in required.items():
        have = config.get(key)
        if have not in (want if isinstance(want, set) else {want}):
            return f"{key} is {have!r}; expected {expected}"
    return None


# Values Keras leaves out of a config, or writes in shorthand, read as Keras reads them.
_DEFAULTS = {"strides": None, "dilation_rate": (1, 1), "groups": 1, "use_bias": True, "data_format": None}


def _normalised(config):
    config = {**_DEFAULTS, **config}
    for key in ("kernel_size", "pool_size", "strides", "dilation_rate"):
        value = config.get(key)
        if isinstance(value, int):
            config[key] = (value, value)
        elif isinstance(value, list):
            config[key] = tuple(value)
    if config["strides"] is None:
        config["strides"] = config.get("pool_size") or (1, 1)
    padding = config.get("padding")
    if isinstance(padding, int):
        config["padding"] = ((padding, padding), (padding, padding))
    elif isinstance(padding, list):
        pairs = [tuple(p) if isinstance(p, list) else (p, p) for p in padding]
        config["padding"] = tuple(pairs)
    config["activation"] = _activation_name(config.get("activation"))
    if config["data_format"] is None:
        config["data_format"] = "channels_last"
    return config


def _activation_name(activation):
    # Keras 3 may serialise a built-in activation as {"class_name": "function", "config": "tanh", ...}.
    if isinstance(activation, dict):
        inner = activation.get("config")
        return inner if isinstance(inner, str) else activation.get("class_name")
    return activation


def _snake_case(class_name):
    # Keras's rule: a capital that starts a word gets an underscore before it,
    # so Conv2D -> conv2d, AveragePooling2D -> average_pooling2d.
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# --- the weights ---------------------------------------------------------------


def _engine_state(weights):
    """Keras (kernel, bias) pairs of conv1, conv2, dense1..3 -> the engine's state dict."""
    state = {}
    for (name, kernel_shape), (kernel, bias) in zip(_KERAS_KERNELS, weights):
        if kernel.shape != kernel_shape or bias.shape != kernel_shape[-1:]:
            raise UnsupportedModelError(
                f"the Keras layer that becomes {name} has a kernel of shape {kernel.shape} and a bias of "
                f"shape {bias.shape}; the seed's LeNet-5 has {kernel_shape} and {kernel_shape[-1:]}")
        state[f"{name}.bias"] = bias
        if kernel.ndim == 4:    # (kh, kw, in, out) -> (out, in, kh, kw)
            state[f"{name}.weight"] = kernel.transpose(3, 2, 0, 1)
        elif name == "dense1":  # rows in Flatten's (h, w, c) order -> columns in (c, h, w) order
            state[f"{name}.weight"] = kernel.reshape(5, 5, 16, 120).transpose(3, 2, 0, 1).reshape(120, 400)
        else:                   # (in, out) -> (out, in)
            state[f"{name}.weight"] = kernel.T
    return {name: np.ascontiguousarray(t, dtype=np.float32) for name, t in state.items()}


def _json(raw, path, what):
    try:
        return json.loads(_text(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeightsFileError(f"{path}: {what} is not valid JSON ({exc})") from None


def _text(value):
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
