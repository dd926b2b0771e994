"""Int8Weights: the weights of the int8 forward pass, one bundle for every backend.

lenet_engine.quantize builds it (what is rounded where is said there). Every
integer stage is exact: the backends must agree bit for bit, so the
nonlinear parts are tables computed once in Python, and the only float
operation inside the integer stages is one float32 product, rounded half to
even, that turns an accumulator into a table index:

    acc    = sum(w_q * a_q) + b_q                          int32, exact
    index  = clip(rint(float32(acc) * m[c]), -L, L)         one IEEE float32 product
    a_next = lut[index + L]                                 int8

Pooling adds four int8 values (-508..508) and looks the sum up in its map's
table, which holds the coefficient, the bias, the squashing (classic) or the
average (modern) and the requantization together. The output layer is kept in
float: logits float32(acc) * m[c] (modern), or the RBF distances of the
dequantized F6 code (classic).

The input field is the digit's uint8 pixels with a border of zeros: pixel 0
is the background, so C1's padding is exact, and the affine pixel-to-input
map is folded into C1's bias and multiplier.
"""

import typing

import numpy as np

from lenet_engine.kernels.contracts import check_call

POOL_SUMS = 1017  # the sums of four int8 values in -127..127: -508..508


class Int8Weights(typing.NamedTuple):
    """What lenet5_int8_forward reads besides (out, digits); C-contiguous arrays."""

    c1_w: np.ndarray         # (6, 25) int8
    c1_b: np.ndarray         # (6,) int32
    c1_m: np.ndarray         # (6,) float32: accumulator to table index
    c1_lut: np.ndarray       # (2 L + 1,) int8: the squashing, requantized
    s2_lut: np.ndarray       # (6, POOL_SUMS) int8: pooled sum + 508 to S2's output
    c3_w: np.ndarray         # (P, 25) int8, one kernel per connection
    c3_b: np.ndarray         # (16,) int32
    c3_m: np.ndarray         # (16,) float32
    c3_lut: np.ndarray       # (2 L + 1,) int8
    conn_start: np.ndarray   # (17,) int64, as in FusedWeights
    conn_in: np.ndarray      # (P,) int64
    s4_lut: np.ndarray       # (16, POOL_SUMS) int8
    c5_w: np.ndarray         # (120, 400) int8
    c5_b: np.ndarray         # (120,) int32
    c5_m: np.ndarray         # (120,) float32
    c5_lut: np.ndarray       # (2 L + 1,) int8
    f6_w: np.ndarray         # (84, 120) int8
    f6_b: np.ndarray         # (84,) int32
    f6_m: np.ndarray         # (84,) float32
    f6_lut: np.ndarray       # (2 L + 1,) int8
    f6_scale: np.float32     # F6's output value per int8 step (classic's RBF reads float32(a) * f6_scale)
    out_w: np.ndarray        # (10, 84) int8 (modern) or float32 RBF prototypes (classic)
    out_b: np.ndarray        # (10,) int32 (modern; classic: zeros, unread)
    out_m: np.ndarray        # (10,) float32: logit per accumulator step (modern; classic: unread)
    distance_output: bool    # classic: squared distances to out_w's rows, in float32


INT_FIELDS = {"c1_w": np.int8, "c1_b": np.int32, "c1_m": np.float32, "c1_lut": np.int8,
              "s2_lut": np.int8, "c3_w": np.int8, "c3_b": np.int32, "c3_m": np.float32,
              "c3_lut": np.int8, "conn_start": np.int64, "conn_in": np.int64, "s4_lut": np.int8,
              "c5_w": np.int8, "c5_b": np.int32, "c5_m": np.float32, "c5_lut": np.int8,
              "f6_w": np.int8, "f6_b": np.int32, "f6_m": np.float32, "f6_lut": np.int8,
              "out_b": np.int32, "out_m": np.float32}
SHAPES = {"c1_w": (6, 25), "c1_b": (6,), "c1_m": (6,), "s2_lut": (6, POOL_SUMS), "c3_b": (16,),
          "c3_m": (16,), "conn_start": (17,), "s4_lut": (16, POOL_SUMS), "c5_w": (120, 400),
          "c5_b": (120,), "c5_m": (120,), "f6_w": (84, 120), "f6_b": (84,), "f6_m": (84,),
          "out_w": (10, 84), "out_b": (10,), "out_m": (10,)}


