"""Validation of what users hand to a model (digits, labels, numeric options), and digit scaling.

Everything a kernel receives has passed through here: the kernels themselves
check nothing. Called by lenet_engine.model (and, for naming files in error
messages, by the MNIST and image readers).
"""

import functools
import sys

import numpy as np

from lenet_engine.errors import InvalidInputError

DIGIT_SIZE = 28
FIELD_SIZE = 32  # the network's input field: the digit centred with 2 pixels of padding
N_CLASSES = 10

_EXPECTED = (
    "expected digits as (N, 28, 28), (N, 1, 28, 28) or one (28, 28) array, "
    "uint8 in 0..255 or float in [0, 1]"
)


def check_digits(x):
    """Return x as a (N, 28, 28) array (uint8 or floating), or raise InvalidInputError."""
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x)
        except ValueError as exc:  # ragged nesting
            raise InvalidInputError(f"digits could not be read as an array ({exc}); {_EXPECTED}") from None
    # np.ma is imported on first use, and costs a cold start: without it, nothing can be a masked array.
    ma = sys.modules.get("numpy.ma")
    if ma is not None and isinstance(x, ma.MaskedArray):
        raise InvalidInputError(f"digits are a masked array (masks are not supported; fill them first); {_EXPECTED}")
    if not isinstance(x, np.ndarray):
        raise InvalidInputError(f"digits must be a numpy array, got {type(x).__name__}; {_EXPECTED}")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        hint = " (convert with x.astype(np.uint8) if the values are 0..255)" if x.dtype.kind in "iu" else ""
        raise InvalidInputError(f"digits have dtype {x.dtype}{hint}; {_EXPECTED}")
    if x.shape == (DIGIT_SIZE, DIGIT_SIZE):
        x = x[None]
    elif x.ndim == 4 and x.shape[1:] == (1, DIGIT_SIZE, DIGIT_SIZE):
        x = x[:, 0]
    elif not (x.ndim == 3 and x.shape[1:] == (DIGIT_SIZE, DIGIT_SIZE)):
        raise InvalidInputError(f"digits have shape {x.shape}; {_EXPECTED}")
    if x.dtype.kind == "f" and x.size:
        if not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InvalidInputError(f"digits contain {bad} NaN or infinite values; {_EXPECTED}")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            hint = " (uint8-range values in a float array? divide by 255)" if hi > 1.0 else ""
            raise InvalidInputError(f"float digits range over [{lo:.9g}, {hi:.9g}]{hint}; {_EXPECTED}")
    return x


def check_labels(y, n):
    """Return y as an int64 (n,) array of class indices 0..9, or raise InvalidInputError."""
    y = np.asarray(y)
    if y.size == 0 and y.shape == (n,):
        return np.zeros(0, dtype=np.int64)
    if y.dtype.kind not in "iu":
        raise InvalidInputError(f"labels have dtype {y.dtype}: expected integers 0..9")
    if y.shape != (n,):
        raise InvalidInputError(f"labels have shape {y.shape}: expected ({n},), one per digit")
    if n and (y.min() < 0 or y.max() >= N_CLASSES):
        raise InvalidInputError(
            f"labels range over {int(y.min())}..{int(y.max())}: expected class indices 0..9"
        )
    return y.astype(np.int64)


def to_network_input(digits, background, ink):
    """(N, 28, 28) checked digits -> (N, 1, 32, 32) float32, pixel p in [0, 1] -> background + (ink - background) * p.

    The 2-pixel border is filled with the background value, as a blank margin.
    """
    field = np.full((len(digits), 1, FIELD_SIZE, FIELD_SIZE), background, dtype=np.float32)
    pad = (FIELD_SIZE - DIGIT_SIZE) // 2
    _scale_into(field[:, 0, pad:pad + DIGIT_SIZE, pad:pad + DIGIT_SIZE], digits, background, ink)
    return field


def kernel_digits(digits, background, ink):
    """What the fused kernel (lenet5_forward) takes for (N, 28, 28) checked digits:
    uint8 pixels as they are (it looks them up in input_table), other digits as float32
    network input, to_network_input's values without the border."""
    if digits.dtype == np.uint8:
        return np.ascontiguousarray(digits)
    scaled = np.empty(digits.shape, dtype=np.float32)
    _scale_into(scaled, digits, background, ink)
    return scaled


@functools.lru_cache(maxsize=8)
def input_table(background, ink):
    """(256,) float32, read-only: the network input of each uint8 pixel value, as to_network_input makes it."""
    table = np.empty((1, 256), dtype=np.float32)
    _scale_into(table, np.arange(256, dtype=np.uint8)[None], background, ink)
    table = table[0]
    table.flags.writeable = False
    return table


def _scale_into(out, digits, background, ink):
    # out (float32) = background + (ink - background) * p, p the pixel in [0, 1] (uint8 / 255).
    scale = np.float32(ink - background)
    if digits.dtype == np.uint8:
        scale = scale / np.float32(255.0)
    np.multiply(digits, scale, out=out, casting="unsafe")
    out += np.float32(background)


def check_int(value, name, minimum):
    """value as a Python int >= minimum (bools and floats refused), or ValueError naming the option."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_positive(value, name):
    """value as a finite Python float > 0 (bools, complex and strings refused), or ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_validation_data(validation_data):
    """(digits, labels) checked like the training data; None stays None."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise InvalidInputError("validation_data must be a pair (digits, labels)")
    digits = check_digits(validation_data[0])
    if not len(digits):
        raise InvalidInputError("validation_data holds no digits")
    return digits, check_labels(validation_data[1], len(digits))
