"""Each stage of preparing a picture of digits, as pictures: what to_mnist and split_digits saw and did.

    digit, steps = to_mnist(gray, debug=True)
    steps.save("steps.png")          # one PNG, the stages side by side (needs matplotlib)
    steps.stages                     # [(title, (H, W) or (H, W, 3) float array in [0, 1])]

The stages: the picture; the paper's light as fitted; the ink with that
light taken off; the threshold (weak ink grey, strong ink black); the ink
kept (black) and dropped (red: specks, page edges, shadows); then, for one
digit, its box and the 28x28 MNIST digit, or, for a row, the digits found
with their boxes. Drawn on paper: ink dark, as on the page. Written by the
command line's `predict --show-steps`.
"""

from dataclasses import dataclass

import numpy as np

from lenet_engine._optional import import_optional

__all__ = ["PrepSteps"]

_DROPPED = (0.85, 0.1, 0.1)   # red: ink left out


@dataclass
class PrepSteps:
    """The stages, in order: [(title, image)], images float in [0, 1], 1 = white paper."""

    stages: list

    @classmethod
    def of_digit(cls, gray, page, parts, group, ink, mask, digit):
        stages = _page_stages(gray, page, parts, [p.label for p in group])
        stages.append(("the digit's box", 1.0 - _crop(ink, mask)))
        stages.append(("MNIST digit, 28x28", 1.0 - digit / 255.0))
        return cls(stages)

    @classmethod
    def of_row(cls, gray, page, parts, groups, digits, boxes):
        kept = [p.label for group in groups for p in group]
        stages = _page_stages(gray, page, parts, kept)
        framed = np.repeat(np.asarray(gray, np.float64)[..., None], 3, axis=2)
        for top, left, bottom, right in boxes:
            for edge in (framed[top, left:right], framed[bottom - 1, left:right],
                         framed[top:bottom, left], framed[top:bottom, right - 1]):
                edge[...] = (0.1, 0.4, 0.9)
        stages.append((f"{len(digits)} digits found", framed))
        stages.append(("MNIST digits, left to right", 1.0 - np.hstack(list(digits)) / 255.0))
        return cls(stages)

    def figure(self):
        """A matplotlib Figure of the stages side by side."""
        figure_module = import_optional("matplotlib.figure", "plot", "drawing the preparation's steps")
        fig = figure_module.Figure(figsize=(2.6 * len(self.stages), 3.0), dpi=100, layout="constrained")
        for ax, (title, image) in zip(fig.subplots(1, len(self.stages)), self.stages):
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
        return fig

    def save(self, path):
        """Write the stages side by side to `path` (PNG)."""
        self.figure().savefig(path)


def _page_stages(gray, page, parts, kept):
    light = np.broadcast_to(np.asarray(page.light, np.float64), gray.shape)
    strength = np.where(parts.labels > 0, 0.5, 0.0) + np.where(page.ink >= parts.strong, 0.5, 0.0)
    chosen = np.isin(parts.labels, kept)
    dropped = (parts.labels > 0) & ~chosen
    coloured = np.ones(gray.shape + (3,))
    coloured[chosen] = 0.0
    coloured[dropped] = _DROPPED
    return [
        ("picture", np.asarray(gray, np.float64)),
        ("paper's light (fitted)", 1.0 - light if page.inverted else light),
        ("ink, light taken off", 1.0 - page.ink),
        (f"threshold {parts.weak:.2f} / {parts.strong:.2f}", 1.0 - strength),
        ("ink kept / dropped (red)", coloured),
    ]


def _crop(ink, mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
