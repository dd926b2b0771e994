"""lenet_engine.images and digit_files: image files to MNIST digits, the conversion's steps, errors, fuzzing."""

import io
import sys

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lenet_engine as le
from conftest import require
from fuzzing import fuzz_settings, mutate, mutation_ops
from lenet_engine import images
from lenet_engine.digit_files import file_kind, read_digits
from lenet_engine.errors import (
    BlankImageError,
    CorruptImageError,
    DatasetError,
    ImageError,
    ImageTooLargeError,
    InvalidInputError,
    MissingDependencyError,
    UnsupportedImageError,
)
from lenet_engine.images import load_image, to_mnist

Image = require("PIL.Image")
ImageDraw = require("PIL.ImageDraw")

# --- drawn digits: black on white, 200x200, as a person would draw them ------------------------

STROKE = 14


def _canvas(size=200):
    image = Image.new("L", (size, size), 255)
    return image, ImageDraw.Draw(image)


def draw_zero():
    image, pen = _canvas()
    pen.ellipse((60, 30, 140, 170), outline=0, width=STROKE)
    return image


def draw_one():
    image, pen = _canvas()
    pen.line((100, 30, 100, 170), fill=0, width=STROKE)
    return image


def draw_seven():
    image, pen = _canvas()
    pen.line((55, 40, 145, 40), fill=0, width=STROKE)
    pen.line((145, 40, 85, 170), fill=0, width=STROKE)
    return image


def draw_four():
    image, pen = _canvas()
    pen.line((120, 30, 50, 120), fill=0, width=STROKE)
    pen.line((50, 120, 150, 120), fill=0, width=STROKE)
    pen.line((120, 60, 120, 175), fill=0, width=STROKE)
    return image


DRAWN = {0: draw_zero, 1: draw_one, 7: draw_seven, 4: draw_four}


def upscaled_inverted(digit, size=200):
    """An MNIST digit as a black-on-white size x size picture (bicubic enlargement)."""
    return Image.fromarray(255 - np.asarray(Image.fromarray(digit).resize((size, size), Image.BICUBIC)))


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def models():
    return {arch: le.load(arch, backend="numpy") for arch in ("classic", "modern")}


# --- the conversion ----------------------------------------------------------------------------


def test_mnist_digits_come_back_as_they_were(mnist_test):
    # MNIST was made by exactly these steps, so converting its digits again changes almost nothing.
    x = mnist_test[0][:300]
    converted = np.stack([to_mnist(d) for d in x])
    assert converted.dtype == np.uint8 and converted.shape == (300, 28, 28)
    assert np.abs(converted.astype(int) - x).mean() < 1.0


def test_upscaled_inverted_mnist_digits_are_classified_as_the_originals(mnist_test, models):
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    converted = np.stack([to_mnist(load_image(encoded(upscaled_inverted(d), "PNG"))) for d in x])
    for model in models.values():
        assert model.score(converted, y) >= 0.98
        assert np.mean(model.predict(converted) == model.predict(x)) >= 0.985


@pytest.mark.parametrize("label", sorted(DRAWN))
def test_drawn_digits_are_classified_correctly(label, models):
    digit = to_mnist(load_image(encoded(DRAWN[label](), "PNG")))
    for model in models.values():
        assert model.predict(digit)[0] == label


def test_steps_aspect_ratio_box_and_centre_of_mass():
    # A bar 3 times taller than wide, off-centre on a white page.
    page = np.full((300, 400), 255, np.uint8)
    page[30:180, 300:350] = 0
    digit = to_mnist(page)
    rows = np.flatnonzero(digit.any(axis=1))
    cols = np.flatnonzero(digit.any(axis=0))
    assert len(rows) == 20 and len(cols) == 7  # 150 x 50 -> 20 x 6.67, rounded
    assert digit.max() == 255 and digit[0].max() == 0
    mass = digit.astype(float)
    com = [(mass.sum(axis=1 - a) * np.arange(28)).sum() / mass.sum() for a in (0, 1)]
    assert np.allclose(com, 14.0, atol=0.5)


