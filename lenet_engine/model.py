"""The user-facing model: LeNet5 (predict, save, fit) and load().

    m = load("classic")             # shipped weights, or a path
    m = LeNet5("modern", seed=0)    # fresh, initialised as its authors did

A LeNet5 holds a network: its architecture, kernels and state. Inputs are
validated here (lenet_engine.inputs) before any kernel runs. Training is a
loop of its own (lenet_engine.training); fit only calls it.
"""

import numpy as np

from lenet_engine import network
from lenet_engine.architectures import get_architecture, initial_state
from lenet_engine.backends import get_backend, get_num_threads
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import (
    N_CLASSES,
    check_digits,
    check_int,
    check_labels,
    check_positive,
    kernel_digits,
    to_network_input,
)
from lenet_engine.io import weights_file

# Digits per forward pass when predicting: bounds memory for any batch size.
PREDICT_CHUNK = 1024
# The constant j of the MAP loss, E = y_D + log(exp(-j) + sum_i exp(-y_i)).
DEFAULT_MAP_J = 1.0


class LeNet5:
    """A LeNet-5 network, `classic` (LeCun 1998) or `modern` (the seed's Keras model)."""

    def __init__(self, arch="classic", *, seed=0, backend="auto", trainable_prototypes=False):
        seed = check_int(seed, "seed", 0)
        self._arch = get_architecture(arch, bool(trainable_prototypes))
        self.backend = backend
        self._state = initial_state(self._arch, seed)
        self.metadata = {"arch": self._arch.name, "init_seed": seed}

    @classmethod
    def _from_file(cls, path, backend):
        arch, tensors, metadata = weights_file.load(path)
        model = cls.__new__(cls)
        model._arch = get_architecture(arch, _trains_prototypes(metadata), source=str(path))
        model.backend = backend
        model._arch.check_state(tensors, str(path))
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

    @property
    def arch(self):
        return self._arch.name

    @property
    def backend(self):
        """Name of the kernel backend in use; assign a name (or "auto") to switch."""
        return self._kernels.NAME

    @backend.setter
    def backend(self, name):
        self._kernels = get_backend(name)
        self._backend_asked = name  # what a pickle records: "auto" picks again where it is unpickled
        self._bound = None  # bound to the previous backend's kernel

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

    def _threads(self, n_digits):
        # No more threads than digits: a lone digit runs on the calling thread,
        # without waking a thread pool (or asking how many threads there are: a tenth
        # of one digit's prediction).
        if n_digits <= 1:
            return 1
        return min(get_num_threads(), self._kernels.MAX_THREADS, n_digits)

    # --- inference ---------------------------------------------------------

    def forward(self, x):
        """(N, 10) float32 network outputs: RBF distances (classic) or logits (modern)."""
        return self._forward_checked(check_digits(x))

    def _forward_checked(self, digits):
        out = np.empty((len(digits), N_CLASSES), dtype=np.float32)
        n_threads = self._threads(min(len(digits), PREDICT_CHUNK))
        if self._bound is None:
            self._bound = network.bound_forward(self._arch, self._kernels, self._state)
        not_finite = 0
        for start in range(0, len(digits), PREDICT_CHUNK):
            # uint8 digits go to the kernel as they are; other dtypes as float32 network input.
            chunk = kernel_digits(digits[start:start + PREDICT_CHUNK], self._arch.background, self._arch.ink)
            # Rows of a C-contiguous (N, 10) array: the kernel writes them in place.
            not_finite += self._bound(out[start:start + len(chunk)], chunk, n_threads)
            del chunk  # freed before the next one is made: one chunk's input in memory, not two
        if not_finite:
            # Finite inputs only give non-finite outputs when the weights have blown up.
            raise FloatingPointError("the network's outputs overflow: these weights are unusable")
        return out

    def predict(self, x):
        """(N,) int64 class labels."""
        return network.predicted_labels(self._arch, self.forward(x))

    def predict_proba(self, x):
        """(N, 10) float32 class probabilities; classic: p_i proportional to exp(-y_i)."""
        return self._probabilities(self.forward(x))

    def labels_and_probabilities(self, x):
        """(labels (N,) int64, probabilities (N, 10) float32) from one forward pass: each label is
        exactly predict's, and the network runs once, not twice."""
        outputs = self.forward(x)
        return network.predicted_labels(self._arch, outputs), self._probabilities(outputs)

    def _probabilities(self, outputs):
        # In place: the outputs are this call's own array.
        network.to_probabilities(self._arch, self._kernels, outputs, self._threads(len(outputs)))
        return outputs

    def predict_number(self, image, *, invert=None, min_probability=None):
        """The number written in a row on a picture -> NumberReading (.text "2026", .value, .digits).

        image: a picture as images.to_mnist takes (a photo, a scan); its digits are found by
        images.split_digits. A digit whose top probability is under `min_probability`
        (default photos.reading.UNSURE_BELOW, 0.9) is flagged unsure and shown as "?".
        """
        from lenet_engine.photos.reading import UNSURE_BELOW, read_number

        return read_number(self, image, invert=invert,
                           min_probability=UNSURE_BELOW if min_probability is None else min_probability)

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

    def score(self, x, y):
        """Accuracy on digits x with labels y."""
        return self.evaluate(x, y)[1]

    def evaluate(self, x, y, map_j=None):
        """(mean loss, accuracy) on digits x with labels y."""
        digits = check_digits(x)
        labels = check_labels(y, len(digits))
        if not len(digits):
            raise InvalidInputError("evaluating needs at least one digit")
        return self._evaluate_checked(digits, labels, self._map_j(map_j))

    def _evaluate_checked(self, digits, labels, map_j):
        outputs = self._forward_checked(digits)
        batch_losses = network.losses(self._arch, self._kernels, outputs, labels, self._threads(len(labels)), map_j)
        accuracy = float(np.mean(network.predicted_labels(self._arch, outputs) == labels))
        return float(batch_losses.mean(dtype=np.float64)), accuracy

    def _map_j(self, map_j):
        if map_j is None:
            map_j = (self.metadata.get("recipe") or {}).get("map_j") or DEFAULT_MAP_J
        return check_positive(map_j, "map_j")

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

    def to_onnx(self, path):
        """Write the model as ONNX (needs the [onnx] extra): input digits (N, 28, 28) float32 in [0, 1];
        outputs `outputs`, `probabilities`, `labels` as forward(), predict_proba(), predict().

        Graph and operators: lenet_engine.interop.onnx_export.
        """
        from lenet_engine.interop.onnx_export import export_onnx

        export_onnx(self, path)


def load(name_or_path, backend="auto"):
    """A trained model: shipped weights by name ("classic", "modern") or a .safetensors path."""
    return LeNet5._from_file(weights_file.resolve(name_or_path), backend)


def _trains_prototypes(metadata):
    """Whether a weights file's model trains its RBF prototypes (older files say so in their recipe only)."""
    recipe = metadata.get("recipe")
    return metadata.get("trainable_prototypes") is True or (
        isinstance(recipe, dict) and recipe.get("trainable_prototypes") is True)
