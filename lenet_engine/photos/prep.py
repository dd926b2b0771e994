"""From a photo of paper to the ink of its digits: polarity, light flattening, threshold, connected parts.

    page = page_ink(gray, invert=None)      # ink in [0, 1], 0 = paper, light flattened
    parts = ink_parts(page)                 # the connected pieces of ink, each with its box and mass
    kept = digit_parts(parts, page.ink.shape)

A photo's paper is not one grey level: light falls off across it and every
pixel carries sensor noise. The steps, each a well-known one:
  1. polarity: ink as high values, light paper meaning dark ink, the paper's
     shade read from the picture's median (`invert` forces it);
  2. illumination: a quadratic surface fitted to the paper alone (ink is
     excluded as a one-sided outlier, iteratively) is subtracted; a page whose
     fitted light varies by less than FLAT_RANGE keeps the border's median as
     its one level, exactly as to_mnist did before photos were handled;
  3. the ink is stretched to [0, 1] and the paper's noise measured (the
     fit's residuals, median absolute deviation), so that a page whose
     strongest ink is within its noise, pixel by pixel and averaged over
     3x3 pixels (where a grainy photo's noise falls and a stroke's ink
     does not), is blank;
  4. hysteresis threshold: ink is every pixel over a weak threshold connected
     to a pixel over a strong one, Otsu's threshold of the flattened page
     (so noise never starts a part, and faint strokes of a real one stay);
  5. connected parts (8-connectivity) of that ink, with their boxes and mass.
Selecting the parts of one digit drops specks and the ink of page edges and
margins' shadows (parts touching the border) whenever a digit-sized part lies
inside the picture. Needs SciPy (the `[images]` extra).
"""

from dataclasses import dataclass

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import BlankImageError

# Ink must differ from the background by this fraction of the full range to count as a digit.
MIN_CONTRAST = 0.1
# Weak threshold of the hysteresis, as a fraction of the ink's contrast: also MNIST's box threshold.
BOX_THRESHOLD = 0.25
# A fitted light varying by less than this (fraction of the full range) is a flat page.
FLAT_RANGE = 0.02
# The strongest ink must stand this many noise deviations above the paper (the paper's
# own maximum over a 25-megapixel page is under 6), and the weak threshold this many over it.
CONTRAST_SIGMAS = 8.0
WEAK_SIGMAS = 4.0
# Parts whose box is smaller than this fraction of the picture's shorter side are specks
# (unless nothing larger is there); where nothing is, a part smaller than the second fraction is
# no digit either (a speck on a blank page would be scaled up into a confident "digit").
MIN_EXTENT = 0.04
MIN_LONE_EXTENT = 0.015
# Pieces of one digit (a stroke drawn apart): at least this fraction of its main part's mass,
# their box within this fraction of the digit's size from it.
PART_FRACTION = 0.02
JOIN_GAP = 0.15
# Samples per side of the grid the light is fitted on: plenty for a quadratic surface.
FIT_SAMPLES = 100
FIT_ROUNDS = 6


def ndimage_module():
    return import_optional("scipy.ndimage", "images", "preparing pictures of digits")


@dataclass
class PageInk:
    """A page as ink: `ink` (H, W) float32 in [0, 1], 0 = paper; `light` the paper level removed
    (a scalar for a flat page, else (H, W)); `noise` the paper's deviation, in units of `ink`."""

    ink: np.ndarray
    light: object
    noise: float
    inverted: bool


@dataclass
class InkParts:
    """The connected parts of a page's ink: `labels` (H, W) int32 (0 = none), and per part its
    label, box (row slice, column slice), mass (sum of ink) and whether it touches the border.
    `weak` and `strong` are the thresholds used, on the PageInk's ink."""

    labels: np.ndarray
    parts: list
    weak: float
    strong: float


@dataclass(frozen=True)
class Part:
    label: int
    box: tuple
    mass: float
    touches_border: bool

    @property
    def extent(self):
        return max(self.box[0].stop - self.box[0].start, self.box[1].stop - self.box[1].start)


