"""Pictures of digits -> MNIST digits: `load_image` reads a PNG, JPEG or BMP file, `to_mnist` converts,
`split_digits` finds the digits of a row (a number) and converts each.

    gray = load_image("digit.png")    # (H, W) float32 luminance in [0, 1], 1 = white
    digit = to_mnist(gray)            # (28, 28) uint8, 0 = background, 255 = ink
    model.predict(digit)
    digits = split_digits(load_image("amount.jpg"))   # (N, 28, 28), left to right

`to_mnist` takes a photo as well as a clean picture: the paper's uneven light
is flattened, the ink thresholded and its connected parts found
(lenet_engine.photos.prep), specks and page edges dropped, and only then is the
digit prepared the way MNIST's digits were made: its ink's bounding box fitted
into 20x20 keeping its aspect ratio with an anti-aliasing filter, then placed
in a 28x28 field so that its centre of mass sits at the field's centre.
`to_mnist(..., debug=True)` also returns every stage as a picture
(lenet_engine.photos.steps). Arrays need NumPy and SciPy, `load_image` Pillow
(both in the `[images]` extra), imported on first use. Called by
lenet_engine.digit_files (the command line's `predict` and `visualize`) and
LeNet5.predict_number.

Errors: InvalidInputError for arrays to_mnist cannot take, and for image files
UnsupportedImageError (not PNG/JPEG/BMP), CorruptImageError (truncated or
damaged), ImageTooLargeError (more than `max_pixels`), BlankImageError (no ink,
ink no stronger than the picture's noise, or ink everywhere).
"""

import contextlib
import io

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import (
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)
from lenet_engine.inputs import DIGIT_SIZE
from lenet_engine.io.sources import describe_source
from lenet_engine.photos.prep import BOX_THRESHOLD, MIN_CONTRAST, digit_parts, ink_parts, kept_ink, page_ink

__all__ = ["BOX_SIZE", "BOX_THRESHOLD", "FORMATS", "MAX_PIXELS", "MIN_CONTRAST", "load_image", "mnist_field",
           "split_digits", "to_mnist"]

FORMATS = ("PNG", "JPEG", "BMP")
# How files of each format begin.
SIGNATURES = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff", "BMP": b"BM"}
# 25 megapixels: a phone photo fits; the float32 copy then costs 100 MB at most.
MAX_PIXELS = 25_000_000
BOX_SIZE = 20  # MNIST fits each digit's bounding box into 20x20 before centring it in 28x28
# MIN_CONTRAST and BOX_THRESHOLD (imported above) are photos.prep's: the ink a digit needs, and
# the fraction of its contrast a pixel needs to bound the digit.


# --------------------------------------------------------------- image files


def load_image(source, *, max_pixels=MAX_PIXELS):
    """A PNG, JPEG or BMP image -> (H, W) float32 luminance in [0, 1], 1 = white.

    `source` is a path or the file's bytes. Colour is reduced to luminance
    (ITU-R 601 weights, as Pillow's "L" mode); transparent pixels are laid over
    the shade that contrasts with the opaque ones, so a dark digit on a
    transparent background reads as dark on white; a JPEG's EXIF orientation
    is applied. The format is recognised by content, not by the file name.
    """
    image_module, image_ops = _pillow()
    name = describe_source(source, "image data")
    if isinstance(source, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(bytes(source))
    else:
        fp = open(source, "rb")  # a missing file or a permission problem raises OSError here, as open() does
    with fp, _opened(image_module, fp, name) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{name}: {width}x{height} is {width * height:,} pixels, more than max_pixels={max_pixels:,}"
            )
        try:
            pixels, alpha = _decoded(image, image_ops)
        except (image_module.DecompressionBombError, image_module.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"{name}: {exc}") from None
        except Exception as exc:
            raise CorruptImageError(f"{name}: truncated or damaged image data ({type(exc).__name__}: {exc})") from exc
    if pixels.size == 0:
        raise CorruptImageError(f"{name}: the image has no pixels ({width}x{height})")
    return _composited(pixels, alpha).astype(np.float32)


