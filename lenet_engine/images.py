"""Pictures of digits -> MNIST digits: `load_image` reads a PNG, JPEG or BMP file, `to_mnist` converts.

    gray = load_image("digit.png")    # (H, W) float32 luminance in [0, 1], 1 = white
    digit = to_mnist(gray)            # (28, 28) uint8, 0 = background, 255 = ink
    model.predict(digit)

`to_mnist` prepares any picture of one digit the way MNIST's digits were made:
ink as high values (the polarity read from the picture's border unless `invert`
says), the ink's bounding box fitted into 20x20 keeping its aspect ratio with
an anti-aliasing filter, then placed in a 28x28 field so that its centre of mass
sits at the field's centre. It needs NumPy only; `load_image` needs Pillow (the
`[images]` extra), imported on first use. Called by lenet_engine.digit_files
(the command line's `predict` and `visualize`).

Errors: InvalidInputError for arrays to_mnist cannot take, and for image files
UnsupportedImageError (not PNG/JPEG/BMP), CorruptImageError (truncated or
damaged), ImageTooLargeError (more than `max_pixels`), BlankImageError (no ink).
"""

import contextlib
import io

import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.errors import (
    BlankImageError,
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)
from lenet_engine.inputs import DIGIT_SIZE
from lenet_engine.io.sources import describe_source

__all__ = ["FORMATS", "MAX_PIXELS", "load_image", "to_mnist"]

FORMATS = ("PNG", "JPEG", "BMP")
# How files of each format begin.
SIGNATURES = {"PNG": b"\x89PNG\r\n\x1a\n", "JPEG": b"\xff\xd8\xff", "BMP": b"BM"}
# 25 megapixels: a phone photo fits; the float32 copy then costs 100 MB at most.
MAX_PIXELS = 25_000_000
BOX_SIZE = 20  # MNIST fits each digit's bounding box into 20x20 before centring it in 28x28
# Ink must differ from the background by this fraction of the full range to count as a digit.
MIN_CONTRAST = 0.1
# Pixels at least this far (as a fraction of the ink's contrast) from the background bound the digit.
BOX_THRESHOLD = 0.25


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
        except Exception as exc:  # noqa: BLE001 - decoders report damage as OSError, SyntaxError, ValueError, ...
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
    except Exception as exc:  # noqa: BLE001 - format probes raise OSError, ValueError, struct.error, ... on bad headers
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


def to_mnist(image, *, invert=None):
    """A picture of one digit -> (28, 28) uint8 MNIST digit (0 = background, 255 = ink).

    image: (H, W) grayscale or (H, W, 3|4) RGB(A), as uint8, uint16, bool or
    float in [0, 1]; any size. Steps, as MNIST was made:
      1. ink as high values: inverted when the picture's border is light (a
         dark digit on white paper); `invert=True` / `False` forces it;
      2. the background level (the border's median) is taken off and the ink
         stretched to full range; a picture whose ink differs from its
         background by less than MIN_CONTRAST raises BlankImageError;
      3. the bounding box of the ink is resampled, keeping its aspect ratio,
         so its longer side is 20 pixels (a triangle filter as wide as the
         reduction, so strokes are averaged, not skipped);
      4. the result is placed in 28x28 with its centre of mass at the centre
         (moved less if the full shift would push ink off the field).
    """
    ink = _ink(_gray(image), invert)
    rows, cols = _ink_box(ink)
    box = ink[rows[0]:rows[1], cols[0]:cols[1]]
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


def _border(values):
    """The outermost ring of pixels, as a flat array."""
    if min(values.shape) <= 2:
        return values.ravel()
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def _ink(gray, invert):
    """(H, W) luminance -> ink in [0, 1], 0 = background, 1 = the strongest ink."""
    if invert is None:
        invert = float(np.median(_border(gray))) > 0.5
    ink = np.float32(1.0) - gray if invert else gray
    background = float(np.median(_border(ink)))
    contrast = float(ink.max()) - background
    if contrast < MIN_CONTRAST:
        raise BlankImageError(
            f"no digit found: the ink differs from the background by {contrast:.3f} of the full range, "
            f"less than {MIN_CONTRAST} (blank picture, or the wrong --invert?)"
        )
    return np.clip((ink - np.float32(background)) / np.float32(contrast), 0.0, 1.0)


def _ink_box(ink):
    """(row begin, end), (column begin, end) of the pixels that are clearly ink."""
    strong = ink >= BOX_THRESHOLD
    rows = np.flatnonzero(strong.any(axis=1))
    cols = np.flatnonzero(strong.any(axis=0))
    return (rows[0], rows[-1] + 1), (cols[0], cols[-1] + 1)


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
