"""Files of digits, whatever their kind: PNG/JPEG/BMP images, .npy arrays and IDX files.

`read_digits(path)` recognises the kind by the file's first bytes (not its
name) and returns the digits it holds, ready for a model. The command line's
`predict` and `visualize` call it; Python callers can too.
"""

import os

import numpy as np

from lenet_engine.datasets import read_idx
from lenet_engine.errors import BlankImageError, InvalidInputError, UnsupportedImageError
from lenet_engine.images import SIGNATURES, load_image, to_mnist

__all__ = ["read_digits", "file_kind"]

_MAGIC = (
    *((signature, "image") for signature in SIGNATURES.values()),
    (b"\x93NUMPY", "npy"),
    (b"\x00\x00\x08", "idx"),     # IDX of unsigned bytes
    (b"\x1f\x8b", "idx"),         # gzipped, as MNIST is distributed
)


def file_kind(path):
    """"image", "npy" or "idx" from the file's first bytes; UnsupportedImageError for anything else."""
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    raise UnsupportedImageError(
        f"{os.fspath(path)}: not a PNG, JPEG or BMP image, a .npy array or an IDX file "
        f"(recognised by their first bytes, not by the file name)"
    )


def read_digits(path, *, invert=None):
    """The digits a file holds: (N, 28, 28) or (28, 28) as the model takes them (see LeNet5.predict).

    An image holds one digit, converted with images.to_mnist (`invert` as there);
    a .npy file holds an array of digits, memory-mapped so that a large one is
    read chunk by chunk as the model predicts; an IDX file (raw or gzipped) holds
    what its header declares. Shapes and dtypes are checked by the model, not here.

    Raises the errors of images.load_image and to_mnist for images, DatasetError
    subclasses for IDX files, InvalidInputError for a .npy file that cannot be
    read (or holds Python objects, which are never unpickled), and
    UnsupportedImageError for any other kind of file.
    """
    kind = file_kind(path)
    if kind == "image":
        try:
            return to_mnist(load_image(path), invert=invert)
        except BlankImageError as exc:
            raise BlankImageError(f"{os.fspath(path)}: {exc}") from None
    if kind == "idx":
        return read_idx(path)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise InvalidInputError(f"{os.fspath(path)}: not a readable .npy array ({exc})") from exc
