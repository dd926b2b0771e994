"""The user-facing model: LeNet5 (predict, fit, save) and load().

    m = load("classic")             # shipped weights, or a path
    m = LeNet5("modern", seed=0)    # fresh, initialised as its authors did

Inputs are validated here (lenet_engine.inputs) before any kernel runs.
"""

import time

import numpy as np

from lenet_engine import network, weights_file
from lenet_engine.architectures import get_architecture, initial_state
from lenet_engine.backends import get_backend, get_num_threads
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import check_digits, check_labels, to_network_input
from lenet_engine.optimizers import DEFAULT_LR, make_optimizer

# Digits per forward pass when predicting: bounds memory for any batch size.
PREDICT_CHUNK = 1024
# The constant j of the MAP loss, E = y_D + log(exp(-j) + sum_i exp(-y_i)).
DEFAULT_MAP_J = 1.0


class LeNet5:
    """A LeNet-5 network, `classic` (LeCun 1998) or `modern` (the seed's Keras model)."""

    def __init__(self, arch="classic", *, seed=0, backend="auto"):
        self._arch = get_architecture(arch)
        self._state = initial_state(self._arch, seed)
        self.backend = backend
        self.metadata = {"arch": self._arch.name, "init_seed": seed}

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

    @property
    def num_parameters(self):
        """Trainable parameters (classic 60,000; modern 61,706)."""
        return self._arch.num_parameters

    def __repr__(self):
        return f"LeNet5(arch={self.arch!r}, backend={self.backend!r}, num_parameters={self.num_parameters})"

    def _threads(self):
        return min(get_num_threads(), self._kernels.MAX_THREADS)

    # --- inference ---------------------------------------------------------

    def forward(self, x):
        """(N, 10) float32 network outputs: RBF distances (classic) or logits (modern)."""
        digits = check_digits(x)
        out = np.empty((len(digits), 10), dtype=np.float32)
        for start in range(0, len(digits), PREDICT_CHUNK):
            chunk = digits[start:start + PREDICT_CHUNK]
            out[start:start + len(chunk)] = self._forward_checked(chunk)
        return out

    def _forward_checked(self, digits):
        field = to_network_input(digits, self._arch.background, self._arch.ink)
        out, _ = network.forward(self._arch, self._kernels, self._state, field, self._threads())
        return out

    def predict(self, x):
        """(N,) int64 class labels."""
        return network.predicted_labels(self._arch, self.forward(x))

    def predict_proba(self, x):
        """(N, 10) float32 class probabilities; classic: p_i proportional to exp(-y_i)."""
        return network.probabilities(self._arch, self.forward(x))

    def score(self, x, y):
        """Accuracy on digits x with labels y."""
        digits = check_digits(x)
        labels = check_labels(y, len(digits))
        if not len(digits):
            raise InvalidInputError("score needs at least one digit")
        return float(np.mean(self.predict(digits) == labels))

    def evaluate(self, x, y, map_j=None):
        """(mean loss, accuracy) on digits x with labels y."""
        digits = check_digits(x)
        labels = check_labels(y, len(digits))
        if not len(digits):
            raise InvalidInputError("evaluate needs at least one digit")
        outputs = self.forward(digits)
        losses = np.empty(len(digits), dtype=np.float32)
        k, n_threads = self._kernels, self._threads()
        if self._arch.loss == "map":
            j = self._map_j(map_j)
            k.map_loss_forward(losses, outputs, labels, j, n_threads)
        else:
            k.softmax_xent_forward(losses, np.empty_like(outputs), outputs, labels, n_threads)
        accuracy = float(np.mean(network.predicted_labels(self._arch, outputs) == labels))
        return float(losses.mean(dtype=np.float64)), accuracy

    def _map_j(self, map_j):
        j = self.metadata.get("recipe", {}).get("map_j", DEFAULT_MAP_J) if map_j is None else map_j
        if not (np.isfinite(j) and j > 0):
            raise ValueError(f"map_j must be a positive number, got {j!r}")
        return float(j)

    # --- training ----------------------------------------------------------

    def fit(self, x, y, *, epochs=10, batch_size=32, lr=None, optimizer="adam", momentum=0.9,
            validation_data=None, seed=0, verbose=1, map_j=None):
        """Train with mini-batch SGD (with momentum) or Adam; returns the history, a dict of per-epoch lists.

        lr: a number, or one number per epoch (the last repeats). Defaults: adam 1e-3, sgd 1e-2.
        The loss is the MAP criterion for classic and softmax cross-entropy for modern.
        """
        digits = check_digits(x)
        labels = check_labels(y, len(digits))
        if not len(digits):
            raise InvalidInputError("fit needs at least one training digit")
        epochs = _positive_int(epochs, "epochs", allow_zero=True)
        batch_size = _positive_int(batch_size, "batch_size")
        opt = make_optimizer(optimizer, momentum)
        schedule = _lr_schedule(DEFAULT_LR[optimizer] if lr is None else lr, epochs)
        j = self._map_j(map_j)
        if validation_data is not None:
            val_x, val_y = validation_data
            val_x = check_digits(val_x)
            val_y = check_labels(val_y, len(val_x))

        from tqdm.auto import tqdm

        rng = np.random.default_rng(seed)
        history = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")}
        n = len(digits)
        for epoch in range(epochs):
            started = time.perf_counter()
            order = rng.permutation(n)
            total_loss = correct = seen = 0
            bar = tqdm(total=n, desc=f"epoch {epoch + 1}/{epochs}", unit="digit",
                       disable=not verbose, leave=True)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                field = to_network_input(digits[idx], self._arch.background, self._arch.ink)
                loss, out, grads = network.loss_and_gradients(
                    self._arch, self._kernels, self._state, field, labels[idx], self._threads(), j)
                if not np.isfinite(loss):
                    bar.close()
                    _diverged(epoch, f"loss {loss}")
                opt.step(self._state, grads, schedule[epoch])
                total_loss += loss * len(idx)
                correct += int(np.sum(network.predicted_labels(self._arch, out) == labels[idx]))
                seen += len(idx)
                bar.update(len(idx))
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
            bad = [name for name, t in self._state.items() if not np.isfinite(t).all()]
            if bad:
                bar.close()
                _diverged(epoch, f"non-finite {', '.join(bad)}")
            history["loss"].append(total_loss / seen)
            history["accuracy"].append(correct / seen)
            history["lr"].append(schedule[epoch])
            if validation_data is not None:
                val_loss, val_acc = self.evaluate(val_x, val_y, map_j=j)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_acc)
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                                val_acc=f"{val_acc:.4f}")
            history["seconds"].append(time.perf_counter() - started)
            bar.close()
        self.metadata["recipe"] = {
            "optimizer": optimizer, "epochs": epochs, "batch_size": batch_size,
            "lr": schedule, "momentum": momentum if optimizer == "sgd" else None,
            "seed": seed, "map_j": j if self._arch.loss == "map" else None,
            "train_digits": n, "backend": self.backend,
        }
        self.metadata["history"] = history
        return history

    # --- state -------------------------------------------------------------

    def state_dict(self):
        """{name: float32 array} copies of the parameters (and fixed buffers such as RBF prototypes)."""
        return {name: t.copy() for name, t in self._state.items()}

    def load_state_dict(self, state):
        """Replace the parameters; names, shapes, dtypes (float32) and finiteness are checked first."""
        expected = {**self._arch.param_shapes(), **self._arch.buffer_shapes()}
        weights_file.check_state(state, expected, "state_dict")
        self._state = {name: np.array(state[name], dtype=np.float32, order="C") for name in expected}

    def save(self, path):
        """Write the weights and metadata as .safetensors (atomic: an interrupted save keeps the old file)."""
        record = {k: v for k, v in self.metadata.items() if k not in ("arch", "engine_version")}
        weights_file.save(path, self._state, self.arch, record)


def load(name_or_path, backend="auto"):
    """A trained model: shipped weights by name ("classic", "modern") or a .safetensors path."""
    path = weights_file.resolve(name_or_path)
    arch, tensors, metadata = weights_file.load(path)
    model = LeNet5(arch, backend=backend)
    expected = {**model._arch.param_shapes(), **model._arch.buffer_shapes()}
    weights_file.check_state(tensors, expected, str(path))
    model._state = tensors
    model.metadata = metadata
    return model


def _diverged(epoch, what):
    raise FloatingPointError(
        f"training diverged in epoch {epoch + 1} ({what}); lower the learning rate")


def _positive_int(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")
    return int(value)


def _lr_schedule(lr, epochs):
    rates = list(lr) if isinstance(lr, (list, tuple, np.ndarray)) else [lr]
    if not rates or not all(isinstance(r, (int, float, np.number)) and np.isfinite(r) and r > 0
                            for r in rates):
        raise ValueError(f"lr must be a positive number or a non-empty list of them, got {lr!r}")
    return [float(rates[min(e, len(rates) - 1)]) for e in range(epochs)]