def border(values):
    """The outermost ring of pixels, as a flat array."""
    if min(values.shape) <= 2:
        return values.ravel()
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def page_ink(gray, invert):
    """(H, W) luminance in [0, 1] -> PageInk; BlankImageError when no ink stands out of the paper."""
    if invert is None:
        # Paper is most of a picture; its border alone may be a table or a shadow.
        invert = float(np.median(gray)) > 0.5
    ink = np.float32(1.0) - gray if invert else gray
    surface, noise = _fitted_light(ink)
    if float(np.ptp(surface)) < FLAT_RANGE:
        light = np.float32(np.median(border(ink)))
        if abs(float(light) - float(surface.mean())) > FLAT_RANGE:  # the border is a table or a shadow
            light = np.float32(surface.mean())
    else:
        light = surface
    flat = ink - light
    contrast = float(flat.max())
    if contrast < MIN_CONTRAST:
        raise BlankImageError(
            f"no digit found: the ink differs from the background by {contrast:.3f} of the full range, "
            f"less than {MIN_CONTRAST} (blank picture, or the wrong --invert?)"
        )
    if contrast < CONTRAST_SIGMAS * noise:
        # A stroke is wider than a pixel and noise is not: over 3x3 pixels, the noise of a grainy
        # photo falls (by 3 where it is independent, as measured) and a stroke's ink stays.
        smooth = ndimage_module().uniform_filter(ink, 3, mode="nearest")
        smooth_contrast = float(ndimage_module().uniform_filter(flat, 3, mode="nearest").max())
        smooth_noise = _fitted_light(smooth)[1]
        if smooth_contrast < CONTRAST_SIGMAS * smooth_noise:
            raise BlankImageError(
                f"no digit found: the strongest ink ({smooth_contrast:.3f}, averaged over 3x3 pixels) is within "
                f"the picture's noise (deviation {smooth_noise:.3f} so averaged; a digit needs {CONTRAST_SIGMAS:g} "
                f"times that): a blank or noisy picture, ink everywhere, or the wrong --invert?"
            )
    flat /= np.float32(contrast)
    np.clip(flat, 0.0, 1.0, out=flat)
    return PageInk(flat, light, noise / contrast, bool(invert))


def _fitted_light(ink):
    """A quadratic surface fitted to the paper of `ink` (H, W) -> (surface (H, W) float32, noise deviation).

    Fitted on a grid of samples; ink is a one-sided outlier (brighter than the
    paper, in ink's polarity), so each round refits on the samples at most 3
    deviations above the last surface.
    """
    height, width = ink.shape
    rows = np.unique(np.linspace(0, height - 1, min(height, FIT_SAMPLES)).round().astype(int))
    cols = np.unique(np.linspace(0, width - 1, min(width, FIT_SAMPLES)).round().astype(int))
    values = ink[np.ix_(rows, cols)].astype(np.float64).ravel()
    y, x = (g.ravel() for g in np.meshgrid(_unit(rows, height), _unit(cols, width), indexing="ij"))
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    paper = values <= np.median(values)  # ink is the minority of a page: start from its lighter half
    noise = 0.0
    for _ in range(FIT_ROUNDS):
        used = design[paper]
        # Least squares by the 6x6 normal equations (lstsq's SVD costs 20 times more); lstsq
        # still answers for the degenerate grids of tiny pictures.
        try:
            coef = np.linalg.solve(used.T @ used, used.T @ values[paper])
        except np.linalg.LinAlgError:
            coef = np.linalg.lstsq(used, values[paper], rcond=None)[0]
        residual = values - design @ coef
        noise = 1.4826 * float(np.median(np.abs(residual[paper])))
        paper = residual <= 3.0 * noise + 1e-3
    ys, xs = _unit(np.arange(height), height)[:, None], _unit(np.arange(width), width)[None, :]
    surface = coef[0] + coef[1] * xs + coef[2] * ys + coef[3] * xs * xs + coef[4] * xs * ys + coef[5] * ys * ys
    return surface.astype(np.float32), noise


def _unit(index, n):
    """Pixel indices -> coordinates in [-1, 1] across a side of n pixels."""
    return (2.0 * index / max(n - 1, 1) - 1.0).astype(np.float64)


def otsu_threshold(values):
    """Otsu's threshold of values in [0, 1]: the level that best splits them into two classes."""
    counts, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts, dtype=np.float64)
    moment = np.cumsum(counts * centres)
    total, total_moment = weight[-1], moment[-1]
    below, above = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_moment * below - moment[:-1] * total) ** 2 / (below * above)
    between[~np.isfinite(between)] = -1.0
    return float(edges[1 + int(np.argmax(between))])


