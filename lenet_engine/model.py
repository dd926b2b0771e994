"""The user-facing model: LeNet5 (predict, save, fit) and load().

    m = load("classic")             # shipped weights, or a path
    m = LeNet5("modern", seed=0)    # fresh, initialised as its authors did

A LeNet5 holds a network: its architecture, kernels and state. Inputs are
validated here (lenet_engine.inputs) before any kernel runs. Training is a
loop of its own (lenet_engine.training); fit only calls it.
"""

from lenet_engine import network
from lenet_engine.architectures import get_architecture, initial_state
from lenet_engine.errors import UnknownModelError, WrongPrecisionError
from lenet_engine.inputs import check_digits, check_int, kernel_digits, to_network_input
from lenet_engine.io import weights_file
from lenet_engine.predictor import Predictor


class LeNet5(Predictor):
    """A LeNet-5 network, `classic` (LeCun 1998) or `modern` (the seed's Keras model)."""

    def __init__(self, arch="classic", *, seed=0, backend="auto", trainable_prototypes=False):
        seed = check_int(seed, "seed", 0)
        self._arch = get_architecture(arch, bool(trainable_prototypes))
        self.backend = backend
        self._state = initial_state(self._arch, seed)
        self.metadata = {"arch": self._arch.name, "init_seed": seed}

    @classmethod
    def _from_contents(cls, arch, tensors, metadata, backend, source):
        model = cls.__new__(cls)
        model._arch = get_architecture(arch, _trains_prototypes(metadata), source=source)
        model.backend = backend
        model._arch.check_state(tensors, source)
        model._state = tensors  # the reader's own arrays: no copy at start-up
        model.metadata = metadata
        return model

    @property
    def _state(self):
        """{name: float32 array}: the parameters and fixed buffers. Training updates the arrays in place."""
        return self._tensors

    @_state.setter
    def _state(self, state):
        self._tensors = state
        # The fused kernel with these weights bound, made on first use: a single digit's
        # prediction should not pay for gathering and checking them every call.
        self._bound = None

    # --- description -------------------------------------------------------

    precision = "fp32"

    def _bind(self):
        return network.bound_forward(self._arch, self._kernels, self._state)

    def _kernel_input(self, digits):
        # uint8 digits go to the kernel as they are; other dtypes as float32 network input.
        return kernel_digits(digits, self._arch.background, self._arch.ink)

    @property
    def num_parameters(self):
        """Trainable parameters (classic 60,000; modern 61,706)."""
        return self._arch.num_parameters

    def __repr__(self):
        return f"LeNet5(arch={self.arch!r}, backend={self.backend!r}, num_parameters={self.num_parameters})"

    # --- pickling ----------------------------------------------------------
    # A model crosses process boundaries (multiprocessing, joblib, Dask) as its architecture,
    # state, metadata and backend name; the kernel module and the bound fused kernel are not
    # picklable and are rebuilt on the other side, the kernel on first use.

    def __getstate__(self):
        return {"arch": self.arch, "trainable_prototypes": self._arch.trains_prototypes,
                "state": self._state, "metadata": self.metadata, "backend": self._backend_asked}

    def __setstate__(self, saved):
        self._arch = get_architecture(saved["arch"], saved["trainable_prototypes"])
        self.backend = saved["backend"]
        self._state = self._arch.checked_state(saved["state"], "pickled LeNet5")
        self.metadata = saved["metadata"]

    def layer_outputs(self, x):
        """{"input": (N, 1, 32, 32) field, then each layer's name: its (N, ...) float32 output}, in order.

        For looking inside the network (lenet-engine visualize); every layer's
        output is kept, so pass a few digits, not a dataset.
        """
        digits = check_digits(x)
        field = to_network_input(digits, self._arch.background, self._arch.ink)
        _, activations = network.forward_layers(self._arch, self._kernels, self._state, field,
                                                self._threads(len(digits)))
        names = ["input"] + [layer.name for layer in self._arch.layers]
        return dict(zip(names, activations))

    # --- training ----------------------------------------------------------

    def fit(self, x, y, *, epochs=10, batch_size=32, lr=None, optimizer="adam", momentum=None,
            mu=None, augment=None, validation_data=None, seed=0, verbose=1, map_j=None,
            checkpoint=None, resume=False, curvature_digits=None):
        """Train on digits x with labels y; returns the history, a dict of per-epoch lists.

        optimizer: "adam", "sgd" (with momentum) or "sdlm", the paper's stochastic diagonal
          Levenberg-Marquardt: each parameter steps by lr / (mu + h), h the Gauss-Newton
          diagonal of the Hessian re-estimated on `curvature_digits` training digits before
          each epoch. Its lr is the paper's per-digit eta (a batch of B digits steps B * eta).
        lr, mu: a number, or a list of one number per epoch (the last repeats). Defaults: adam 1e-3,
          sgd 1e-2, sdlm the paper's schedule (training.optimizers.PAPER_ETA); mu the paper's 0.02.
        momentum (sgd, default 0.9), mu and curvature_digits (sdlm, default 500): giving one
          to an optimizer that does not use it raises ValueError.
        augment: True, a Distortions or a dict of its fields: every training digit is
          randomly distorted (lenet_engine.distortions) each time it is used.
        The loss is the MAP criterion (constant map_j) for classic and cross-entropy for modern.
        Everything random (order, distortions, curvature sample) follows from seed and the
        epoch number, so the same call gives the same weights on the same backend, kernel build
        and thread count (the backend's BUILD). checkpoint: a path written (atomically) after every epoch; with resume=True an
        existing checkpoint there is loaded and training goes on from it, to the same result
        as an uninterrupted run. If the loss or the outputs stop being finite, raises
        FloatingPointError and restores the weights the model had at the start of that epoch.
        """
        from lenet_engine.training import fit

        return fit(self, x, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                   momentum=momentum, mu=mu, augment=augment, validation_data=validation_data, seed=seed,
                   verbose=verbose, map_j=map_j, checkpoint=checkpoint, resume=resume,
                   curvature_digits=curvature_digits)

    # --- state -------------------------------------------------------------

    def state_dict(self):
        """{name: float32 array} copies of the parameters (and fixed buffers such as RBF prototypes)."""
        return {name: t.copy() for name, t in self._state.items()}

    def load_state_dict(self, state):
        """Replace the parameters; names, shapes, dtypes (float32) and finiteness are checked first."""
        self._state = self._arch.checked_state(state, "state_dict")
        self.metadata = {"arch": self.arch}

    def save(self, path):
        """Write the weights and metadata as .safetensors (atomic: an interrupted save keeps the old file)."""
        record = {k: v for k, v in self.metadata.items()
                  if k not in ("arch", "engine_version", "trainable_prototypes")}
        if self._arch.trains_prototypes:
            record["trainable_prototypes"] = True  # so that load() trains them too
        weights_file.save(path, self._state, self.arch, record)

    def quantize(self, calibration_digits):
        """A new Int8LeNet5 (precision "int8") of these weights, its activation scales measured on
        calibration_digits (a thousand training digits are plenty; never the test digits).
        The scheme, and what is rounded where: lenet_engine.quantize."""
        from lenet_engine.int8_model import quantized

        return quantized(self, calibration_digits)

    def to_onnx(self, path):
        """Write the model as ONNX (needs the [onnx] extra): input digits (N, 28, 28) float32 in [0, 1];
        outputs `outputs`, `probabilities`, `labels` as forward(), predict_proba(), predict().

        Graph and operators: lenet_engine.interop.onnx_export.
        """
        from lenet_engine.interop.onnx_export import export_onnx

        export_onnx(self, path)


