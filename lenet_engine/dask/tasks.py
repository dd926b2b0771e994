"""The model as one key of a Dask graph, and a chunk's scoring as the tasks run it."""

import uuid

import dask

from lenet_engine.backends import thread_limit
from lenet_engine.predictor import Predictor


def check_model(model):
    # LeNet5 and Int8LeNet5 both predict through Predictor.labels_and_probabilities.
    if not isinstance(model, Predictor):
        raise TypeError(f"expected a lenet_engine model (LeNet5 or Int8LeNet5), got {type(model).__name__}")


def model_key(model):
    """The model as a Delayed of its own: every task that takes it depends on this one key, so the
    scheduler sends the model to each worker once, not with every task."""
    check_model(model)
    return dask.delayed(model, name=f"lenet5-model-{uuid.uuid4().hex}", traverse=False)


def labels_and_probabilities(model, digits):
    """(labels (n,) int64, probabilities (n, 10) float32) of one chunk, on one kernel thread:
    the scheduler's own threads run the chunks side by side. One forward pass gives both, so
    each label is exactly model.predict's."""
    with thread_limit(1):
        return model.labels_and_probabilities(digits)


def score_block(block, model, proba):
    """The labels or probabilities of one block of a dask array of digits, (n, 28, 28) or (n, 784)."""
    digits = block.reshape(len(block), 28, 28) if block.ndim == 2 else block
    labels, probs = labels_and_probabilities(model, digits)
    return probs if proba else labels