def test_small_ink_is_enlarged_and_far_off_centre_mass_stays_on_the_field():
    page = np.zeros((40, 40), np.uint8)
    page[10:13, 5:7] = 255                 # 3 x 2 pixels of ink: enlarged to 20 x 13
    digit = to_mnist(page)
    assert np.flatnonzero(digit.any(axis=1)).size == 20
    # An L whose mass sits in its long bar: centring its mass would push the foot off the field.
    page = np.zeros((140, 140), np.uint8)
    page[20:120, 20:50] = 255
    page[110:120, 20:120] = 255
    digit = to_mnist(page)
    cols = np.flatnonzero(digit.any(axis=0))
    assert cols[-1] == 27 and len(cols) == 20  # pushed back to the edge, not cut
    assert np.count_nonzero(digit.any(axis=1)) == 20


def test_polarity_is_read_from_the_border_and_can_be_forced():
    white_on_black = np.zeros((60, 50), np.uint8)
    white_on_black[10:50, 20:30] = 255
    black_on_white = 255 - white_on_black
    auto = to_mnist(white_on_black)
    np.testing.assert_array_equal(to_mnist(black_on_white), auto)
    np.testing.assert_array_equal(to_mnist(black_on_white, invert=True), auto)
    np.testing.assert_array_equal(to_mnist(white_on_black, invert=False), auto)
    # Forced the wrong way, the "ink" is the page: no darker-than-background pixel is left.
    with pytest.raises(BlankImageError, match="wrong --invert"):
        to_mnist(black_on_white, invert=False)


def test_grey_paper_and_grey_ink_are_stretched_to_full_range():
    page = np.full((80, 80), 200, np.uint8)
    page[10:70, 35:45] = 90
    digit = to_mnist(page)
    assert digit.max() == 255 and digit.min() == 0
    np.testing.assert_array_equal(digit, to_mnist(np.where(page == 90, 0, 255).astype(np.uint8)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, bool])
def test_array_dtypes_and_channels_agree(dtype):
    mask = np.zeros((50, 40), bool)
    mask[5:45, 15:25] = True
    base = to_mnist(mask)
    top = {np.uint8: 255, np.uint16: 65535, bool: True}.get(dtype, 1.0)
    gray = (mask * top).astype(dtype)
    np.testing.assert_array_equal(to_mnist(gray), base)
    np.testing.assert_array_equal(to_mnist(np.stack([gray] * 3, axis=-1)), base)
    np.testing.assert_array_equal(to_mnist(gray[..., None]), base)


