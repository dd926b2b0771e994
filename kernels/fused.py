"""FusedWeights: the weights of the fused forward pass, one named bundle for every backend.

Every backend's `lenet5_forward(out, digits, weights, n_threads)` and
`Lenet5Forward(weights)` take one; lenet_engine.network builds it from a
model's state (Architecture.fused_weights). It holds the state's arrays (or views of
them), not copies, so a kernel bound to it sees updates made in place, as
training makes them.

Both architectures fit it: modern passes its full C3 as a connection table
listing all 96 (output map, input map) pairs (kernels/tables.py), and its
average pooling as coefficient 0.25 and bias 0.
"""

import typing

import numpy as np

from lenet_engine.kernels.contracts import check_table


class FusedWeights(typing.NamedTuple):
    """What lenet5_forward reads besides (out, digits): C-contiguous arrays, float32 but for C3's table.

    The 32x32 input field is the digit centred in a 2-pixel border of table[0] (the background).
    """

    table: np.ndarray          # (256,) the network input of each uint8 pixel value
    c1_w: np.ndarray           # (6, 1, 5, 5) C1's kernels
    c1_b: np.ndarray           # (6,) C1's biases
    s2_coef: np.ndarray        # (6,) S2's coefficient per map (modern: 0.25, average pooling)
    s2_bias: np.ndarray        # (6,) S2's bias per map (modern: 0)
    c3_w: np.ndarray           # (P, 5, 5) C3's kernels, one per connection of the table below
    c3_b: np.ndarray           # (16,) C3's biases
    conn_start: np.ndarray     # (17,) int64: C3 map o has connections conn_start[o] to conn_start[o + 1] - 1
    conn_in: np.ndarray        # (P,) int64: the S2 map each connection reads
    s4_coef: np.ndarray        # (16,) S4's coefficient per map (modern: 0.25)
    s4_bias: np.ndarray        # (16,) S4's bias per map (modern: 0)
    c5_w: np.ndarray           # (120, 400) C5's weights over the flattened S4 maps
    c5_b: np.ndarray           # (120,) C5's biases
    f6_w: np.ndarray           # (84, 120) F6's weights
    f6_b: np.ndarray           # (84,) F6's biases
    out_w: np.ndarray          # (10, 84) RBF prototypes (classic) or the output layer's weights (modern)
    out_b: np.ndarray          # (10,) the output layer's biases (classic: zeros, unread)
    distance_output: bool      # outputs: squared distances to out_w's rows (classic), else out_w @ x + out_b
    squash_pooled: bool        # squash after S2 and S4 too (classic; modern's average pooling is linear)
    amplitude: np.float32      # A of the squashing A * tanh(S * a) (classic 1.7159, modern 1)
    slope: np.float32          # S of the squashing (classic 2/3, modern 1)


# The arrays' shapes; P, C3's connection count, is len(conn_in).
SHAPES = {"table": (256,), "c1_w": (6, 1, 5, 5), "c1_b": (6,), "s2_coef": (6,), "s2_bias": (6,),
          "c3_w": ("P", 5, 5), "c3_b": (16,), "conn_start": (17,), "conn_in": ("P",), "s4_coef": (16,),
          "s4_bias": (16,), "c5_w": (120, 400), "c5_b": (120,), "f6_w": (84, 120), "f6_b": (84,),
          "out_w": (10, 84), "out_b": (10,)}
TABLE_FIELDS = ("conn_start", "conn_in")


def check_fused_weights(weights):
    """Refuse, before any compiled loop reads them, weights it could read out of bounds: anything
    but a FusedWeights, arrays of the wrong type, dtype, layout or shape, and a connection table
    that does not rise from 0 to the kernel count or names a map S2 lacks. (Values are not checked:
    weights that are not finite give outputs that are not, which the bound kernels count.)"""
    if not isinstance(weights, FusedWeights):
        raise TypeError(f"lenet5_forward: weights must be a FusedWeights, got {type(weights).__name__}")
    fields = weights._asdict()
    for name, shape in SHAPES.items():
        a = fields[name]
        dtype = np.int64 if name in TABLE_FIELDS else np.float32
        # TypeError for what is no array (None), ValueError for a wrong dtype or layout, as the Cython
        # memoryviews answer them.
        if not isinstance(a, np.ndarray):
            raise TypeError(f"lenet5_forward: {name} must be a numpy array, got {type(a).__name__}")
        if a.dtype != dtype or not a.flags.c_contiguous:
            raise ValueError(f"lenet5_forward: {name} must be a C-contiguous {np.dtype(dtype)} array, "
                             f"got {a.dtype}{'' if a.flags.c_contiguous else ', not C-contiguous'}")
        want = tuple(len(weights.conn_in) if d == "P" else d for d in shape)
        if a.shape != want:
            raise ValueError(f"lenet5_forward: {name} has shape {a.shape}, expected {want}")
    check_table("lenet5_forward", weights.conn_start, weights.conn_in, 6)
