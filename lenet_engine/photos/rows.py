"""The digits of a row on a page (a number, an amount): which ink parts make each digit, left to right.

    for group, box in row_digits(page, parts): ...   # page, parts from lenet_engine.photos.prep

A digit may be several connected parts (a stroke lifted, a faint joint lost
to the threshold) and two digits may touch. Parts are grouped by the columns
they span: a part sharing at least half its width with a group's columns
joins it (pieces above one another are one digit's strokes). Groups much
shorter than the tallest are specks, dots or dashes and are dropped. A group
wider than SPLIT_ASPECT times its height is cut into as many typical digits
as its width holds, at the columns where its ink is thinnest near equal
spacing, if each cut crosses a joint (not a digit's body) and every piece is
then as tall as a digit. Used by images.split_digits.
"""

from itertools import pairwise

import numpy as np

from lenet_engine.errors import BlankImageError
from lenet_engine.photos.prep import MIN_LONE_EXTENT, digit_sized, ndimage_module, only_specks, union_box

# A part joins a group whose columns cover this fraction of the narrower of the two.
COLUMN_OVERLAP = 0.5
# Groups shorter than this fraction of the tallest are not digits.
MIN_HEIGHT = 0.4
# A group under this fraction of the row's median height is a piece of a neighbour when no
# more than FRAGMENT_GAP of that height away from it.
FRAGMENT_HEIGHT = 0.6
FRAGMENT_GAP = 0.1
# A group wider than this times its height may be touching digits (MNIST's widest digits
# are about as wide as tall).
SPLIT_ASPECT = 1.3
# A typical digit is this wide for its height (MNIST's median, 1s left out), and each
# piece cut from touching digits is at least PIECE_HEIGHT of their height tall.
TYPICAL_ASPECT = 0.75
PIECE_HEIGHT = 0.6
# Touching digits meet in a joint: a cut crosses at most this many strokes' width of ink
# (a cut through one digit crosses two strokes or more: both sides of a 0, a 2's arc and base).
CUT_STROKES = 1.5
# A cut is searched for within this fraction of a digit's width of its equal-spacing place.
CUT_WINDOW = 0.3


def row_digits(page, parts):
    """[(parts of one digit, (row slice, column slice) of it)] left to right; BlankImageError if none."""
    pool = parts.parts
    if any(not p.touches_border for p in digit_sized(pool, page.ink.shape)):
        pool = [p for p in pool if not p.touches_border]  # page edges and margins' shadows
    groups = []  # [parts, box]
    for part in sorted(pool, key=lambda p: -p.mass):
        for group in groups:
            if _column_overlap(group[1][1], part.box[1]) >= COLUMN_OVERLAP:
                group[0].append(part)
                group[1] = union_box(group[1], part.box)
                break
        else:
            groups.append([[part], part.box])
    if not groups:
        raise BlankImageError("no digit found on the page")
    largest = max(max(_height(box), _width(box)) for _, box in groups)
    if largest < MIN_LONE_EXTENT * min(page.ink.shape):
        raise only_specks(largest, page.ink.shape)
    tallest = max(_height(box) for _, box in groups)
    groups = sorted((g for g in groups if _height(g[1]) >= MIN_HEIGHT * tallest), key=lambda g: g[1][1].start)
    groups = _fragments_joined(groups)
    found = []
    for group, box in groups:
        pieces = _cut(parts.labels, group, box) if _width(box) > SPLIT_ASPECT * _height(box) else None
        found += [(group, piece) for piece in pieces] if pieces else [(group, box)]
    return found


def _fragments_joined(groups):
    """Groups (left to right) with each fragment, a group under FRAGMENT_HEIGHT of the median
    height, joined to the neighbour it is nearest in columns (a stroke drawn apart sideways)."""
    median = float(np.median([_height(box) for _, box in groups]))
    joined = [list(g) for g in groups]
    i = 0
    while len(joined) > 1 and i < len(joined):
        parts, box = joined[i]
        if _height(box) >= FRAGMENT_HEIGHT * median:
            i += 1
            continue
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(joined)]
        j = min(neighbours, key=lambda j: _column_gap(joined[j][1][1], box[1]))
        if _column_gap(joined[j][1][1], box[1]) > FRAGMENT_GAP * median:
            i += 1
            continue
        joined[j] = [joined[j][0] + parts, union_box(joined[j][1], box)]
        del joined[i]
        i = min(i, j)
    return [tuple(g) for g in joined]


def _column_gap(a, b):
    """Columns between two column slices (negative where they overlap)."""
    return max(a.start, b.start) - min(a.stop, b.stop)


def _cut(labels, group, box):
    """`box` cut into as many boxes as typical digits fit in its width, at the columns where the
    group's ink is thinnest near equal spacing; None when a piece would not be a digit (its ink
    under PIECE_HEIGHT of the group's height: the bar of a wide 5, a 7's flag)."""
    mask = np.isin(labels[box], [p.label for p in group])
    height, width = mask.shape
    count = round(width / (TYPICAL_ASPECT * height))
    if count < 2:
        return None
    thickness = mask.sum(axis=0)
    stroke = _stroke_width(mask)
    step = width / count
    window = max(1, int(CUT_WINDOW * step))
    cuts = [0]
    for k in range(1, count):
        centre = round(k * step)
        low, high = max(cuts[-1] + 1, centre - window), min(width - 1, centre + window)
        if high < low:
            return None
        cut = low + int(np.argmin(thickness[low:high + 1]))
        if thickness[cut] > CUT_STROKES * stroke:  # through a digit's loop or body, not a joint
            return None
        cuts.append(cut)
    cuts.append(width)
    for a, b in pairwise(cuts):
        rows = np.flatnonzero(mask[:, a:b].any(axis=1))
        if not len(rows) or rows[-1] + 1 - rows[0] < PIECE_HEIGHT * height:
            return None
    start = box[1].start
    return [(box[0], slice(start + a, start + b)) for a, b in pairwise(cuts)]


def _stroke_width(mask):
    """The strokes' mean width: twice the area over the outline's length."""
    outline = np.count_nonzero(mask & ~ndimage_module().binary_erosion(mask))
    return 2.0 * np.count_nonzero(mask) / max(outline, 1)


def _column_overlap(a, b):
    """Columns shared by two column slices, as a fraction of the narrower one."""
    shared = min(a.stop, b.stop) - max(a.start, b.start)
    return max(shared, 0) / max(1, min(a.stop - a.start, b.stop - b.start))


def _height(box):
    return box[0].stop - box[0].start


def _width(box):
    return box[1].stop - box[1].start
