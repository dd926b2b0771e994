"""Random geometric distortions of training digits, drawn per digit and applied by a compiled kernel.

LeCun et al. (1998) reach 0.8% test error by training on randomly distorted
copies of the digits: small translations, scalings, squeezings (one axis
compressed while the other is stretched) and horizontal shears. Simard et al.
(2003) add elastic distortions: a random displacement field, smoothed. Both
are drawn here with NumPy from a seeded Generator, so a seed fixes them, and
applied by the backend's `distort_forward` kernel (bilinear resampling).

    LeNet5.fit(x, y, augment=True)                        # the defaults below
    LeNet5.fit(x, y, augment=Distortions(shear=0.2, elastic_alpha=8.0))
"""

from dataclasses import asdict, dataclass, fields

import numpy as np

from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import DIGIT_SIZE

F32 = np.float32
MAX_SIGMA = 10.0  # smoothing wider than this flattens a 28x28 field to nothing


@dataclass(frozen=True)
class Distortions:
    """Ranges of the random distortions; each is drawn uniformly per digit, 0 turns it off.

    translate: pixels, each axis in [-translate, translate].
    scale: both axes scaled by 1 + s, s in [-scale, scale].
    squeeze: x scaled by 1 + q and y by 1 / (1 + q), q in [-squeeze, squeeze].
    shear: horizontal shear x += h * y, h in [-shear, shear].
    rotate: degrees, in [-rotate, rotate] (the paper uses none; off by default).
    elastic_alpha, elastic_sigma: elastic displacement field (Simard et al. 2003):
      uniform noise in [-1, 1] per pixel and axis, Gaussian-smoothed with sigma
      pixels, times alpha; off while alpha is 0.
    """

    translate: float = 2.0
    scale: float = 0.1
    squeeze: float = 0.1
    shear: float = 0.2
    rotate: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
                    or value < 0:
                raise InvalidInputError(f"Distortions.{name} must be a finite number >= 0, got {value!r}")
        for name in ("scale", "squeeze"):
            if getattr(self, name) >= 0.5:
                raise InvalidInputError(f"Distortions.{name} must be below 0.5, got {getattr(self, name)}")
        if self.elastic_alpha and not self.elastic_sigma:
            raise InvalidInputError("Distortions.elastic_sigma must be > 0 when elastic_alpha is")
        if self.elastic_sigma > MAX_SIGMA:
            raise InvalidInputError(f"Distortions.elastic_sigma must be at most {MAX_SIGMA} pixels "
                                    f"(a 28x28 digit), got {self.elastic_sigma}")

    def as_dict(self):
        return asdict(self)


def as_distortions(augment):
    """fit's `augment` argument -> Distortions or None (no augmentation)."""
    if augment is None or augment is False:
        return None
    if augment is True:
        return Distortions()
    if isinstance(augment, Distortions):
        return augment
    if isinstance(augment, dict):
        unknown = sorted(set(augment) - {f.name for f in fields(Distortions)}, key=str)
        if unknown:
            raise InvalidInputError(f"unknown distortion(s) {', '.join(map(repr, unknown))}: expected some of "
                                    f"{', '.join(f.name for f in fields(Distortions))}")
        return Distortions(**augment)
    raise InvalidInputError(f"augment must be True, False, None, a dict or a Distortions, got {augment!r}")


def inverse_matrices(d, rng, n):
    """(n, 2, 3) float32: for each digit, the map from output pixel to source point.

    A digit is moved by p -> A p + t (centred coordinates, x right, y down) with
    A = rotation * diag(s (1 + q), s / (1 + q)) * [[1, h], [0, 1]]; the kernel
    needs the inverse, p = A^-1 (p' - t).
    """
    s = 1.0 + rng.uniform(-d.scale, d.scale, n)
    q = 1.0 + rng.uniform(-d.squeeze, d.squeeze, n)
    h = rng.uniform(-d.shear, d.shear, n)
    theta = np.deg2rad(rng.uniform(-d.rotate, d.rotate, n))
    t = rng.uniform(-d.translate, d.translate, (n, 2))
    cos, sin = np.cos(theta), np.sin(theta)
    sx, sy = s * q, s / q
    # A = R @ S @ H, written out.
    a = np.empty((n, 2, 2))
    a[:, 0, 0] = cos * sx
    a[:, 0, 1] = cos * sx * h - sin * sy
    a[:, 1, 0] = sin * sx
    a[:, 1, 1] = sin * sx * h + cos * sy
    inverse = np.linalg.inv(a)
    out = np.empty((n, 2, 3), dtype=F32)
    out[:, :, :2] = inverse
    out[:, :, 2] = -np.einsum("nij,nj->ni", inverse, t)
    return out


def elastic_flow(d, rng, n, size=DIGIT_SIZE):
    """(n, 2, size, size) float32 displacement fields; zeros when elastic distortion is off."""
    if not d.elastic_alpha:
        return np.zeros((n, 2, size, size), dtype=F32)
    noise = rng.uniform(-1.0, 1.0, (n, 2, size, size))
    radius = int(np.ceil(3 * d.elastic_sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / d.elastic_sigma) ** 2)
    taps /= taps.sum()
    smooth = _smooth_axis(_smooth_axis(noise, taps, axis=2), taps, axis=3)
    return (d.elastic_alpha * smooth).astype(F32)


def _smooth_axis(a, taps, axis):
    # Correlate `a` with the (symmetric) taps along one axis, zero beyond the edges.
    radius = len(taps) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (radius, radius)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(a, pad), len(taps), axis=axis)
    return windows @ taps


def distort(kernels, digits, d, rng, n_threads):
    """Distorted copies of digits (N, 28, 28), uint8 or float in [0, 1] -> float32 in [0, 1]."""
    ink = digits.astype(F32)
    if digits.dtype == np.uint8:
        ink /= F32(255.0)
    out = np.empty_like(ink)
    kernels.distort_forward(out, ink, inverse_matrices(d, rng, len(ink)),
                            elastic_flow(d, rng, len(ink), ink.shape[-1]), n_threads)
    # Bilinear weights sum to 1, so only rounding can step outside [0, 1].
    np.clip(out, 0.0, 1.0, out=out)
    return out
