"""Accuracy of `to_mnist` and `split_digits` on synthetic photos of MNIST test digits (issue 22's table).

    python benchmarks/photo_accuracy.py [--digits 500] [--rows 100] [--model modern]

Each condition draws the first `--digits` MNIST test digits as photos
(lenet_engine.photos.pages: enlarged to 140 px, off-centre on a 240x200 page),
converts them with to_mnist and classifies them; typeset digits are DejaVu
faces; rows are 5 digits read with predict_number, counted right only when
every digit is. Prints a Markdown table. Needs the [images] extra and MNIST
($LENET_ENGINE_DATA/mnist or the user cache).
"""

import argparse
import time

import numpy as np

import lenet_engine as le
from lenet_engine.images import to_mnist
from lenet_engine.photos.pages import Photo, font_paths, number_page, photo_page, typeset_page
from lenet_engine.photos.reading import UNSURE_BELOW

NOISY = {"gradient": 40, "noise": 6}
DIGIT_CONDITIONS = {
    "flat paper, no noise": [Photo()],
    "sensor noise only (sigma 6)": [Photo(noise=6)],
    "lighting gradient only (40 levels)": [Photo(gradient=40)],
    "noise and gradient together": [Photo(**NOISY)],
    "noise, gradient and JPEG 85": [Photo(**NOISY, jpeg=85)],
    "noise, gradient and blur (sigma 2)": [Photo(**NOISY, blur=2)],
    "noise, gradient, half JPEG 85 (the target)": [Photo(**NOISY), Photo(**NOISY, jpeg=85)],
}
TYPESET_CONDITIONS = {
    "typeset, flat paper": Photo(),
    "typeset, blur, noise and gradient": Photo(**NOISY, blur=1.5),
}


def _probabilities(model, pages):
    digits = []
    for page in pages:
        try:
            digits.append(to_mnist(page))
        except le.ImageError:
            digits.append(np.zeros((28, 28), np.uint8))  # counted as wrong
    return model.predict_proba(np.stack(digits))


def _accuracy(model, pages, labels):
    return float(np.mean(_probabilities(model, pages).argmax(1) == labels))


def _unsure_flags(model, pages, labels):
    """How the UNSURE_BELOW flag splits the digits: the share of right readings kept (top
    probability at or above it) and the share of wrong readings flagged (under it)."""
    probs = _probabilities(model, pages)
    right = probs.argmax(1) == labels
    sure = probs.max(1) >= UNSURE_BELOW
    kept = float(np.mean(sure[right])) if right.any() else float("nan")
    flagged = float(np.mean(~sure[~right])) if (~right).any() else float("nan")
    return kept, flagged, int((~right).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=500)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--model", default="modern")
    args = parser.parse_args()
    model = le.load(args.model)
    images, labels = le.datasets.load_mnist("test")
    x, y = images[:args.digits], labels[:args.digits]
    rows = []
    for name, photos in DIGIT_CONDITIONS.items():
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        pages = [photo_page(d, rng, photos[i % len(photos)]) for i, d in enumerate(x)]
        rows.append((name, _accuracy(model, pages, y), time.perf_counter() - started))
    fonts = font_paths()
    for name, photo in TYPESET_CONDITIONS.items():
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        cases = [(label, font) for font in fonts for label in range(10)]
        pages = [typeset_page(label, rng, font, photo) for label, font in cases]
        rows.append((f"{name} ({len(fonts)} faces)", _accuracy(model, pages, [c[0] for c in cases]),
                     time.perf_counter() - started))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    whole = 0
    for r in range(args.rows):
        chosen = rng.choice(len(images), 5, replace=False)
        photo = Photo(**NOISY, jpeg=85 if r % 2 else None)
        page, _ = number_page(list(images[chosen]), rng, photo)
        whole += model.predict_number(page).labels == tuple(int(v) for v in labels[chosen])
    rows.append(("rows of 5 digits read whole (noise, gradient, half JPEG)", whole / args.rows,
                 time.perf_counter() - started))
    print(f"| the page ({args.model}, {args.digits} MNIST test digits) | accuracy | seconds |")
    print("| --- | --- | --- |")
    for name, accuracy, seconds in rows:
        print(f"| {name} | {accuracy:.1%} | {seconds:.1f} |")
    # The unsure flag on the hardest condition, with the test digits after the first --digits
    # so that it is measured on digits the table above did not look at.
    rng = np.random.default_rng(1)
    photos = DIGIT_CONDITIONS["noise, gradient, half JPEG 85 (the target)"]
    x2, y2 = images[-args.digits:], labels[-args.digits:]
    pages = [photo_page(d, rng, photos[i % len(photos)]) for i, d in enumerate(x2)]
    kept, flagged, wrong = _unsure_flags(model, pages, y2)
    print(f"\nunsure flag at {UNSURE_BELOW} (noise, gradient, half JPEG; the last {args.digits} test "
          f"digits): {kept:.1%} of the right readings kept, {flagged:.0%} of the {wrong} wrong "
          f"ones flagged")


if __name__ == "__main__":
    main()
