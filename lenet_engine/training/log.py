"""What `lenet-engine train` writes besides the weights: a JSON log and a PNG of the training curves."""

import os

from lenet_engine._optional import import_optional
from lenet_engine.errors import InvalidInputError
from lenet_engine.io import atomic, json_records


def write_json(path, record):
    """The training record (recipe, command, seconds, per-epoch history), as JSON, written atomically."""
    atomic.write_text(path, json_records.dumps(record, indent=2, sort_keys=True) + "\n")


def require_plotting(path=None):
    """matplotlib's Figure module, or MissingDependencyError naming the extra that installs it;
    with `path`, InvalidInputError unless matplotlib can write its format (known before training)."""
    figure_module = import_optional("matplotlib.figure", "plot", "plotting training curves")
    if path is not None:
        formats = figure_module.Figure().canvas.get_supported_filetypes()
        suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
        if suffix and suffix not in formats:  # no suffix: PNG
            raise InvalidInputError(f"{path}: matplotlib writes no .{suffix} pictures; "
                                    f"use one of .{', .'.join(sorted(formats))}")
    return figure_module


def plot_curves(path, record):
    """Loss and error per epoch, training against test, as one PNG."""
    # A Figure of its own (no pyplot): matplotlib's global state is left as it was.
    figure_module = require_plotting()
    history = record["history"]
    epochs = range(1, len(history["loss"]) + 1)
    fig = figure_module.Figure(figsize=(10, 4))
    ax_loss, ax_err = fig.subplots(1, 2)
    ax_loss.plot(epochs, history["loss"], "o-", label="training (during the epoch)")
    if history.get("val_loss"):
        ax_loss.plot(epochs, history["val_loss"], "s-", label="test (after the epoch)")
    ax_loss.set(xlabel="epoch", ylabel="mean loss", title="loss")
    ax_err.plot(epochs, _percent_error(history["accuracy"]), "o-", label="training")
    if history.get("val_accuracy"):
        ax_err.plot(epochs, _percent_error(history["val_accuracy"]), "s-", label="test")
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="error rate", yscale="log")
    for ax in (ax_loss, ax_err):
        ax.grid(True, alpha=0.3)
        ax.legend()
    recipe = record.get("recipe", {})
    fig.suptitle(f"{record.get('arch', '')}: {recipe.get('optimizer', '')}, "
                 f"{len(history['loss'])} epochs, batch {recipe.get('batch_size', '')}"
                 + (", distorted" if recipe.get("augment") else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _percent_error(accuracies):
    # On the log axis a perfect epoch (0% error) is drawn at 0.01% rather than lost.
    return [max(100 * (1 - a), 0.01) for a in accuracies]
