"""The two LeNet-5 variants as layer lists: `classic` (LeCun 1998) and `modern` (the seed's Keras model).

The one description of each network: its layers, and what follows from them
(parameter shapes, state checks, the fused kernel's weights). Nothing outside
this module asks which architecture it has.
"""

from dataclasses import dataclass

import numpy as np

from lenet_engine import constants
from lenet_engine.errors import ForeignWeightsError, NonFiniteWeightsError, ShapeMismatchError, UnknownModelError
from lenet_engine.inputs import input_table
from lenet_engine.kernels.fused import FusedWeights
from lenet_engine.layers import RBF, AvgPool, Conv, Linear, SparseConv, Squash, Subsample

ARCHITECTURES = ("classic", "modern")


@dataclass(frozen=True)
class Architecture:
    name: str
    layers: tuple
    loss: str            # "map" (classic) or "xent" (modern)
    background: float    # input value of a blank pixel, also the padding value
    ink: float           # input value of a full-ink pixel
    # The layer whose output each stage of the paper's figures shows (C1, S2, C3, S4, F6, output):
    # after the squashing function where there is one, as the paper draws its maps.
    stages: dict

    def layer(self, name):
        """The layer called `name`."""
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def amplitude(self):
        """The squashing function's amplitude: the largest magnitude a squashed unit reaches."""
        return float(next(layer.amplitude for layer in self.layers if isinstance(layer, Squash)))

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

    @property
    def trains_prototypes(self):
        """True when RBF prototypes are parameters (classic with trainable_prototypes), not fixed buffers."""
        return any(isinstance(layer, RBF) and layer.trainable for layer in self.layers)

    def check_state(self, state, source, params_only=False):
        """Raise ShapeMismatchError unless state has exactly this architecture's names (its parameters
        only, with params_only), shapes and float32 dtype, and NonFiniteWeightsError if a value is
        NaN or infinite. source names where the state came from, in the messages."""
        expected = self.param_shapes() if params_only else self.state_shapes()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ShapeMismatchError(
                f"{source}: tensor names do not fit the architecture "
                f"(missing: {missing or 'none'}; unexpected: {unexpected or 'none'})"
            )
        for name, shape in expected.items():
            t = state[name]
            if not isinstance(t, np.ndarray):
                raise ShapeMismatchError(f"{source}: {name} is a {type(t).__name__}, expected a numpy array")
            if t.shape != tuple(shape):
                raise ShapeMismatchError(f"{source}: {name} has shape {t.shape}, expected {tuple(shape)}")
            if t.dtype != np.float32:
                raise ShapeMismatchError(f"{source}: {name} has dtype {t.dtype}, expected float32")
            if not np.isfinite(t).all():
                raise NonFiniteWeightsError(f"{source}: {name} holds NaN or infinite values")

    def fused_weights(self, state):
        """The weights of the fused forward pass (kernels/fused.py) for this network.

        Its seven stages are the layers other than the squashing functions, in order: C1,
        S2, C3, S4, C5, F6, output; each layer gives its weights in the form its stage reads.
        They hold the state's arrays (or views of them), so a kernel bound to them sees the
        updates training makes in place.
        """
        c1, s2, c3, s4, c5, f6, out = (layer for layer in self.layers if not isinstance(layer, Squash))
        squashes = [i for i, layer in enumerate(self.layers) if isinstance(layer, Squash)]
        squash = self.layers[squashes[0]]
        pooled = [isinstance(self.layers[i - 1], (AvgPool, Subsample)) for i in squashes]
        out_w, out_b, distance_output = out.output_form(state)
        return FusedWeights(
            input_table(float(self.background), float(self.ink)),
            state[f"{c1.name}.weight"], state[f"{c1.name}.bias"], *s2.pool_form(state),
            *c3.sparse_form(state), *s4.pool_form(state),
            *c5.matrix_form(state), *f6.matrix_form(state), out_w, out_b,
            distance_output=distance_output, squash_pooled=any(pooled),
            amplitude=squash.amplitude, slope=squash.slope)

    def checked_state(self, state, source):
        """Own C-contiguous float32 copies of `state`, once check_state passes."""
        self.check_state(state, source)
        return {name: np.array(state[name], dtype=np.float32, order="C") for name in self.state_shapes()}


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
    stages = {"C1": "c1.squash", "S2": "s2.squash", "C3": "c3.squash", "S4": "s4.squash",
              "F6": "f6.squash", "output": "output"}
    return Architecture("classic", layers, "map", constants.CLASSIC_BACKGROUND, constants.CLASSIC_INK, stages)


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
    stages = {"C1": "conv1.tanh", "S2": "pool1", "C3": "conv2.tanh", "S4": "pool2",
              "F6": "dense2.tanh", "output": "dense3"}
    return Architecture("modern", layers, "xent", 0.0, 1.0, stages)


def get_architecture(name, trainable_prototypes=False, source=None):
    """The architecture called `name`; classic's RBF prototypes are fixed unless trainable_prototypes.

    source: the weights file that asks for it, named in the error if it asks for what cannot be.
    """
    if name == "classic":
        return _classic(trainable_prototypes)
    if name == "modern":
        if trainable_prototypes:
            message = "trainable_prototypes applies to classic only: modern has no RBF units"
            if source is not None:
                raise ForeignWeightsError(f"{source}: {message}")
            raise ValueError(message)
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
