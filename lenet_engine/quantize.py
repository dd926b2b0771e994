"""The int8 scheme: a float32 model's weights turned into the Int8Weights of kernels/fused_int8.py.

What is rounded where (each rounding is to nearest, ties to even):
- Weights: symmetric int8, one scale per output map or unit, max |w| / 127.
- Activations: int8 in -127..127, one scale per stage, max |a| / 127 over the
  calibration digits' float32 activations (at most the squashing's amplitude, so
  nothing is clipped that the calibration saw).
- Biases: int32 at the accumulator's scale (input scale times weight scale).
  C1 reads raw pixels, 0 being the background: the pixel-to-input map
  (background + (ink - background) * p / 255) goes into C1's scale and bias,
  so the zero padding stays exact.
- The squashing: a table over the pre-activation in steps of half an output
  step at its steepest, indexed by rint(float32(acc) * m); its entries are the
  squashed values, rounded to the next stage's int8.
- Pooling: a table per map over the 1017 sums of four int8 values, holding
  the coefficient and bias (classic), the squashing after it (classic) or the
  average (modern), rounded to int8.
- Output: modern's logits are float32(acc) times the accumulator's scale;
  classic's RBF distances are computed in float32 from F6's dequantized code.
"""

import numpy as np

from lenet_engine.errors import InvalidInputError
from lenet_engine.kernels.fused_int8 import POOL_SUMS, Int8Weights
from lenet_engine.layers import Squash

F32 = np.float32
STAGES = ("c1", "s2", "c3", "s4", "c5", "f6")
MIN_RANGE = 1 / 8  # an activation scale is at least this share of the squashing's amplitude / 127


def stage_layers(arch):
    """Per stage (C1, S2, C3, S4, C5, F6), the index in arch.layers of the layer whose output it
    gives: the stage's own layer, or the squashing after it."""
    indices = []
    for i, layer in enumerate(arch.layers[:-1]):
        if isinstance(layer, Squash):
            continue
        while i + 1 < len(arch.layers) and isinstance(arch.layers[i + 1], Squash):
            i += 1
        indices.append(i)
    return indices


def stage_outputs(arch, activations):
    """{stage: float32 output} of activations as network.forward_layers returns them."""
    return {name: activations[i + 1] for name, i in zip(STAGES, stage_layers(arch))}


def activation_scales(arch, largest):
    """Per stage, the float value of one int8 step: largest[stage] (max |a| seen in calibration)
    / 127, within [MIN_RANGE, 1] * A / 127."""
    amplitude = float(arch.amplitude)
    scales = {}
    for name in STAGES:
        top = float(largest[name])
        if not np.isfinite(top):
            raise InvalidInputError(f"calibration: the {name} activations are not finite")
        scales[name] = min(max(top, MIN_RANGE * amplitude), amplitude) / 127.0
    return scales


def quantize_rows(w):
    """(rows, k) float -> (int8 (rows, k), scale (rows,) float64): symmetric, one scale per row."""
    w = np.asarray(w, np.float64)
    scale = np.abs(w).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8), scale


def _bias(value, acc_scale):
    return np.clip(np.rint(np.asarray(value, np.float64) / acc_scale), -2**30, 2**30).astype(np.int32)


def squash_table(amplitude, slope, out_scale):
    """(table (2 L + 1,) int8, step): the squashing amplitude * tanh(slope * z) over z = i * step,
    i in -L..L, rounded to int8 of out_scale; L reaches where the output stops changing."""
    step = out_scale / (2.0 * amplitude * slope)
    edge = min(126.5 * out_scale / amplitude, 1.0 - 1e-12)
    half = int(np.ceil(np.arctanh(edge) / slope / step)) + 1
    z = np.arange(-half, half + 1) * step
    table = np.clip(np.rint(amplitude * np.tanh(slope * z) / out_scale), -127, 127)
    return table.astype(np.int8), step