@pytest.mark.parametrize("picture, message", [
    (np.zeros((10, 10), np.int64), "dtype int64"),
    (np.zeros((10, 10), complex), "dtype complex"),
    (np.full((10, 10), np.nan), "NaN"),
    (np.full((10, 10), 2.0), r"\[0, 1\]"),
    (np.zeros((10, 10, 2), np.uint8), "shape"),
    (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
    (np.zeros((0, 10), np.uint8), "no pixels"),
    ([[0, 255]], "numpy array"),
])
def test_bad_arrays_raise_invalid_input(picture, message):
    with pytest.raises(InvalidInputError, match=message):
        to_mnist(picture)


@pytest.mark.parametrize("picture", [
    np.zeros((28, 28), np.uint8), np.full((5, 5), 255, np.uint8), np.full((1, 1), 0.5),
    np.array([[0, 0, 0], [0, 20, 0], [0, 0, 0]], np.uint8),   # contrast under MIN_CONTRAST
])
def test_pictures_without_ink_raise_blank_image(picture):
    with pytest.raises(BlankImageError, match="no digit found"):
        to_mnist(picture)


# --- image files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seven():
    return draw_seven()


def test_formats_and_modes_give_the_same_digit(seven):
    want = to_mnist(load_image(encoded(seven, "PNG")))
    variants = {
        "PNG RGB": encoded(seven.convert("RGB"), "PNG"),
        "PNG palette": encoded(seven.convert("P"), "PNG"),
        "PNG 1-bit": encoded(seven.convert("1", dither=Image.Dither.NONE), "PNG"),
        "PNG 16-bit": encoded(Image.fromarray(np.asarray(seven).astype(np.uint16) * 257), "PNG"),
        "BMP": encoded(seven, "BMP"),
        "BMP RGB": encoded(seven.convert("RGB"), "BMP"),
    }
    for name, data in variants.items():
        np.testing.assert_array_equal(to_mnist(load_image(data)), want, err_msg=name)
    # JPEG is lossy: near, not equal.
    jpeg = to_mnist(load_image(encoded(seven, "JPEG", quality=90)))
    assert np.abs(jpeg.astype(int) - want).mean() < 3


def test_transparent_background_reads_as_paper(seven):
    ink = 255 - np.asarray(seven)
    for colour in (0, 255):  # dark or light strokes, on a fully transparent background
        rgba = np.zeros((200, 200, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = ink
        np.testing.assert_array_equal(
            to_mnist(load_image(encoded(Image.fromarray(rgba, "RGBA"), "PNG"))),
            to_mnist(np.asarray(seven)))
        np.testing.assert_array_equal(to_mnist(rgba), to_mnist(np.asarray(seven)))


def test_jpeg_exif_orientation_is_applied(seven):
    rotated = seven.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotated 90 degrees": a viewer turns it back
    data = encoded(rotated, "JPEG", quality=95, exif=exif)
    upright = to_mnist(load_image(encoded(seven, "JPEG", quality=95)))
    assert np.abs(to_mnist(load_image(data)).astype(int) - upright).mean() < 3


def test_load_image_from_a_path_and_bytes_agree(tmp_path, seven):
    path = tmp_path / "seven.png"
    seven.save(path)
    gray = load_image(path)
    assert gray.dtype == np.float32 and gray.shape == (200, 200) and gray.min() == 0 and gray.max() == 1
    np.testing.assert_array_equal(gray, load_image(path.read_bytes()))
    np.testing.assert_array_equal(gray, load_image(str(path)))


@pytest.mark.parametrize("data, error, message", [
    (b"", UnsupportedImageError, "not a PNG, JPEG or BMP image"),
    (b"\x89PNG\r\n\x1a\n" + bytes(30), CorruptImageError, "starts as a PNG file but its header is broken"),
    (b"BM" + bytes(60), CorruptImageError, "BMP"),
    (b"just some text, not an image", UnsupportedImageError, "not a PNG"),
    (encoded(Image.new("L", (8, 8)), "GIF"), UnsupportedImageError, "not a PNG"),
    (encoded(Image.new("L", (8, 8)), "TIFF"), UnsupportedImageError, "not a PNG"),
    (encoded(draw_seven(), "PNG")[:300], CorruptImageError, "truncated or damaged"),
    (encoded(draw_seven(), "JPEG")[:400], CorruptImageError, "truncated or damaged"),
    (encoded(draw_seven(), "BMP")[:1000], CorruptImageError, "truncated or damaged"),
])
def test_bad_image_files_raise_typed_errors(data, error, message):
    with pytest.raises(error, match=message) as info:
        load_image(data)
    assert isinstance(info.value, ImageError) and isinstance(info.value, ValueError)


def test_flipped_png_byte_is_corrupt():
    data = bytearray(encoded(draw_seven(), "PNG"))
    data[60] ^= 0x40  # inside the image data: the chunk's CRC no longer matches
    with pytest.raises(CorruptImageError):
        load_image(bytes(data))


def _png_declaring(width, height):
    """A PNG whose header declares width x height, followed by almost no data."""
    small = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    import zlib

    ihdr = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    small[12:29] = ihdr
    small[29:33] = zlib.crc32(ihdr).to_bytes(4, "big")
    return bytes(small)


def test_huge_declared_size_is_refused_before_decoding():
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError, match="more than max_pixels"):
            load_image(_png_declaring(9_000, 9_000))     # 81 megapixels: over our 25, under Pillow's limit
        with pytest.raises(ImageTooLargeError):
            load_image(_png_declaring(60_000, 60_000))   # Pillow's own decompression-bomb error
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    with pytest.raises(ImageTooLargeError, match="200x200 is 40,000 pixels"):
        load_image(encoded(draw_seven(), "PNG"), max_pixels=10_000)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "absent.png")


def test_without_pillow_the_error_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")] + ["PIL", "PIL.Image"]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: "import PIL" fails
    with pytest.raises(MissingDependencyError, match=r"lenet-engine\[images\]") as info:
        load_image(b"\x89PNG\r\n\x1a\n")
    assert isinstance(info.value, ImportError)
    # Arrays need no Pillow.
    assert to_mnist(np.eye(30, dtype=bool)).shape == (28, 28)


# --- digit files -------------------------------------------------------------------------------


def test_read_digits_recognises_files_by_content(tmp_path, mnist_test, seven):
    x = mnist_test[0][:3]
    png = tmp_path / "digit.dat"          # the name says nothing: the content decides
    seven.save(png, format="PNG")
    npy = tmp_path / "digits.bin"
    with open(npy, "wb") as f:
        np.save(f, x)
    idx = tmp_path / "digits.idx"
    idx.write_bytes(b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in x.shape) + x.tobytes())
    assert [file_kind(p) for p in (png, npy, idx)] == ["image", "npy", "idx"]
    np.testing.assert_array_equal(read_digits(png), to_mnist(np.asarray(seven)))
    np.testing.assert_array_equal(read_digits(npy), x)
    np.testing.assert_array_equal(read_digits(idx), x)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UnsupportedImageError, match="not a PNG, JPEG or BMP image, a .npy array or an IDX file"):
        read_digits(text)