PRECISIONS = ("fp32", "int8")


def load(name_or_path, backend="auto", precision=None):
    """A trained model: shipped weights by name ("classic", "modern") or a .safetensors path.

    precision: None for what the file holds, "fp32" (a LeNet5) or "int8" (an Int8LeNet5: the
    shipped models' int8 weights, calibrated on training digits, or a file m.quantize(...).save wrote).
    """
    if precision not in (None,) + PRECISIONS:
        raise UnknownModelError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and isinstance(name_or_path, str) and name_or_path in weights_file.SHIPPED:
        name_or_path = f"{name_or_path}-int8"
    path = weights_file.resolve(name_or_path)
    arch, tensors, metadata = weights_file.load(path)
    held = metadata.get("precision", "fp32")
    if precision is not None and held != precision:
        hint = " (quantize it: m.quantize(digits), or lenet-engine quantize)" if precision == "int8" else ""
        raise WrongPrecisionError(f"{path} holds {held} weights, not {precision}{hint}")
    if held == "int8":
        from lenet_engine.int8_model import Int8LeNet5

        return Int8LeNet5.from_file_contents(arch, tensors, metadata, backend, str(path))
    return LeNet5._from_contents(arch, tensors, metadata, backend, str(path))


def _trains_prototypes(metadata):
    """Whether a weights file's model trains its RBF prototypes (older files say so in their recipe only)."""
    recipe = metadata.get("recipe")
    return metadata.get("trainable_prototypes") is True or (
        isinstance(recipe, dict) and recipe.get("trainable_prototypes") is True)
