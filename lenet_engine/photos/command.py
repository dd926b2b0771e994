"""The command line's photo options of `predict`: `--number` (read a row of digits) and `--show-steps DIR`.

    lenet-engine predict --number amount.jpg            # prints 2026 (a "?" for each unsure digit)
    lenet-engine predict --number --json a.jpg b.png    # per digit: label, probabilities, box, unsure
    lenet-engine predict --show-steps steps/ seven.jpg  # steps/seven-steps.png: each stage as a picture

Called by lenet_engine.cli's cmd_predict. Notes go to stderr, so that stdout
holds only the numbers (or the JSON).
"""

import json
import sys
from pathlib import Path

import lenet_engine as le
from lenet_engine._optional import import_optional
from lenet_engine.digit_files import file_kind
from lenet_engine.errors import BlankImageError, UnsupportedImageError
from lenet_engine.images import load_image, split_digits, to_mnist

__all__ = ["predict_numbers", "write_steps"]


def predict_numbers(args):
    """--number: each image's number; exit status 1 when a digit is unsure, else 0."""
    model = le.load(args.model, backend=args.backend, precision=args.precision)
    readings = []
    for name in args.files:
        try:
            readings.append((name, model.predict_number(_image(name), invert=args.invert,
                                                        min_probability=args.unsure_below)))
        except BlankImageError as exc:
            raise BlankImageError(f"{name}: {exc}") from None
    if args.json:
        print(json.dumps([{"file": name, **reading.as_dict()} for name, reading in readings]))
    else:
        for name, reading in readings:
            print(reading.text if len(readings) == 1 else f"{name}\t{reading.text}")
    for name, reading in readings:
        unsure = [i for i, d in enumerate(reading.digits) if d.unsure]
        if unsure:
            print(f"{name}: digit(s) {', '.join(str(i + 1) for i in unsure)} of {len(reading.digits)} unsure "
                  f"(top probability under {reading.min_probability:g}), shown as ?", file=sys.stderr)
    return 1 if any(reading.unsure for _, reading in readings) else 0


def write_steps(args):
    """--show-steps DIR: DIR/<name>-steps.png for each image file, as to_mnist (or, with --number,
    split_digits) prepared it."""
    import_optional("matplotlib", "plot", "--show-steps")
    folder = Path(args.show_steps)
    folder.mkdir(parents=True, exist_ok=True)
    for name in args.files:
        if file_kind(name) != "image":
            print(f"{name}: not an image, no steps to show", file=sys.stderr)
            continue
        gray = load_image(name)
        try:
            if args.number:
                *_, steps = split_digits(gray, invert=args.invert, debug=True)
            else:
                _, steps = to_mnist(gray, invert=args.invert, debug=True)
        except BlankImageError as exc:
            raise BlankImageError(f"{name}: {exc}") from None
        path = folder / f"{Path(name).stem}-steps.png"
        steps.save(path)
        print(f"{name}: preparation steps written to {path}", file=sys.stderr)


def _image(name):
    if file_kind(name) != "image":
        raise UnsupportedImageError(f"{name}: --number reads a PNG, JPEG or BMP picture of a row of digits")
    return load_image(name)
