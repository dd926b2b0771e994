"""One picture of a digit going through LeNet-5: the input, every feature map, the F6 code and the outputs.

    fig = feature_maps_figure(model, digit)    # a matplotlib Figure
    save_feature_maps(model, digit, "maps.png")

Laid out left to right as the network runs, like the figures of LeCun 1998
and the seed's slides: the 32x32 input field, C1 (6@28x28), S2 (6@14x14),
C3 (16@10x10), S4 (16@5x5), the 84 F6 units drawn as a 7x12 bitmap (for
classic beside the RBF prototype it is compared with), then the ten RBF
distances (classic) or probabilities (modern). Needs matplotlib (the `[plot]`
extra); uses its object-oriented API only, so no pyplot state or GUI backend
is touched. Called by the command line's `visualize`.
"""

import io
from pathlib import Path

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import InvalidInputError
from lenet_engine.io import atomic

__all__ = ["feature_maps_figure", "save_feature_maps"]

# (rows, columns) of the grid each stage's maps are drawn in.
_GRIDS = {"C1": (6, 1), "S2": (6, 1), "C3": (8, 2), "S4": (8, 2)}
_MAPS_CMAP = "RdBu_r"   # negative blue, positive red, zero white: the sign of a unit shows
_INK_CMAP = "gray_r"    # the input as on paper: ink dark
_F6_SHAPE = (12, 7)     # the RBF bitmaps' layout: 7 wide, 12 tall


def feature_maps_figure(model, digit, *, source=None):
    """A matplotlib Figure of one digit (28x28, or (1, 28, 28)) through `model`; `source` names it in the title."""
    digit = np.asarray(digit)
    if digit.ndim == 3 and len(digit) == 1:
        digit = digit[0]
    if digit.shape != (28, 28):
        raise InvalidInputError(f"visualize takes one digit of shape (28, 28), got shape {digit.shape}")
    outputs = model.layer_outputs(digit)
    arch = model._arch
    stages = {stage: outputs[layer][0] for stage, layer in arch.stages.items()}
    field = outputs["input"][0, 0]
    amplitude = arch.amplitude
    final = stages["output"]
    by_distance = arch.predicts_by_distance
    proba = model.predict_proba(digit)[0]
    predicted = int(np.argmin(final) if by_distance else np.argmax(final))

    figure_module = import_optional("matplotlib.figure", "plot", "drawing pictures")
    fig = figure_module.Figure(figsize=(15, 8.2), dpi=100, layout="constrained")
    fig.suptitle(f"{source + ' through ' if source else ''}LeNet-5 {model.arch}: predicted {predicted} "
                 f"(probability {proba[predicted]:.3f})", fontsize=14, fontweight="bold")
    panels = fig.subfigures(1, 7, width_ratios=[2.2, 1.2, 1.0, 1.6, 1.2, 1.5, 2.6], wspace=0.02)

    _draw_input(panels[0], field, arch, amplitude)
    for panel, stage in zip(panels[1:5], ("C1", "S2", "C3", "S4")):
        _draw_maps(panel, stage, stages[stage], amplitude)
    _draw_f6(panel=panels[5], code=stages["F6"], amplitude=amplitude,
             prototype=_prototypes(model)[predicted] if by_distance else None,
             predicted=predicted)
    _draw_outputs(panels[6], final, proba, predicted, by_distance)
    return fig


def _prototypes(model):
    """The RBF output's (10, 84) prototypes of a classic model: its state's, or an int8 model's
    weights' (the RBF layer stays in float there)."""
    from lenet_engine.int8_model import Int8LeNet5

    return model._weights.out_w if isinstance(model, Int8LeNet5) else model.state_dict()["output.prototypes"]


def save_feature_maps(model, digit, path, *, source=None):
    """Write feature_maps_figure(model, digit) to `path` itself, atomically: in the format its suffix
    names (any matplotlib writes), PNG where it has none (matplotlib would add ".png" to the name)."""
    atomic.check_target(path)  # a folder, or a missing one, refused before drawing
    fig = feature_maps_figure(model, digit, source=source)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png")
    atomic.write_bytes(path, [buffer.getvalue()])
    return path


def _draw_input(panel, field, arch, amplitude):
    """The input field, and under it the colour scale every other map uses."""
    panel.suptitle("input\n1@32x32", fontsize=11)
    ax, scale_ax = panel.subplots(2, 1, height_ratios=[12, 1])
    ax.imshow(field, cmap=_INK_CMAP, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"background {arch.background:g}, ink {arch.ink:g}", fontsize=8)
    colors = import_optional("matplotlib.colors", "plot", "drawing pictures")
    cm = import_optional("matplotlib.cm", "plot", "drawing pictures")
    scale = cm.ScalarMappable(colors.Normalize(-amplitude, amplitude), _MAPS_CMAP)
    panel.colorbar(scale, cax=scale_ax, orientation="horizontal")
    scale_ax.set_xlabel("unit output (maps, F6)", fontsize=8)
    scale_ax.tick_params(labelsize=7)


def _draw_maps(panel, stage, maps, amplitude):
    count, height, width = maps.shape
    rows, cols = _GRIDS[stage]
    panel.suptitle(f"{stage}\n{count}@{height}x{width}", fontsize=11)
    axes = panel.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(axes.T.ravel()):  # fill columns first: map 0..7 down the first column
        ax.set_xticks([])
        ax.set_yticks([])
        ax.imshow(maps[index], cmap=_MAPS_CMAP, vmin=-amplitude, vmax=amplitude, interpolation="nearest")
        ax.set_ylabel(str(index), fontsize=7, rotation=0, labelpad=6, va="center")


def _draw_f6(panel, code, amplitude, prototype, predicted):
    panel.suptitle("F6\n84 units", fontsize=11)
    pictures = [("code", code)]
    if prototype is not None:
        pictures.append((f"prototype {predicted}", prototype))
    axes = panel.subplots(len(pictures), 1, squeeze=False)[:, 0]
    for ax, (label, values) in zip(axes, pictures):
        ax.imshow(values.reshape(_F6_SHAPE), cmap=_MAPS_CMAP, vmin=-amplitude, vmax=amplitude,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=9)


def _draw_outputs(panel, final, proba, predicted, by_distance):
    panel.suptitle("output\n" + ("RBF distances (smallest wins)" if by_distance else "probabilities"),
                   fontsize=11)
    ax = panel.subplots()
    values = final if by_distance else proba
    colours = ["tab:red" if i == predicted else "tab:gray" for i in range(10)]
    ax.barh(np.arange(10), values, color=colours)
    ax.set_yticks(np.arange(10))
    ax.get_yticklabels()[predicted].set(color="tab:red", fontweight="bold")
    ax.set_ylim(9.6, -0.6)  # digit 0 at the top
    ax.set_ylabel("digit")
    ax.set_xlabel("distance" if by_distance else "probability")
    for i, v in enumerate(values):
        emphasis = {"color": "tab:red", "fontweight": "bold"} if i == predicted else {}
        ax.text(v, i, f" {v:.3g}" if by_distance else f" {v:.3f}", va="center", fontsize=8, **emphasis)
    ax.set_xlim(0, (float(values.max()) if by_distance else 1.0) * 1.2)
    if not by_distance:
        ax.set_xticks(np.linspace(0.0, 1.0, 6))
