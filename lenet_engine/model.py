"""The user-facing model: LeNet5 (predict, fit, save) and load().

    m = load("classic")             # shipped weights, or a path
    m = LeNet5("modern", seed=0)    # fresh, initialised as its authors did

Inputs are validated here (lenet_engine.inputs) before any kernel runs.
"""

import time
from pathlib import Path

import numpy as np

from lenet_engine import network, weights_file
from lenet_engine.architectures import get_architecture, initial_state
from lenet_engine.backends import get_backend, get_num_threads
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import (
    N_CLASSES,
    check_digits,
    check_int,
    check_labels,
    check_positive,
    check_validation_data,
    kernel_digits,
    to_network_input,
)
from lenet_engine.optimizers import DEFAULT_LR, DEFAULT_MOMENTUM, DEFAULT_MU, OPTIMIZERS, make_optimizer

# Digits per forward pass when predicting: bounds memory for any batch size.
PREDICT_CHUNK = 1024
# The constant j of the MAP loss, E = y_D + log(exp(-j) + sum_i exp(-y_i)).
DEFAULT_MAP_J = 1.0
# Digits SDLM estimates the Hessian's diagonal on before each epoch (the paper's 500).
CURVATURE_DIGITS = 500
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


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
        model._arch = get_architecture(arch, arch == "classic" and _trains_prototypes(metadata))
        model.backend = backend
        weights_file.check_state(tensors, model._arch.state_shapes(), str(path))
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
        self._bound = None  # bound to the previous backend's kernel

    @property
    def num_parameters(self):
        """Trainable parameters (classic 60,000; modern 61,706)."""
        return self._arch.num_parameters

    def __repr__(self):
        return f"LeNet5(arch={self.arch!r}, backend={self.backend!r}, num_parameters={self.num_parameters})"

    def _threads(self, n_digits):
        # No more threads than digits: a lone digit runs on the calling thread,
        # without waking a thread pool.
        return max(1, min(get_num_threads(), self._kernels.MAX_THREADS, n_digits))

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
        return network.probabilities(self._arch, self.forward(x))

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
          sgd 1e-2, sdlm the paper's schedule (optimizers.PAPER_ETA); mu the paper's 0.02.
        momentum (sgd, default 0.9), mu and curvature_digits (sdlm, default 500): giving one
          to an optimizer that does not use it raises ValueError.
        augment: True, a Distortions or a dict of its fields: every training digit is
          randomly distorted (lenet_engine.distortions) each time it is used.
        The loss is the MAP criterion (constant map_j) for classic and cross-entropy for modern.
        Everything random (order, distortions, curvature sample) follows from seed and the
        epoch number, so the same call gives the same weights on the same backend and thread
        count. checkpoint: a path written (atomically) after every epoch; with resume=True an
        existing checkpoint there is loaded and training goes on from it, to the same result
        as an uninterrupted run. If the loss or the outputs stop being finite, raises
        FloatingPointError and restores the weights the model had at the start of that epoch.
        """
        digits = check_digits(x)
        labels = check_labels(y, len(digits))
        if not len(digits):
            raise InvalidInputError("fit needs at least one training digit")
        epochs = check_int(epochs, "epochs", 0)
        batch_size = check_int(batch_size, "batch_size", 1)
        seed = check_int(seed, "seed", 0)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        for name, value, owner in [("mu", mu, "sdlm"), ("curvature_digits", curvature_digits, "sdlm"),
                                   ("momentum", momentum, "sgd")]:
            if value is not None and optimizer != owner:
                raise ValueError(f"{name} is {owner.upper()}'s; optimizer {optimizer!r} does not use it")
        curvature_digits = check_int(CURVATURE_DIGITS if curvature_digits is None else curvature_digits,
                                     "curvature_digits", 1)
        momentum = DEFAULT_MOMENTUM if momentum is None else momentum
        mu = DEFAULT_MU if mu is None else mu
        mus = _per_epoch(mu, "mu")
        opt = make_optimizer(optimizer, momentum, mus[0])
        lr = DEFAULT_LR[optimizer] if lr is None else lr
        rates = _per_epoch(lr, "lr")
        j = self._map_j(map_j)
        # Training's modules load here, not at import: a process that only predicts starts faster.
        from lenet_engine import checkpoints
        from lenet_engine.distortions import as_distortions

        distortions = as_distortions(augment)
        validation = check_validation_data(validation_data)
        recipe = {
            "optimizer": optimizer, "batch_size": batch_size,
            "lr": lr if isinstance(lr, (int, float)) else list(rates),
            "momentum": float(momentum) if optimizer == "sgd" else None,
            "mu": (mu if isinstance(mu, (int, float)) else mus) if optimizer == "sdlm" else None,
            "curvature_digits": curvature_digits if optimizer == "sdlm" else None,
            "augment": distortions.as_dict() if distortions else None,
            "seed": seed, "map_j": j if self._arch.loss == "map" else None,
            "trainable_prototypes": "output.prototypes" in self._arch.param_shapes(),
            "train_digits": len(digits),
            "data": checkpoints.fingerprint(digits, labels) if checkpoint is not None else None,
            # The history's val_* entries must all come from one validation set.
            "validation": checkpoints.fingerprint(*validation)
            if checkpoint is not None and validation is not None else None,
        }
        history = {k: [] for k in HISTORY_KEYS}
        first_epoch = 0
        if checkpoint is not None and resume and Path(checkpoint).exists():
            first_epoch, history = self._resume(checkpoint, recipe, opt, epochs)

        from tqdm.auto import tqdm

        n = len(digits)
        workspace = network.Workspace()
        for epoch in range(first_epoch, epochs):
            started = time.perf_counter()
            rate = rates[min(epoch, len(rates) - 1)]
            before = self.state_dict()
            # One generator per epoch: a resumed run draws exactly what an uninterrupted one does.
            rng = np.random.default_rng([seed, epoch])
            order = rng.permutation(n)
            if optimizer == "sdlm":
                opt.mu = mus[min(epoch, len(mus) - 1)]
                sample = rng.choice(n, size=min(curvature_digits, n), replace=False)
                field = self._training_field(digits[sample], distortions, rng)
                opt.set_curvature(network.curvature(self._arch, self._kernels, self._state, field,
                                                    labels[sample], self._threads(len(sample)), j))
            total_loss = correct = 0.0
            seen = 0
            with tqdm(total=n, desc=f"epoch {epoch + 1}/{epochs}", unit="digit",
                      disable=not verbose, leave=True) as bar:
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    field = self._training_field(digits[idx], distortions, rng)
                    loss, out, grads = network.loss_and_gradients(
                        self._arch, self._kernels, self._state, field, labels[idx], self._threads(len(idx)), j,
                        workspace)
                    if not (np.isfinite(loss) and np.isfinite(out).all()):
                        self._state = before
                        _diverged(epoch, f"loss {loss}")
                    opt.step(self._state, grads, rate * len(idx) if optimizer == "sdlm" else rate)
                    total_loss += loss * len(idx)
                    correct += int(np.sum(network.predicted_labels(self._arch, out) == labels[idx]))
                    seen += len(idx)
                    bar.update(len(idx))
                    bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                                    refresh=False)
                if not all(np.isfinite(t).all() for t in self._state.values()):
                    self._state = before
                    _diverged(epoch, "non-finite weights")
                history["loss"].append(total_loss / seen)
                history["accuracy"].append(correct / seen)
                history["lr"].append(rate)
                if validation is not None:
                    try:
                        val_loss, val_acc = self._evaluate_checked(*validation, j)
                    except FloatingPointError:
                        self._state = before
                        _diverged(epoch, "validation outputs overflow")
                    history["val_loss"].append(val_loss)
                    history["val_accuracy"].append(val_acc)
                    bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                                    val_acc=f"{val_acc:.4f}")
                history["seconds"].append(time.perf_counter() - started)
            if checkpoint is not None:
                checkpoints.save(checkpoint, self._state, opt.arrays(), {
                    "arch": self.arch, "epoch": epoch + 1, "history": history, "recipe": recipe,
                    "optimizer_scalars": opt.scalars()})
        # What described earlier weights (how they were made, how they scored) no longer holds.
        self.metadata = {
            "arch": self.arch,
            "recipe": {**recipe, "epochs": epochs, "backend": self.backend,
                       "threads": self._threads(batch_size)},
            "history": history,
        }
        return history

    def _training_field(self, digits, distortions, rng):
        """Network inputs for a training batch, distorted when augmenting."""
        if distortions is not None:
            from lenet_engine.distortions import distort

            digits = distort(self._kernels, digits, distortions, rng, self._threads(len(digits)))
        return to_network_input(digits, self._arch.background, self._arch.ink)

    def _resume(self, path, recipe, opt, epochs):
        """Load a checkpoint written by fit with the same recipe -> (epochs done, history)."""
        from lenet_engine import checkpoints

        state, opt_arrays, record = checkpoints.load(path)
        if record.get("arch") != self.arch:
            raise ValueError(f"checkpoint {path} is of a {record.get('arch')!r} model, not {self.arch!r}")
        if record["epoch"] > epochs:
            raise ValueError(f"checkpoint {path} is {record['epoch']} epochs into training, "
                             f"past the {epochs} asked for")
        saved = record.get("recipe", {})
        if not isinstance(saved, dict):
            raise ValueError(f"checkpoint {path} holds no recipe")
        differ = sorted(k for k in set(saved) | set(recipe)
                        if _as_list(saved.get(k), k) != _as_list(recipe.get(k), k))
        if differ:
            raise ValueError(f"checkpoint {path} was made with other settings; they differ in: "
                             + ", ".join(f"{k} (checkpoint {saved.get(k)!r}, now {recipe.get(k)!r})"
                                         for k in differ))
        self._state = self._checked_state(state, str(path))
        opt.load_arrays(opt_arrays)
        for slot, arrays in _optimizer_slots(opt).items():
            weights_file.check_state(arrays, self._arch.param_shapes(), f"{path} ({slot})")
        opt.load_scalars(record.get("optimizer_scalars", {}))
        history = record.get("history", {})
        return record["epoch"], {k: list(history.get(k, [])) for k in HISTORY_KEYS}

    # --- state -------------------------------------------------------------

    def state_dict(self):
        """{name: float32 array} copies of the parameters (and fixed buffers such as RBF prototypes)."""
        return {name: t.copy() for name, t in self._state.items()}

    def load_state_dict(self, state):
        """Replace the parameters; names, shapes, dtypes (float32) and finiteness are checked first."""
        self._state = self._checked_state(state, "state_dict")
        self.metadata = {"arch": self.arch}

    def _checked_state(self, state, where):
        """Own C-contiguous float32 copies of `state`, once its names, shapes and values check out."""
        expected = self._arch.state_shapes()
        weights_file.check_state(state, expected, where)
        return {name: np.array(state[name], dtype=np.float32, order="C") for name in expected}

    def save(self, path):
        """Write the weights and metadata as .safetensors (atomic: an interrupted save keeps the old file)."""
        record = {k: v for k, v in self.metadata.items()
                  if k not in ("arch", "engine_version", "trainable_prototypes")}
        if "output.prototypes" in self._arch.param_shapes():
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


def _diverged(epoch, what):
    raise FloatingPointError(
        f"training diverged in epoch {epoch + 1} ({what}); the weights from before that epoch "
        f"are kept; lower the learning rate")


def _as_list(value, key):
    # lr and mu are recorded as given (a number or a list): 1e-3 and [1e-3] are one schedule.
    return [value] if key in ("lr", "mu") and isinstance(value, (int, float)) else value


def _optimizer_slots(opt):
    """{slot: {parameter: array}} of the optimizer's restored state, to check against the parameters."""
    slots = {}
    for key, array in opt.arrays().items():
        slot, _, name = key.partition("/")
        slots.setdefault(slot, {})[name] = array
    return slots


def _per_epoch(value, name):
    """A number, or a list of one per epoch (the last repeats) -> a non-empty list of positive floats."""
    values = [value] if np.ndim(value) == 0 else list(value)
    if not values:
        raise ValueError(f"{name} must be a positive number or a non-empty list of them, got []")
    return [check_positive(v, name) for v in values]
