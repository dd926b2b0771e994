"""Synthetic photos of digits on paper: what a phone or a scanner makes of a handwritten page.

    rng = np.random.default_rng(0)
    page = photo_page(mnist_digit, rng, Photo(gradient=40, noise=6, jpeg=85))
    page, boxes = number_page([d1, d2, d3], rng, Photo(noise=6))
    page = typeset_page(7, rng, font_path)

Each page is (H, W) uint8, dark ink on light paper. MNIST digits are enlarged
(bicubic) and drawn as ink of a grey level on paper of another; then the
`Photo` conditions apply, in the order a camera applies them: light falling
off across the page in a random direction (multiplicative, as light is),
optical blur, sensor noise, JPEG compression. The tests and
benchmarks/photo_accuracy.py measure `to_mnist` and `split_digits` on these
pages; they need Pillow (the `[images]` extra).
"""

import io
from dataclasses import dataclass

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import InvalidInputError

__all__ = ["Photo", "font_paths", "number_page", "photo_page", "typeset_page"]

PAPER = 220   # grey level of well-lit paper
INK = 80      # grey level of pencil or ballpoint ink on it, as a phone sees it


@dataclass(frozen=True)
class Photo:
    """How a page is photographed; 0 or None turns a condition off.

    gradient: grey levels the paper loses from its brightest to its darkest
      corner, along a random direction.
    noise: standard deviation of Gaussian sensor noise, in grey levels.
    blur: standard deviation in pixels of a Gaussian optical blur.
    jpeg: JPEG quality the page is compressed at (and decoded back).
    """

    gradient: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    jpeg: int | None = None


def _pil():
    return import_optional("PIL.Image", "images", "drawing synthetic pages")


def _enlarged(digit, size):
    """A (28, 28) uint8 MNIST digit enlarged to size x size, as ink in [0, 1]."""
    image = _pil()
    big = image.fromarray(np.ascontiguousarray(digit, dtype=np.uint8)).resize((size, size), image.BICUBIC)
    return np.asarray(big, dtype=np.float64) / 255.0


def photo_page(digit, rng, photo=Photo(), *, shape=(200, 240), digit_size=140):
    """One MNIST digit enlarged to `digit_size` pixels, placed off-centre on a `shape` page, photographed."""
    ink = np.zeros(shape)
    top = int(rng.integers(0, shape[0] - digit_size + 1))
    left = int(rng.integers(0, shape[1] - digit_size + 1))
    ink[top:top + digit_size, left:left + digit_size] = _enlarged(digit, digit_size)
    return photographed(ink, rng, photo)


def number_page(digits, rng, photo=Photo(), *, digit_size=90, gap=(-0.05, 0.5), margin=40):
    """A row of MNIST digits, left to right, with gaps drawn from `gap` (fractions of `digit_size`).

    MNIST digits fill 20 of their 28 pixels, so a gap of -0.05 leaves the ink of
    neighbours nearly touching. Each digit also moves up or down by up to 8% of
    its size, as handwriting does. Returns (page, boxes): boxes are the (top,
    left, bottom, right) pixels where each digit's 28x28 field was drawn.
    """
    field = digit_size * 20 // 28  # the ink's extent inside the enlarged field
    # The enlarged fields reach (digit_size - field) / 2 past the ink, and move by digit_size // 12.
    least = max((digit_size - field) // 2, digit_size // 12)
    if margin < least:
        raise InvalidInputError(f"number_page: margin {margin} is too small for digit_size {digit_size}: "
                                f"the digits' fields need at least {least} pixels")
    spacing = [0.0] + [float(rng.uniform(*gap)) * digit_size for _ in digits[1:]]
    lefts = np.cumsum([s + (field if i else 0) for i, s in enumerate(spacing)]).astype(int) + margin
    width = int(lefts[-1]) + field + 2 * margin
    height = digit_size + 2 * margin
    ink = np.zeros((height, width))
    boxes = []
    for digit, left in zip(digits, lefts):
        top = margin + int(rng.integers(-digit_size // 12, digit_size // 12 + 1))
        x0 = int(left) - (digit_size - field) // 2
        region = ink[top:top + digit_size, x0:x0 + digit_size]
        np.maximum(region, _enlarged(digit, digit_size), out=region)
        boxes.append((top, x0, top + digit_size, x0 + digit_size))
    return photographed(ink, rng, photo), boxes


def font_paths():
    """TrueType faces to typeset digits with: the DejaVu faces matplotlib ships, when it is installed."""
    try:
        import matplotlib
    except ImportError:
        return []
    from pathlib import Path

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(str(p) for p in folder.glob("DejaVu*.ttf") if "Display" not in p.name)


def typeset_page(label, rng, font_path, photo=Photo(), *, shape=(200, 240), height=120):
    """The digit `label` typeset in `font_path`, about `height` pixels tall, rotated up to 6 degrees, off-centre."""
    image = _pil()
    font_module = import_optional("PIL.ImageFont", "images", "drawing synthetic pages")
    draw_module = import_optional("PIL.ImageDraw", "images", "drawing synthetic pages")
    font = font_module.truetype(font_path, size=int(height * 1.35))
    glyph = image.new("L", (2 * height, 2 * height), 0)
    draw_module.Draw(glyph).text((height, height), str(label), fill=255, font=font, anchor="mm")
    glyph = glyph.rotate(float(rng.uniform(-6, 6)), resample=image.BICUBIC)
    glyph = glyph.crop(glyph.getbbox())
    ink = np.zeros(shape)
    h, w = glyph.size[1], glyph.size[0]
    top = int(rng.integers(10, shape[0] - h - 10 + 1))
    left = int(rng.integers(10, shape[1] - w - 10 + 1))
    ink[top:top + h, left:left + w] = np.asarray(glyph, dtype=np.float64) / 255.0
    return photographed(ink, rng, photo)


def photographed(ink, rng, photo):
    """Ink in [0, 1] on a page -> (H, W) uint8 photo of it under `photo`'s conditions."""
    page = PAPER - (PAPER - INK) * ink
    if photo.gradient:
        angle = rng.uniform(0, 2 * np.pi)
        rows, cols = np.mgrid[0:ink.shape[0], 0:ink.shape[1]]
        ramp = rows * np.sin(angle) + cols * np.cos(angle)
        ramp = (ramp - ramp.min()) / np.ptp(ramp)
        page = page * (1.0 - photo.gradient / PAPER * ramp)
    if photo.blur:
        ndimage = import_optional("scipy.ndimage", "images", "drawing synthetic pages")
        page = ndimage.gaussian_filter(page, photo.blur)
    if photo.noise:
        page = page + rng.normal(0.0, photo.noise, page.shape)
    page = np.clip(np.rint(page), 0, 255).astype(np.uint8)
    if photo.jpeg:
        image = _pil()
        buffer = io.BytesIO()
        image.fromarray(page).save(buffer, format="JPEG", quality=int(photo.jpeg))
        page = np.asarray(image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    return page