def test_read_digits_errors_name_the_file(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    with pytest.raises(BlankImageError, match="blank.png: no digit found"):
        read_digits(blank)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="objects.npy: not a readable .npy array"):
        read_digits(pickled)
    cut = tmp_path / "cut.npy"
    np.save(cut, np.zeros((5, 28, 28), np.uint8))
    cut.write_bytes(cut.read_bytes()[:500])
    with pytest.raises(InvalidInputError, match="cut.npy: not a readable .npy array"):
        read_digits(cut)
    idx = tmp_path / "bad.idx"
    idx.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DatasetError, match="truncated IDX header"):
        read_digits(idx)


# --- fuzzing -----------------------------------------------------------------------------------


def _seed_images():
    """Small valid files of every accepted format and a few modes: the fuzzer's starting points."""
    rng = np.random.default_rng(0)
    gray = Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (9, 11, 4), dtype=np.uint8), "RGBA")
    return [
        encoded(gray, "PNG"),
        encoded(rgba, "PNG"),
        encoded(gray.convert("P"), "PNG"),
        encoded(gray, "JPEG", quality=80),
        encoded(rgba.convert("RGB"), "JPEG", quality=80, progressive=True),
        encoded(gray, "BMP"),
        encoded(rgba, "BMP"),
        encoded(gray.convert("1"), "BMP"),
    ]


SEEDS = _seed_images()
# What load_image may raise on bad content: one class per kind of problem.
IMAGE_ERRORS = (UnsupportedImageError, CorruptImageError, ImageTooLargeError)
FUZZ_MAX_PIXELS = 2**20  # keeps each case fast; the default limit is tested above


def _load_or_refuse(data):
    try:
        gray = load_image(data, max_pixels=FUZZ_MAX_PIXELS)
    except ImageError as exc:
        assert type(exc) in IMAGE_ERRORS, exc
        event(type(exc).__name__)
        return
    event("loaded")
    assert gray.dtype == np.float32 and gray.ndim == 2 and gray.size > 0
    assert np.isfinite(gray).all() and gray.min() >= 0 and gray.max() <= 1
    try:
        digit = to_mnist(gray)
    except BlankImageError:
        return
    assert digit.dtype == np.uint8 and digit.shape == (28, 28) and digit.max() == 255


# Pillow warns about headers declaring over 89 megapixels before load_image refuses them itself.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@fuzz_settings(2.0)
@given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation_ops(b"\x00\xff\x08\x01IDATPNG"), min_size=1, max_size=4))
def test_fuzz_mutated_image_files(seed, ops):
    _load_or_refuse(mutate(seed, ops))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@fuzz_settings(0.5)
@given(seed=st.sampled_from(SEEDS), keep=st.integers(2, 80), body=st.binary(max_size=200))
def test_fuzz_random_bytes_after_a_valid_start(seed, keep, body):
    # A real header (or part of one), then garbage: the decoders, not just the format probes, see it.
    _load_or_refuse(seed[:keep] + body)


_SHAPES = hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=40)
_PICTURES = (
    hnp.arrays(st.sampled_from([np.uint8, np.uint16, bool]), _SHAPES)
    | hnp.arrays(st.sampled_from([np.float32, np.float64]), _SHAPES, elements=st.floats(0, 1, width=32))
    | hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=60))
)


@fuzz_settings(0.4)
@given(picture=_PICTURES)
def test_fuzz_to_mnist_arrays(picture):
    try:
        digit = to_mnist(picture)
    except BlankImageError:
        return
    except InvalidInputError:
        assert picture.ndim == 3 and picture.shape[2] not in (1, 3, 4)
        return
    assert digit.dtype == np.uint8 and digit.shape == (28, 28) and digit.max() == 255
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= images.BOX_SIZE
