"""The training loop: passes over the training digits, batches, validation, checkpoints.

LeNet5.fit is a thin call into fit() here. The loop drives the network's
stateless functions (lenet_engine.network) on the model's architecture,
kernels and state, and an optimizer through its interface (begin_epoch, step):
it has no case for any one optimizer.
"""

import time
from pathlib import Path

import numpy as np

from lenet_engine import network
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import check_digits, check_int, check_labels, check_validation_data, to_network_input
from lenet_engine.io import atomic
from lenet_engine.training import checkpoints
from lenet_engine.training.checkpoints import HISTORY_KEYS
from lenet_engine.training.optimizers import DEFAULT_LR, make_optimizer, per_epoch


def fit(model, x, y, *, epochs=10, batch_size=32, lr=None, optimizer="adam", momentum=None,
        mu=None, augment=None, validation_data=None, seed=0, verbose=1, map_j=None,
        checkpoint=None, resume=False, curvature_digits=None):
    """Train `model` on digits x with labels y; returns the history. LeNet5.fit documents the options."""
    digits = check_digits(x)
    labels = check_labels(y, len(digits))
    if not len(digits):
        raise InvalidInputError("fit needs at least one training digit")
    epochs = check_int(epochs, "epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    seed = check_int(seed, "seed", 0)
    if checkpoint is not None:
        atomic.check_target(checkpoint)  # found out now, not after the first epoch
    opt = make_optimizer(optimizer, momentum=momentum, mu=mu, curvature_digits=curvature_digits)
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    rates = per_epoch(lr, "lr")
    if map_j is not None and model._arch.loss != "map":
        raise InvalidInputError(f"map_j is the MAP loss's (classic's); {model.arch}'s loss does not use it")
    j = model._map_j(map_j)
    # Imported here, not with the module: a process that only predicts never needs them.
    from lenet_engine.distortions import as_distortions

    distortions = as_distortions(augment)
    validation = check_validation_data(validation_data)
    recipe = {
        "optimizer": optimizer, "batch_size": batch_size,
        "lr": lr if isinstance(lr, (int, float)) else list(rates),
        **opt.settings(),
        "augment": distortions.as_dict() if distortions else None,
        "seed": seed, "map_j": j if model._arch.loss == "map" else None,
        "trainable_prototypes": model._arch.trains_prototypes,
        "train_digits": len(digits),
        "data": checkpoints.fingerprint(digits, labels) if checkpoint is not None else None,
        # The history's val_* entries must all come from one validation set.
        "validation": checkpoints.fingerprint(*validation)
        if checkpoint is not None and validation is not None else None,
    }
    history = {k: [] for k in HISTORY_KEYS}
    first_epoch, resumed_from = 0, None
    if checkpoint is not None and resume and Path(checkpoint).exists():
        first_epoch, history, resumed_from = checkpoints.resume(checkpoint, model, opt, recipe, epochs)

    if epochs == 0:
        return history  # the weights are unchanged, and so is what describes them
    run = _Run(model, digits, labels, distortions, j)
    validate = None if validation is None else (lambda: model._evaluate_checked(*validation, j))
    for epoch in range(first_epoch, epochs):
        # From here the weights change: what described them no longer holds, and until the last
        # epoch ends (a divergence, an interrupt, a full disk) they are part-way through this run.
        _describe(model, recipe, epochs, history, epoch, resumed_from)
        started = time.perf_counter()
        rate = rates[min(epoch, len(rates) - 1)]
        before = model.state_dict()
        try:
            loss, accuracy, scores = run.epoch(opt, epoch, seed, batch_size, rate,
                                               f"epoch {epoch + 1}/{epochs}", verbose, validate)
        except FloatingPointError:
            model._state = before
            raise
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        history["lr"].append(rate)
        if scores is not None:
            history["val_loss"].append(scores[0])
            history["val_accuracy"].append(scores[1])
        history["seconds"].append(time.perf_counter() - started)
        if checkpoint is not None:
            checkpoints.save(checkpoint, model, opt, epoch + 1, history, recipe)
    _describe(model, recipe, epochs, history, epochs, resumed_from)
    return history


def _describe(model, recipe, epochs, history, done, resumed_from):
    """model.metadata for weights `done` epochs into the run `recipe` describes (of `epochs`), resumed
    from a checkpoint made on another build (resumed_from: checkpoints.build's) or not (None)."""
    model.metadata = {
        "arch": model.arch,
        # Where the same command gives the same bits: this backend, kernel build and thread count.
        "recipe": {**recipe, "epochs": epochs, **checkpoints.build(model, recipe)},
        "history": history,
    }
    if resumed_from is not None:
        model.metadata["resumed_from_build"] = resumed_from
    if done < epochs:
        model.metadata["incomplete"] = f"the weights are part-way through this recipe: {done} of {epochs} epochs done"


class _Run:
    """One training run's digits and network: passes over them, and the curvature SDLM asks for."""

    def __init__(self, model, digits, labels, distortions, map_j):
        self.model, self.digits, self.labels = model, digits, labels
        self.distortions, self.map_j = distortions, map_j
        self.workspace = network.Workspace()

    def epoch(self, opt, epoch, seed, batch_size, rate, desc, verbose, validate):
        """One pass in a fresh random order -> (mean loss, accuracy) during the pass, and
        validate()'s (loss, accuracy) after it (None without validate).

        Raises FloatingPointError if the loss, outputs or weights stop being finite.
        """
        from tqdm.auto import tqdm

        model, n = self.model, len(self.digits)
        # One generator per epoch: a resumed run draws exactly what an uninterrupted one does.
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n)
        opt.begin_epoch(epoch, rng, n, lambda sample: self.curvature(sample, rng))
        total_loss = correct = 0.0
        seen = 0
        with tqdm(total=n, desc=desc, unit="digit", disable=not verbose, leave=True) as bar:
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                field = self.field(idx, rng)
                loss, out, grads = network.loss_and_gradients(
                    model._arch, model._kernels, model._state, field, self.labels[idx],
                    model._threads(len(idx)), self.map_j, self.workspace)
                if not (np.isfinite(loss) and np.isfinite(out).all()):
                    _diverged(epoch, f"loss {loss}")
                opt.step(model._state, grads, rate, len(idx))
                total_loss += loss * len(idx)
                correct += int(np.sum(network.predicted_labels(model._arch, out) == self.labels[idx]))
                seen += len(idx)
                bar.update(len(idx))
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
            if not all(np.isfinite(t).all() for t in model._state.values()):
                _diverged(epoch, "non-finite weights")
            scores = None
            if validate is not None:
                try:
                    scores = validate()
                except FloatingPointError:
                    _diverged(epoch, "validation outputs overflow")
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                                val_acc=f"{scores[1]:.4f}")
        return total_loss / seen, correct / seen, scores

    def field(self, idx, rng):
        """Network inputs for the digits at idx, distorted (drawing from rng) when augmenting."""
        digits = self.digits[idx]
        if self.distortions is not None:
            from lenet_engine.distortions import distort

            digits = distort(self.model._kernels, digits, self.distortions, rng, self.model._threads(len(idx)))
        arch = self.model._arch
        return to_network_input(digits, arch.background, arch.ink)

    def curvature(self, idx, rng):
        """{parameter: Gauss-Newton diagonal of the Hessian} over the training digits at idx."""
        model = self.model
        return network.curvature(model._arch, model._kernels, model._state, self.field(idx, rng),
                                 self.labels[idx], model._threads(len(idx)), self.map_j)


def _diverged(epoch, what):
    raise FloatingPointError(
        f"training diverged in epoch {epoch + 1} ({what}); the weights from before that epoch "
        f"are kept; lower the learning rate")
