"""Resuming training: what a checkpoint must match before the loop goes on from it.

The file format itself is lenet_engine.io.checkpoint_file; this module decides
whether a checkpoint belongs to the run being resumed (same architecture, same
recipe, same training and validation data) and restores the loop's state from it.
"""

import hashlib
import warnings

import numpy as np

from lenet_engine.errors import InvalidInputError
from lenet_engine.io import checkpoint_file

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def fingerprint(digits, labels):
    """A short digest of a data set, so a resumed run is known to train on the same digits."""
    h = hashlib.sha256()
    h.update(str(digits.dtype).encode())
    h.update(np.ascontiguousarray(digits).data)  # the buffer itself: no copy of the data set
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return h.hexdigest()[:16]


def build(model, recipe):
    """Where the run's bits come from: the backend, kernel build and thread count it trains with."""
    return {"backend": model.backend, "kernel_build": model._kernels.BUILD,
            "threads": model._threads(recipe["batch_size"])}


def save(path, model, opt, epoch, history, recipe):
    """Write where training stands after `epoch` passes (atomically)."""
    checkpoint_file.save(path, model._state, opt.arrays(), {
        "arch": model.arch, "epoch": epoch, "history": history, "recipe": recipe,
        "optimizer_scalars": opt.scalars(), "build": build(model, recipe)})


def resume(path, model, opt, recipe, epochs):
    """Load a checkpoint written with the same recipe into model and opt -> (epochs done, history,
    the build it was made with where that is not this one's, else None)."""
    state, opt_arrays, record = checkpoint_file.load(path)
    if record.get("arch") != model.arch:
        raise InvalidInputError(f"checkpoint {path} is of a {record.get('arch')!r} model, not {model.arch!r}")
    if record["epoch"] > epochs:
        raise InvalidInputError(f"checkpoint {path} is {record['epoch']} epochs into training, "
                                f"past the {epochs} asked for")
    saved = record.get("recipe", {})
    if not isinstance(saved, dict):
        raise InvalidInputError(f"checkpoint {path} holds no recipe")
    differ = sorted(k for k in set(saved) | set(recipe)
                    if _as_list(saved.get(k), k) != _as_list(recipe.get(k), k))
    if differ:
        raise InvalidInputError(f"checkpoint {path} was made with other settings; they differ in: "
                                + ", ".join(f"{k} (checkpoint {saved.get(k)!r}, now {recipe.get(k)!r})"
                                            for k in differ))
    arch = model._arch
    model._state = arch.checked_state(state, str(path))
    opt.load_arrays(opt_arrays)
    for slot, arrays in _optimizer_slots(opt).items():
        arch.check_state(arrays, f"{path} ({slot})", params_only=True)
    opt.load_scalars(record.get("optimizer_scalars", {}))
    history = record.get("history", {})
    made_by, now = record.get("build"), build(model, recipe)
    other = made_by if made_by is not None and made_by != now else None
    if other is not None:
        # Allowed (the machine that made it may be gone), but the bits will not be an uninterrupted run's.
        warnings.warn(f"checkpoint {path} was made on {other}, this run goes on with {now}: the weights will "
                      f"be close to an uninterrupted run's, not the same bits", RuntimeWarning, stacklevel=4)
    return record["epoch"], {k: list(history.get(k, [])) for k in HISTORY_KEYS}, other


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
