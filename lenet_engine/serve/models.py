"""The models a server holds: names from the command line, each with its own batcher.

A model is any object with predict_proba ((N, 28, 28) digits -> (N, 10)
probabilities) and arch; layer_outputs (as LeNet5's) is needed only for the
feature maps of the page. benchmarks/serve_load.py serves ONNX Runtime and a
no-op model through the same code.
"""

import base64
from pathlib import Path

import numpy as np

import lenet_engine as le
from lenet_engine.backends import thread_limit
from lenet_engine.serve.batching import DynamicBatcher

VERSION = "1"  # every model is served as version 1: a name holds one set of weights


def parse_model_spec(spec):
    """--model's value -> (name, shipped name or path): "classic", "path/x.safetensors" (named x), "x=path"."""
    name, sep, source = spec.partition("=")
    if not sep:
        name, source = Path(spec).stem if spec.endswith(".safetensors") else spec, spec
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"--model {spec}: the model name {name!r} must be letters, digits, '-', '_' or '.' "
                         "(name a path's model with NAME=PATH)")
    return name, source


def load_models(specs, backend="auto", precision=None):
    """{name: model} for --model values, in order; two models under one name raise ValueError."""
    models = {}
    for spec in specs:
        name, source = parse_model_spec(spec)
        if name in models:
            raise ValueError(f"--model {spec}: a model named {name!r} is already served (use NAME=PATH)")
        models[name] = le.load(source, backend=backend, precision=precision)
    return models


class ServedModel:
    """One model behind the server: its batcher and, for the page, its feature maps."""

    def __init__(self, name, model, executor, *, max_batch, window, pass_threads):
        self.name = name
        self.model = model
        self.pass_threads = pass_threads
        self.batcher = DynamicBatcher(self._predict, executor, max_batch=max_batch, window=window)

    def _predict(self, digits):
        # On a worker thread: the pass's kernels use at most pass_threads threads.
        with thread_limit(self.pass_threads):
            return self.model.predict_proba(digits)

    async def probabilities(self, digits):
        return await self.batcher.predict(digits)

    def feature_maps(self, digit):
        """The C1, S2, C3 and S4 maps of one (28, 28) digit, as the page draws them (on a worker thread)."""
        maps = []
        for key, values in _last_of_each_layer(self.model.layer_outputs(digit)).items():
            scale = float(np.abs(values).max()) or 1.0
            # Signed activations as bytes: 0 is mid-grey, +-scale black and white.
            shades = np.rint(127.5 + 127.5 * values[0] / scale).astype(np.uint8)
            maps.append({"layer": key.split(".")[0], "output": key, "shape": list(shades.shape), "scale": scale,
                         "data": base64.b64encode(shades.tobytes()).decode()})
        return maps


def _last_of_each_layer(outputs):
    """{output name: value} of the convolution and subsampling layers: each layer's last output
    (after its squash or tanh where it has one), the maps of shape (1, C, H, W)."""
    last = {}
    for key, values in outputs.items():
        if key != "input" and values.ndim == 4:
            last[key.split(".")[0]] = (key, values)
    return dict(last.values())