@contextlib.contextmanager
def _opened(image_module, fp, name):
    """Image.open(fp) restricted to FORMATS, its failures turned into ImageError subclasses."""
    try:
        image = image_module.open(fp, formats=FORMATS)
    except image_module.UnidentifiedImageError:
        fp.seek(0)
        head = fp.read(8)
        claimed = [fmt for fmt, signature in SIGNATURES.items() if head.startswith(signature)]
        if claimed:  # Pillow's probe failed on a file that does start like one of ours: a broken header
            raise CorruptImageError(f"{name}: starts as a {claimed[0]} file but its header is broken") from None
        raise UnsupportedImageError(f"{name}: not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image") from None
    except (image_module.DecompressionBombError, image_module.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from None
    except Exception as exc:
        raise CorruptImageError(f"{name}: cannot read the image header ({type(exc).__name__}: {exc})") from exc
    with image:
        yield image


def _pillow():
    image = import_optional("PIL.Image", "images", "reading image files")
    return image, import_optional("PIL.ImageOps", "images", "reading image files")


def _decoded(image, image_ops):
    """Decode `image` -> (luminance (H, W) float32 in [0, 1], alpha (H, W) float32 in [0, 1] or None)."""
    image = image_ops.exif_transpose(image)
    if image.mode.startswith("I"):  # 16-bit or 32-bit grayscale PNG: scale, do not clip at 255
        values = np.asarray(image, dtype=np.float32)
        return np.clip(values / 65535.0, 0.0, 1.0), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return _luminance(rgba[..., :3]), rgba[..., 3]
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0, None


def _luminance(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=rgb.dtype)


def _composited(gray, alpha):
    """Lay `gray` with opacity `alpha` over white if its opaque part is dark, over black if it is light."""
    if alpha is None or (alpha >= 1.0).all():
        return gray
    weight = float(alpha.sum())
    if weight == 0.0:  # fully transparent: nothing drawn
        return np.ones_like(gray)
    background = 1.0 if float((gray * alpha).sum()) / weight < 0.5 else 0.0
    return alpha * gray + (1.0 - alpha) * background


# ------------------------------------------------------------ MNIST digits


def to_mnist(image, *, invert=None, debug=False):
    """A picture of one digit -> (28, 28) uint8 MNIST digit (0 = background, 255 = ink).

    image: (H, W) grayscale or (H, W, 3|4) RGB(A), as uint8, uint16, bool or
    float in [0, 1]; any size: a clean drawing, a scan or a phone photo. Steps:
      1. ink as high values: inverted when most of the picture is light (a
         dark digit on white paper); `invert=True` / `False` forces it;
      2. the paper's light, fitted as a smooth surface, is taken off (a flat
         page's level is its border's median) and the ink stretched to full
         range; BlankImageError when the ink differs from the paper by less
         than MIN_CONTRAST or does not stand clear of the paper's noise (a
         blank page, or ink everywhere);
      3. ink is thresholded (weak threshold BOX_THRESHOLD, parts seeded by
         Otsu's threshold) into connected parts; the digit is the heaviest
         part of digit size inside the picture with the pieces near it:
         specks, page edges and margins' shadows are left out;
      4. MNIST's steps: the digit's bounding box is resampled, keeping its
         aspect ratio, so its longer side is 20 pixels (a triangle filter as
         wide as the reduction, so strokes are averaged, not skipped);
      5. the result is placed in 28x28 with its centre of mass at the centre
         (moved less if the full shift would push ink off the field).
    debug=True returns (digit, steps): a PrepSteps holding each stage as a
    picture (`steps.save("steps.png")`, needs matplotlib).
    """
    gray = _gray(image)
    page = page_ink(gray, invert)
    parts = ink_parts(page)
    group = digit_parts(parts.parts, gray.shape)
    ink, mask, _ = kept_ink(page, parts, group)
    digit = mnist_field(ink, mask)
    if not debug:
        return digit
    from lenet_engine.photos.steps import PrepSteps

    return digit, PrepSteps.of_digit(gray, page, parts, group, ink, mask, digit)


def split_digits(image, *, invert=None, boxes=False, debug=False):
    """The digits written in a row on a picture (a number), left to right: (N, 28, 28) uint8.

    The picture is prepared as by to_mnist; its ink's connected parts are
    grouped into digits (pieces one above the other are one digit's strokes),
    specks and page edges dropped, and a group as wide as two or more digits
    cut where its ink is thinnest. Each digit is then placed in 28x28 as
    MNIST's were. boxes=True returns (digits, boxes): boxes (N, 4) int64, each
    digit's (top, left, bottom, right) pixels on the picture, bottom and right
    exclusive. BlankImageError when the picture holds no digit. debug=True
    appends a PrepSteps of the stages to what is returned, as for to_mnist.
    """
    from lenet_engine.photos.rows import row_digits

    gray = _gray(image)
    page = page_ink(gray, invert)
    parts = ink_parts(page)
    digits, found = [], []
    groups = row_digits(page, parts)
    for group, box in groups:
        ink, mask, outer = kept_ink(page, parts, group, box)
        digits.append(mnist_field(ink, mask))
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        found.append((outer[0].start + rows[0], outer[1].start + cols[0],
                      outer[0].start + rows[-1] + 1, outer[1].start + cols[-1] + 1))
    digits, found = np.stack(digits), np.array(found, dtype=np.int64)
    result = (digits, found) if boxes else (digits,)
    if debug:
        from lenet_engine.photos.steps import PrepSteps

        result += (PrepSteps.of_row(gray, page, parts, [g for g, _ in groups], digits, found),)
    return result if len(result) > 1 else digits


def mnist_field(ink, mask):
    """MNIST's own steps: the box of `mask`'s pixels of `ink` (float, 0 = paper) resampled so its
    longer side is BOX_SIZE, then centred by mass in a 28x28 uint8 field."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = box.shape
    scale = BOX_SIZE / max(height, width)
    out_h, out_w = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = (_resample_matrix(height, out_h) @ box @ _resample_matrix(width, out_w).T).astype(np.float64)
    small /= small.max()
    return _centred(small)


def _gray(image):
    """Any accepted picture array -> (H, W) float32 luminance in [0, 1]."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"the picture must be a numpy array, got {type(image).__name__}")
    kind = image.dtype.kind
    # float32 throughout: a 25-megapixel picture then costs 100 MB per copy, not 200.
    if image.dtype == np.uint8:
        values = image.astype(np.float32) / np.float32(255.0)
    elif image.dtype == np.uint16:
        values = image.astype(np.float32) / np.float32(65535.0)
    elif kind == "b":
        values = image.astype(np.float32)
    elif kind == "f":
        if not np.isfinite(image).all():
            raise InvalidInputError("the picture contains NaN or infinite values")
        if image.size and (image.min() < 0.0 or image.max() > 1.0):
            raise InvalidInputError(
                f"float pictures must lie in [0, 1], got [{image.min():.6g}, {image.max():.6g}]")
        values = image.astype(np.float32)
    else:
        raise InvalidInputError(f"picture dtype {image.dtype} is not supported: use uint8, uint16, bool or float")
    if values.ndim == 3 and values.shape[2] in (1, 3, 4):
        channels = values.shape[2]
        if channels == 1:
            values = values[..., 0]
        elif channels == 3:
            values = _luminance(values)
        else:
            values = _composited(_luminance(values[..., :3]), values[..., 3])
    if values.ndim != 2:
        raise InvalidInputError(f"a picture is (H, W) or (H, W, 1|3|4), got shape {image.shape}")
    if values.size == 0:
        raise InvalidInputError(f"the picture has no pixels (shape {image.shape})")
    return values


def _resample_matrix(n_in, n_out):
    """(n_out, n_in) weights taking n_in samples to n_out with a triangle filter; rows sum to 1.

    Each output pixel averages the input pixels under a tent centred on it, as
    wide as one output pixel in input pixels (at least one input pixel), so a
    reduction weighs every input pixel and an enlargement interpolates linearly.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    positions = np.arange(n_in) + 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(positions[None, :] - centres[:, None]) / support)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _centred(small):
    """Place (h, w) ink, h, w <= 20, in a 28x28 uint8 field with its centre of mass at the centre."""
    height, width = small.shape
    mass = small.sum()
    com_row = float((small.sum(axis=1) * np.arange(height)).sum() / mass)
    com_col = float((small.sum(axis=0) * np.arange(width)).sum() / mass)
    # MNIST's centres of mass sit on pixel (14, 14), not between pixels 13 and 14:
    # over its 10,000 test digits they average (13.99, 14.01), spread +-0.29.
    centre = DIGIT_SIZE / 2
    # Where the box's top-left corner goes; clamped so the whole box stays on the field.
    top = min(max(round(centre - com_row), 0), DIGIT_SIZE - height)
    left = min(max(round(centre - com_col), 0), DIGIT_SIZE - width)
    field = np.zeros((DIGIT_SIZE, DIGIT_SIZE), dtype=np.uint8)
    field[top:top + height, left:left + width] = np.rint(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8)
    return field
