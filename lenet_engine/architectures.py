"""The two LeNet-5 variants as layer lists: `classic` (LeCun 1998) and `modern` (the seed's Keras model).

See ../shared/LENET5.md for the specification. Called by lenet_engine.network.
"""

from dataclasses import dataclass

import numpy as np

from lenet_engine import constants
from lenet_engine.errors import UnknownModelError
from lenet_engine.layers import RBF, AvgPool, Conv, Linear, SparseConv, Squash, Subsample

ARCHITECTURES = ("classic", "modern")


@dataclass(frozen=True)
class Architecture:
    name: str
    layers: tuple
    loss: str            # "map" (classic) or "xent" (modern)
    background: float    # input value of a blank pixel, also the padding value
    ink: float           # input value of a full-ink pixel

    def layer(self, name):
        """The layer called `name`."""
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def predicts_by_distance(self):
        """True when the outputs are RBF distances (smallest wins), not logits."""
        return self.loss == "map"

    def param_shapes(self):
        return {k: v for layer in self.layers for k, v in layer.param_shapes().items()}

    def buffer_shapes(self):
        return {k: v for layer in self.layers for k, v in layer.buffer_shapes().items()}

    def state_shapes(self):
        """Parameters and fixed buffers: every array a weights file holds."""
        return {**self.param_shapes(), **self.buffer_shapes()}

    @property
    def num_parameters(self):
        return int(sum(np.prod(s) for s in self.param_shapes().values()))


def _classic(trainable_prototypes=False):
    a, s = constants.SQUASH_AMPLITUDE, constants.SQUASH_SLOPE
    conn_start, conn_in = constants.connection_arrays()
    layers = (
        Conv("c1", (1, 32, 32), 6),
        Squash("c1.squash", (6, 28, 28), a, s),
        Subsample("s2", (6, 28, 28)),
        Squash("s2.squash", (6, 14, 14), a, s),
        SparseConv("c3", (6, 14, 14), conn_start, conn_in),
        Squash("c3.squash", (16, 10, 10), a, s),
        Subsample("s4", (16, 10, 10)),
        Squash("s4.squash", (16, 5, 5), a, s),
        # C5 is a 5x5 convolution over 5x5 maps: a full layer that keeps its conv weight shape.
        Linear("c5", (16, 5, 5), 120, weight_shape=(120, 16, 5, 5)),
        Squash("c5.squash", (120,), a, s),
        Linear("f6", (120,), 84),
        Squash("f6.squash", (84,), a, s),
        RBF("output", 84, 10, trainable=trainable_prototypes),
    )
    return Architecture("classic", layers, "map",
                        constants.CLASSIC_BACKGROUND, constants.CLASSIC_INK)


def _modern():
    layers = (
        Conv("conv1", (1, 32, 32), 6),
        Squash("conv1.tanh", (6, 28, 28), 1.0, 1.0),
        AvgPool("pool1", (6, 28, 28)),
        Conv("conv2", (6, 14, 14), 16),
        Squash("conv2.tanh", (16, 10, 10), 1.0, 1.0),
        AvgPool("pool2", (16, 10, 10)),
        Linear("dense1", (16, 5, 5), 120),
        Squash("dense1.tanh", (120,), 1.0, 1.0),
        Linear("dense2", (120,), 84),
        Squash("dense2.tanh", (84,), 1.0, 1.0),
        Linear("dense3", (84,), 10),
    )
    return Architecture("modern", layers, "xent", 0.0, 1.0)


def get_architecture(name, trainable_prototypes=False):
    """The architecture called `name`; classic's RBF prototypes are fixed unless trainable_prototypes."""
    if name == "classic":
        return _classic(trainable_prototypes)
    if name == "modern":
        if trainable_prototypes:
            raise ValueError("trainable_prototypes applies to classic only: modern has no RBF units")
        return _modern()
    raise UnknownModelError(
        f"unknown architecture {name!r}: expected one of {', '.join(ARCHITECTURES)}"
    )


def initial_state(arch, seed):
    """Fresh parameters and buffers, float32, as each model's authors initialise them.

    classic: every weight and bias uniform in [-2.4/F, 2.4/F], F the unit's fan-in
    (LeCun 1998); RBF prototypes from the digit bitmaps.
    modern: Keras defaults, Glorot-uniform kernels and zero biases.
    """
    rng = np.random.default_rng(seed)
    state = {}
    for layer in arch.layers:
        for name, shape in layer.param_shapes().items():
            if name == "output.prototypes":
                continue  # trainable prototypes start from the bitmaps too
            if arch.name == "classic":
                state[name] = _lecun_uniform(rng, layer, name, shape)
            else:
                state[name] = _glorot_uniform(rng, layer, name, shape)
    if "output.prototypes" in arch.state_shapes():
        state["output.prototypes"] = constants.rbf_prototypes()
    return state


def _lecun_uniform(rng, layer, name, shape):
    fan_in = layer.fan_in(name)
    bound = 2.4 / np.asarray(fan_in, dtype=np.float64)
    if bound.ndim == 0:
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)
    # Per-output-map bounds (sparse C3): expand to one bound per kernel or bias.
    if name.endswith(".bias"):
        per_entry = bound
    else:
        per_entry = np.repeat(bound, np.diff(layer.conn_start))
    u = rng.uniform(-1.0, 1.0, size=shape)
    return (u * per_entry.reshape((-1,) + (1,) * (len(shape) - 1))).astype(np.float32)


def _glorot_uniform(rng, layer, name, shape):
    if name.endswith(".bias"):
        return np.zeros(shape, dtype=np.float32)
    if len(shape) == 4:  # conv (out, in, kh, kw): Keras counts the receptive field in both fans
        receptive = shape[2] * shape[3]
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    else:
        fan_out, fan_in = shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)