def pool_table(coef, bias, in_scale, out_scale, squash):
    """(maps, POOL_SUMS) int8: for each map and sum t of four int8 inputs, the pooled output
    coef * in_scale * t + bias, squashed when squash = (amplitude, slope), rounded to out_scale."""
    t = np.arange(POOL_SUMS) - (POOL_SUMS - 1) // 2
    v = np.asarray(coef, np.float64)[:, None] * in_scale * t + np.asarray(bias, np.float64)[:, None]
    if squash is not None:
        v = squash[0] * np.tanh(squash[1] * v)
    return np.clip(np.rint(v / out_scale), -127, 127).astype(np.int8)


def int8_weights(arch, fused, scales):
    """Int8Weights of a network's FusedWeights and its activation scales (activation_scales)."""
    amplitude, slope = float(fused.amplitude), float(fused.slope)
    tables = {name: squash_table(amplitude, slope, scales[name]) for name in ("c1", "c3", "c5", "f6")}

    def multiplier(acc_scale, name):
        return (acc_scale / tables[name][1]).astype(F32)

    # C1 on raw pixels: input = background + pixel_step * p.
    background = float(fused.table[0])
    pixel_step = (float(fused.table[255]) - background) / 255.0
    c1_w, c1_ws = quantize_rows(fused.c1_w.reshape(6, 25))
    c1_acc = c1_ws * pixel_step
    c1_bias = background * c1_ws * c1_w.sum(axis=1, dtype=np.int64) + fused.c1_b
    squash_pooled = (amplitude, slope) if fused.squash_pooled else None
    # C3: one scale per output map, over all of its connections' kernels.
    conn_start = np.ascontiguousarray(fused.conn_start, np.int64)
    c3 = np.asarray(fused.c3_w, np.float64).reshape(-1, 25)
    c3_ws = np.empty(16)
    for o in range(16):
        part = np.abs(c3[conn_start[o]:conn_start[o + 1]])
        c3_ws[o] = part.max() / 127.0 if part.size and part.max() > 0 else 1.0
    per_conn = np.repeat(c3_ws, np.diff(conn_start))
    c3_w = np.clip(np.rint(c3 / per_conn[:, None]), -127, 127).astype(np.int8)
    c3_acc = scales["s2"] * c3_ws
    c5_w, c5_ws = quantize_rows(fused.c5_w)
    f6_w, f6_ws = quantize_rows(fused.f6_w)
    if fused.distance_output:
        out_w = np.ascontiguousarray(fused.out_w, F32)
        out_b, out_m = np.zeros(10, np.int32), np.zeros(10, F32)
    else:
        out_w, out_ws = quantize_rows(fused.out_w)
        out_acc = scales["f6"] * out_ws
        out_b, out_m = _bias(fused.out_b, out_acc), out_acc.astype(F32)
    return Int8Weights(
        c1_w=c1_w, c1_b=_bias(c1_bias, c1_acc), c1_m=multiplier(c1_acc, "c1"), c1_lut=tables["c1"][0],
        s2_lut=pool_table(fused.s2_coef, fused.s2_bias, scales["c1"], scales["s2"], squash_pooled),
        c3_w=c3_w, c3_b=_bias(fused.c3_b, c3_acc), c3_m=multiplier(c3_acc, "c3"), c3_lut=tables["c3"][0],
        conn_start=conn_start, conn_in=np.ascontiguousarray(fused.conn_in, np.int64),
        s4_lut=pool_table(fused.s4_coef, fused.s4_bias, scales["c3"], scales["s4"], squash_pooled),
        c5_w=c5_w, c5_b=_bias(fused.c5_b, scales["s4"] * c5_ws),
        c5_m=multiplier(scales["s4"] * c5_ws, "c5"), c5_lut=tables["c5"][0],
        f6_w=f6_w, f6_b=_bias(fused.f6_b, scales["c5"] * f6_ws),
        f6_m=multiplier(scales["c5"] * f6_ws, "f6"), f6_lut=tables["f6"][0],
        f6_scale=F32(scales["f6"]), out_w=out_w, out_b=out_b, out_m=out_m,
        distance_output=bool(fused.distance_output))