def check_int8_weights(weights):
    """Refuse anything the compiled kernels could read out of bounds: types, dtypes, shapes,
    the connection table, tables of odd length, and multipliers that are not finite; and what
    would make them disagree with the reference: biases whose sums could overflow int32, outputs
    that could overflow float32. Run before entering compiled code."""
    if not isinstance(weights, Int8Weights):
        raise TypeError(f"lenet5_int8_forward: weights must be an Int8Weights, got {type(weights).__name__}")
    w = weights._asdict()
    for name, dtype in INT_FIELDS.items():
        a = w[name]
        if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
            raise TypeError(f"Int8Weights.{name} must be a C-contiguous {np.dtype(dtype)} array")
    out_dtype = np.float32 if weights.distance_output else np.int8
    if not isinstance(weights.out_w, np.ndarray) or weights.out_w.dtype != out_dtype \
            or not weights.out_w.flags.c_contiguous:
        raise TypeError(f"Int8Weights.out_w must be a C-contiguous {np.dtype(out_dtype)} array")
    for name, shape in SHAPES.items():
        if w[name].shape != shape:
            raise ValueError(f"Int8Weights.{name} has shape {w[name].shape}, expected {shape}")
    for name in ("c1_lut", "c3_lut", "c5_lut", "f6_lut"):
        if w[name].ndim != 1 or len(w[name]) % 2 != 1:
            raise ValueError(f"Int8Weights.{name} must be one table of odd length (2 L + 1)")
    for name in ("c1_m", "c3_m", "c5_m", "f6_m", "out_m", "f6_scale"):
        if not np.all(np.isfinite(w[name])):
            raise ValueError(f"Int8Weights.{name} must be finite: its products index the tables")
    for name in ("c1_b", "c3_b", "c5_b", "f6_b", "out_b"):
        if np.abs(w[name].astype(np.int64)).max() > MAX_BIAS:
            raise ValueError(f"Int8Weights.{name} holds a bias past 2**30 (quantize's limit): "
                             f"its sums could overflow int32")
    if not _largest_output(weights) < float(np.finfo(np.float32).max):  # NaN too
        raise ValueError("Int8Weights: the outputs could overflow float32 (out_w, out_m or f6_scale too large), "
                         "or the RBF prototypes (out_w) are not finite")
    start, conn_in = weights.conn_start, weights.conn_in
    p = len(conn_in)
    if start[0] != 0 or start[-1] != p or np.any(np.diff(start) < 0):
        raise ValueError("Int8Weights.conn_start must rise from 0 to the number of connections")
    if p and (conn_in.min() < 0 or conn_in.max() >= 6):
        raise ValueError("Int8Weights.conn_in must name S2 maps 0..5")
    if weights.c3_w.shape != (p, 25):
        raise ValueError(f"Int8Weights.c3_w has shape {weights.c3_w.shape}, expected ({p}, 25)")


MAX_BIAS = 2 ** 30  # quantize clips biases here: with any stage's largest sum added, far from int32's limit


def _largest_output(weights):
    """A bound (float64) of the outputs' magnitude: classic's RBF distances from F6's codes, or
    modern's logits from the output layer's sums; inf or NaN for prototypes that are not finite."""
    if weights.distance_output:
        reach = 127.0 * abs(float(weights.f6_scale)) + float(np.abs(weights.out_w.astype(np.float64)).max())
        return 84.0 * reach * reach
    largest_sum = 84 * 127 * 127 + float(np.abs(weights.out_b.astype(np.float64)).max())
    return float(np.abs(weights.out_m.astype(np.float64)).max()) * largest_sum


class BoundInt8Forward:
    """A backend's lenet5_int8_forward with its weights bound (checked once): the numpy and numba
    backends' Lenet5Int8Forward(weights), the twin of the Cython class. Called with (out, digits,
    n_threads), it writes out and returns 0, the count of outputs that are not finite (sums of
    finite weights never overflow)."""

    def __init__(self, forward, weights):
        check_int8_weights(weights)
        self.forward, self.weights = forward, weights

    def __call__(self, out, digits, n_threads):
        check_call("lenet5_int8_forward", ("out", "digits"), (out, digits))
        self.forward(out, digits, self.weights, n_threads)
        return 0
