"""predict over dask arrays of digits, chunk by chunk (what dask-ml's ParallelPostFit does for any estimator)."""

import dask.array as da
import numpy as np

from lenet_engine.dask.tasks import model_key, score_block
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import DIGIT_SIZE, N_CLASSES

PIXELS = DIGIT_SIZE * DIGIT_SIZE


def predict(model, digits, *, proba=False):
    """A lazy dask array of the labels ((N,) int64) or, with proba=True, the probabilities
    ((N, 10) float32) of `digits`, a dask array (N, 28, 28) or (N, 784), uint8 or float in [0, 1].

    Computed chunk by chunk along N with the current Dask scheduler (a distributed Client if
    one is active): memory holds a few chunks at a time, whatever N is. Shape and dtype are
    checked here; values (float range, NaN) are checked per chunk, before its kernel runs, and
    a bad one raises InvalidInputError when the result is computed.
    """
    if not isinstance(digits, da.Array):
        raise InvalidInputError(f"digits must be a dask array, got {type(digits).__name__} "
                                "(model.predict takes numpy arrays; or wrap with dask.array.from_array)")
    if digits.dtype != np.uint8 and digits.dtype.kind != "f":
        raise InvalidInputError(f"digits have dtype {digits.dtype}: expected uint8 (0..255) or float in [0, 1]")
    if digits.ndim == 3 and digits.shape[1:] == (DIGIT_SIZE, DIGIT_SIZE):
        digits = digits.rechunk({1: -1, 2: -1})  # whole digits in every block
        pixel_axes = [1, 2]
    elif digits.ndim == 2 and digits.shape[1] == PIXELS:
        digits = digits.rechunk({1: -1})
        pixel_axes = [1]
    else:
        raise InvalidInputError(f"digits have shape {digits.shape}: expected (N, 28, 28) or (N, 784)")
    key = model_key(model)
    if proba:
        return digits.map_blocks(score_block, key, proba=True, drop_axis=pixel_axes[1:],
                                 chunks=(digits.chunks[0], (N_CLASSES,)), dtype=np.float32,
                                 meta=np.empty((0, N_CLASSES), dtype=np.float32))
    return digits.map_blocks(score_block, key, proba=False, drop_axis=pixel_axes,
                             chunks=(digits.chunks[0],), dtype=np.int64, meta=np.empty((0,), dtype=np.int64))
