"""An evaluation report: confusion matrix, gallery of the misclassified digits, JSON summary.

    summary = write_report("report/", model, images, labels, probabilities=model.predict_proba(images))

writes report/confusion_matrix.png, report/misclassified.png and
report/summary.json (accuracy, errors, per-class accuracy, the confusion
matrix, every misclassified digit and the model's metadata). The pictures need
matplotlib (the `[plot]` extra; object-oriented API only, no pyplot state); the
numbers do not. Called by the command line's `eval --report`.
"""

import errno
import io
import json
import os
from pathlib import Path

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import N_CLASSES, check_digits, check_labels
from lenet_engine.io import atomic, json_records

__all__ = ["CONFUSION_FILE", "GALLERY_FILE", "SUMMARY_FILE", "confusion_matrix", "summarize", "write_report"]

CONFUSION_FILE = "confusion_matrix.png"
GALLERY_FILE = "misclassified.png"
SUMMARY_FILE = "summary.json"
GALLERY_COLUMNS = 12
GALLERY_MAX = 120  # the gallery shows the most confident mistakes first, at most this many


def confusion_matrix(labels, predicted):
    """(10, 10) int64 counts: row = true class, column = predicted class."""
    matrix = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def summarize(labels, probabilities, metadata=None, evaluation=None):
    """The report's numbers as a JSON-able dict, from true labels (N,) and probabilities (N, 10).
    An accuracy over no digits (of the set, or of a class) is None."""
    probabilities = _checked_probabilities(probabilities)
    labels = check_labels(labels, len(probabilities))
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted)
    per_class = matrix.sum(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    wrong = wrong[np.argsort(-confidence, kind="stable")]  # most confident mistakes first
    return {
        "digits": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
        "errors": int(len(wrong)),
        "per_class_accuracy": {str(c): float(matrix[c, c] / per_class[c]) if per_class[c] else None
                               for c in range(N_CLASSES)},
        "per_class_digits": {str(c): int(matrix[c].sum()) for c in range(N_CLASSES)},
        "confusion_matrix": matrix.tolist(),
        "misclassified": [
            {"index": int(i), "true": int(labels[i]), "predicted": int(predicted[i]),
             "probability": float(probabilities[i, predicted[i]])}
            for i in wrong
        ],
        "model": metadata or {},
        "evaluation": evaluation or {},
    }


def _checked_probabilities(probabilities):
    p = np.asarray(probabilities)
    if p.ndim != 2 or p.shape[1] != N_CLASSES:
        raise InvalidInputError(f"probabilities must have shape (N, {N_CLASSES}), got {p.shape}")
    if p.dtype.kind not in "fiu" or not np.all(np.isfinite(p)):
        raise InvalidInputError("probabilities must be finite numbers")
    return p


def write_report(folder, model, images, labels, *, probabilities=None, extra=None, evaluation=None):
    """Evaluate `model` on `images` with true `labels`; write the three report files into `folder`.

    Returns the summary dict (also written as summary.json). `probabilities`
    (N, 10) saves predicting again when the caller has them; `extra` entries
    (the model's name) are added to the summary's "model" section, `evaluation`'s
    (this run's threads, timings) make its "evaluation" section. Everything is
    checked and drawn before anything is written, then each file is written
    atomically: a failure leaves the folder's files as they were.
    """
    images = check_digits(images)
    if probabilities is None:
        probabilities = model.predict_proba(images)
    metadata = {"arch": model.arch, "backend": model.backend, "num_parameters": model.num_parameters,
                **_json_safe(model.metadata), **(extra or {})}
    summary = summarize(labels, probabilities, metadata, evaluation)
    matrix = np.array(summary["confusion_matrix"])
    accuracy = "-" if summary["accuracy"] is None else f"{summary['accuracy']:.2%}"
    title = f"LeNet-5 {model.arch}: accuracy {accuracy} on {summary['digits']:,} digits"
    files = {CONFUSION_FILE: _png(save_confusion_matrix, matrix, title=title),
             GALLERY_FILE: _png(save_gallery, images, summary["misclassified"],
                                title=f"{title}: the {summary['errors']:,} misclassified"),
             SUMMARY_FILE: (json_records.dumps(summary, indent=1) + "\n").encode("utf-8")}
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(errno.EEXIST, "a report is a folder, and this is a file", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        atomic.check_target(folder / name)
    for name, content in files.items():
        atomic.write_bytes(folder / name, [content])
    return summary


def _format(path):
    """matplotlib's format for `path`: its suffix's, or PNG for a file object or a path without one
    (where matplotlib would add ".png" to the name)."""
    return None if isinstance(path, (str, os.PathLike)) and Path(path).suffix else "png"


def _png(draw, *args, **kwargs):
    """The PNG bytes of what draw(*args, path, **kwargs) would save."""
    buffer = io.BytesIO()
    draw(*args, buffer, **kwargs)
    return buffer.getvalue()


def save_confusion_matrix(matrix, path, *, title=""):
    """A 10x10 heat map of `matrix` (true class down, predicted across) with every count written in."""
    figure_module = import_optional("matplotlib.figure", "plot", "drawing pictures")
    colors = import_optional("matplotlib.colors", "plot", "drawing pictures")
    fig = figure_module.Figure(figsize=(8, 7.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    # Log colours: the diagonal holds ~1,000 per class, the mistakes a handful; both must show.
    image = ax.imshow(matrix + 1, cmap="Blues", norm=colors.LogNorm(vmin=1, vmax=max(int(matrix.max()) + 1, 2)))
    threshold = np.sqrt(max(int(matrix.max()), 1))
    for (true, pred), count in np.ndenumerate(matrix):
        if count:
            ax.text(pred, true, str(count), ha="center", va="center", fontsize=9,
                    color="white" if count > threshold else "black",
                    fontweight="bold" if true == pred else "normal")
    ax.set_xticks(range(N_CLASSES))
    ax.set_yticks(range(N_CLASSES))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix", fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label="digits + 1 (log scale)")
    fig.savefig(path, format=_format(path))
    return path


def save_gallery(images, misclassified, path, *, title=""):
    """The misclassified digits (summary["misclassified"] entries), each captioned true -> predicted."""
    figure_module = import_optional("matplotlib.figure", "plot", "drawing pictures")
    shown = misclassified[:GALLERY_MAX]
    columns = GALLERY_COLUMNS
    rows = max(1, -(-len(shown) // columns))
    fig = figure_module.Figure(figsize=(columns * 1.05, rows * 1.25 + 0.6), dpi=100, layout="constrained")
    fig.suptitle(title + (f" (the {len(shown)} most confident shown)" if len(shown) < len(misclassified) else ""),
                 fontsize=11)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, entry in zip(axes.ravel(), shown):
        ax.imshow(images[entry["index"]], cmap="gray_r", vmin=0, vmax=255 if images.dtype == np.uint8 else 1,
                  interpolation="nearest")
        ax.set_title(f"#{entry['index']}\ntrue {entry['true']} \u2192 {entry['predicted']} "
                     f"({entry['probability']:.2f})", fontsize=7)
    if not shown:
        axes[0, 0].text(0, 0.5, "no misclassified digits", fontsize=12)
    fig.savefig(path, format=_format(path))
    return path


def _json_safe(metadata):
    """metadata with what JSON cannot hold (NaN stays: json writes it) turned into strings."""
    return json.loads(json_records.dumps(metadata, fallback=str))