def ink_parts(page):
    """PageInk -> InkParts: the hysteresis-thresholded ink's connected parts."""
    ndimage = ndimage_module()
    ink = page.ink
    weak = max(BOX_THRESHOLD, WEAK_SIGMAS * page.noise)
    strong = max(otsu_threshold(ink), weak)
    labels, count = ndimage.label(ink >= weak, structure=np.ones((3, 3), bool))
    seeded = np.zeros(count + 1, bool)
    seeded[labels[ink >= strong]] = True
    seeded[0] = False
    labels = np.where(seeded[labels], labels, 0).astype(np.int32)
    index = np.flatnonzero(seeded)
    boxes = ndimage.find_objects(labels)
    masses = ndimage.sum_labels(ink, labels, index)
    height, width = ink.shape
    parts = []
    for label, mass in zip(index, masses):
        rows, cols = boxes[label - 1]
        edge = rows.start == 0 or cols.start == 0 or rows.stop == height or cols.stop == width
        parts.append(Part(int(label), (rows, cols), float(mass), edge))
    return InkParts(labels, parts, weak, strong)


def digit_sized(parts, shape):
    """The parts that are not specks; where every part is one, those not too small for a digit
    on their own (maybe none)."""
    sized = [p for p in parts if p.extent >= MIN_EXTENT * min(shape)]
    return sized or [p for p in parts if p.extent >= MIN_LONE_EXTENT * min(shape)]


def only_specks(largest, shape):
    """The error for a picture whose largest ink, `largest` pixels across, is too small for a digit."""
    return BlankImageError(
        f"no digit found: the only ink is specks, the largest {largest} pixels across, under "
        f"{MIN_LONE_EXTENT:.1%} of the picture's shorter side ({min(shape)} pixels)")


def inside(parts):
    """The parts that do not touch the border, if any do not; else all (a digit filling its crop)."""
    inner = [p for p in parts if not p.touches_border]
    return inner or list(parts)


def digit_parts(parts, shape):
    """The parts making up the one digit of a picture: the heaviest digit-sized part, preferring
    those inside the picture, with the pieces of ink near it."""
    pool = inside(digit_sized(parts, shape))
    if not parts:
        raise BlankImageError("no digit found: no ink stands clear of the picture's noise once thresholded")
    if not pool:
        raise only_specks(max(p.extent for p in parts), shape)
    main = max(pool, key=lambda p: p.mass)
    others = [p for p in (inside(parts) if not main.touches_border else parts)
              if p is not main and p.mass >= PART_FRACTION * main.mass]
    group, box = [main], main.box
    grown = True
    while grown:
        grown = False
        reach = JOIN_GAP * max(box[0].stop - box[0].start, box[1].stop - box[1].start)
        for part in list(others):
            if _gap(box, part.box) <= reach:
                group.append(part)
                others.remove(part)
                box = union_box(box, part.box)
                grown = True
    return group


def _gap(a, b):
    """The larger of the row and column gaps between two boxes (0 where they overlap)."""
    return max(max(b[i].start - a[i].stop, a[i].start - b[i].stop, 0) for i in (0, 1))


def union_box(a, b):
    return tuple(slice(min(a[i].start, b[i].start), max(a[i].stop, b[i].stop)) for i in (0, 1))


def kept_ink(page, parts, group, box=None):
    """The ink of `group`'s parts within `box` (default: their union box), with the faint edge
    the threshold leaves out: (ink crop, mask of the parts in the crop, the box)."""
    ndimage = ndimage_module()
    if box is None:
        box = group[0].box
        for part in group[1:]:
            box = union_box(box, part.box)
    extent = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
    margin = max(2, int(np.ceil(0.03 * extent)))
    height, width = page.ink.shape
    outer = (slice(max(box[0].start - margin, 0), min(box[0].stop + margin, height)),
             slice(max(box[1].start - margin, 0), min(box[1].stop + margin, width)))
    labels = parts.labels[outer]
    mask = np.isin(labels, [p.label for p in group])
    # Only inside `box`: a cut between two touching digits leaves each its own side.
    inner = np.zeros_like(mask)
    inner[box[0].start - outer[0].start:box[0].stop - outer[0].start,
          box[1].start - outer[1].start:box[1].stop - outer[1].start] = True
    mask &= inner
    # The anti-aliased or blurred edge of the strokes, under the weak threshold, stays
    # with them; other parts' ink, even there, does not.
    zone = ndimage.binary_dilation(mask, iterations=margin) & ((labels == 0) | mask)
    ink = np.where(zone, page.ink[outer], np.float32(0.0))
    return ink, mask, outer
