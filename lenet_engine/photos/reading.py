"""Reading a number: the digits of a row on a picture, each classified, the unsure ones flagged.

    reading = model.predict_number(gray)    # LeNet5.predict_number calls read_number
    reading.text        # "2026", or "20?6" when the third digit is unsure
    reading.value       # 2026, or None when a digit is unsure
    reading.digits      # per digit: label, probability, probabilities, box, unsure

A digit is unsure when the network's top probability is under
`min_probability` (UNSURE_BELOW by default): it is shown as "?" rather than
guessed silently. On photos of the last 500 MNIST test digits (noise, a
lighting gradient, half of them JPEG; benchmarks/photo_accuracy.py) the shipped
modern kept 98.8% of the digits it read right at or above 0.9, and flagged 7
of the 12 it read wrong.
"""

from dataclasses import dataclass

import numpy as np

from lenet_engine.errors import InvalidInputError

__all__ = ["UNSURE_BELOW", "DigitReading", "NumberReading", "read_number"]

UNSURE_BELOW = 0.9


@dataclass(frozen=True)
class DigitReading:
    """One digit of a number: its label, the label's probability, all ten probabilities, where it
    is on the picture ((top, left, bottom, right) pixels, bottom and right exclusive), and
    whether the probability is under the threshold."""

    label: int
    probability: float
    probabilities: tuple
    box: tuple
    unsure: bool

    def as_dict(self):
        return {"label": self.label, "probability": self.probability, "unsure": self.unsure,
                "box": list(self.box), "probabilities": list(self.probabilities)}


@dataclass(frozen=True)
class NumberReading:
    """The digits of a row, left to right (see the module's docstring)."""

    digits: tuple
    min_probability: float

    @property
    def labels(self):
        return tuple(d.label for d in self.digits)

    @property
    def text(self):
        return "".join("?" if d.unsure else str(d.label) for d in self.digits)

    @property
    def unsure(self):
        return any(d.unsure for d in self.digits)

    @property
    def value(self):
        """The number as an int, or None when a digit is unsure."""
        return None if self.unsure else int("".join(map(str, self.labels)))

    def __str__(self):
        return self.text

    def as_dict(self):
        return {"number": self.text, "value": self.value, "min_probability": self.min_probability,
                "digits": [d.as_dict() for d in self.digits]}


def read_number(model, image, *, invert=None, min_probability=UNSURE_BELOW):
    """The number written on `image` (as for images.split_digits), read by `model` -> NumberReading."""
    from lenet_engine.images import split_digits

    if not 0.0 <= min_probability <= 1.0:
        raise InvalidInputError(f"min_probability must lie in [0, 1], got {min_probability!r}")
    digits, boxes = split_digits(image, invert=invert, boxes=True)
    probabilities = model.predict_proba(digits)
    read = []
    for p, box in zip(probabilities, boxes):
        label = int(np.argmax(p))
        read.append(DigitReading(label, float(p[label]), tuple(float(v) for v in p),
                                 tuple(int(v) for v in box), bool(p[label] < min_probability)))
    return NumberReading(tuple(read), float(min_probability))
