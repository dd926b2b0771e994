"""The optimizers of the training loop: SGD with momentum, Adam, and the paper's SDLM.

The loop (lenet_engine.training.loop) calls begin_epoch() before each pass
and step() after each batch, and knows nothing else of them: SDLM's
curvature pass, its mu schedule and its per-digit step are its own. Each
optimizer keeps its state per parameter and updates the parameters in place;
arrays() / load_arrays() and scalars() / load_scalars() let a checkpoint keep
that state.
"""

import math

import numpy as np

from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import check_int, check_positive

OPTIMIZERS = ("adam", "sgd", "sdlm")
# LeCun et al. (1998), SDLM: eta 0.0005 for passes 1-2, 0.0002 for 3-5, 0.0001 for 6-8,
# 0.00005 for 9-12, 0.00001 after (the last entry repeats).
PAPER_ETA = [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5]
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2, "sdlm": PAPER_ETA}
DEFAULT_MU = 0.02
DEFAULT_MOMENTUM = 0.9
# Digits SDLM estimates the Hessian's diagonal on before each pass (the paper's 500).
CURVATURE_DIGITS = 500


class Optimizer:
    """The interface the loop sees. These defaults: nothing to do per pass, no state of a kind."""

    def settings(self):
        """The options a training record holds: {"momentum", "mu", "curvature_digits"}, None where unused."""
        return {"momentum": None, "mu": None, "curvature_digits": None}

    def begin_epoch(self, epoch, rng, n_digits, curvature):
        """Called before pass `epoch` (0-based) over n_digits training digits, after the pass's
        order was drawn from rng. curvature(indices) -> {parameter: Gauss-Newton diagonal}
        estimates the Hessian's diagonal on those training digits (drawing from rng too)."""

    def step(self, params, grads, lr, batch_size):
        """Update params in place from the gradients of the batch's mean loss, at learning rate lr."""
        raise NotImplementedError

    def arrays(self):
        return {}

    def load_arrays(self, arrays):
        if arrays:
            raise ValueError(f"unexpected optimizer state {sorted(arrays)} for {type(self).__name__}")

    def scalars(self):
        return {}

    def load_scalars(self, scalars):
        pass


class SGD(Optimizer):
    """v <- momentum * v - lr * g;  p <- p + v."""

    def __init__(self, momentum=DEFAULT_MOMENTUM):
        self.momentum = momentum
        self.velocity = {}

    def settings(self):
        return {**super().settings(), "momentum": self.momentum}

    def arrays(self):
        return {f"velocity/{k}": v for k, v in self.velocity.items()}

    def load_arrays(self, arrays):
        self.velocity = _unprefixed(arrays, "velocity/", type(self).__name__)

    def step(self, params, grads, lr, batch_size):
        for name, g in grads.items():
            v = self.velocity.setdefault(name, np.zeros_like(g))
            v *= self.momentum
            v -= lr * g
            params[name] += v


class Adam(Optimizer):
    """Kingma & Ba (2015), with the defaults Keras uses (beta1 0.9, beta2 0.999, eps 1e-7)."""

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-7):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m, self.v = {}, {}

    def arrays(self):
        return {**{f"m/{k}": a for k, a in self.m.items()}, **{f"v/{k}": a for k, a in self.v.items()}}

    def load_arrays(self, arrays):
        self.m = _unprefixed({k: a for k, a in arrays.items() if k.startswith("m/")}, "m/", "Adam")
        self.v = _unprefixed({k: a for k, a in arrays.items() if not k.startswith("m/")}, "v/", "Adam")

    def scalars(self):
        return {"t": self.t}

    def load_scalars(self, scalars):
        t = scalars.get("t") if isinstance(scalars, dict) else None
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"Adam's step count in the checkpoint is {t!r}, expected an integer >= 0")
        self.t = t

    def step(self, params, grads, lr, batch_size):
        self.t += 1
        # Bias corrections folded into the step size; a Python float keeps the update float32.
        step = lr * math.sqrt(1.0 - self.beta2 ** self.t) / (1.0 - self.beta1 ** self.t)
        for name, g in grads.items():
            m = self.m.setdefault(name, np.zeros_like(g))
            v = self.v.setdefault(name, np.zeros_like(g))
            m += (1.0 - self.beta1) * (g - m)
            v += (1.0 - self.beta2) * (g * g - v)
            update = np.sqrt(v)
            update += self.eps
            np.divide(m, update, out=update)
            update *= step
            params[name] -= update


class SDLM(Optimizer):
    """Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, appendix C).

    Parameter k steps by eta / (mu + h_kk) along its gradient, h_kk the Gauss-Newton
    diagonal of the Hessian, re-estimated on `curvature_digits` training digits before
    each pass. mus: mu per pass (the last repeats). eta is the paper's per-digit rate:
    a batch of B digits steps B * eta along the mean gradient, as B per-digit steps would.
    """

    def __init__(self, mus=(DEFAULT_MU,), curvature_digits=CURVATURE_DIGITS):
        self.mus = list(mus)
        self.mu = self.mus[0]
        self.curvature_digits = curvature_digits
        self.rate = {}

    def settings(self):
        # One mu is recorded as a number, a schedule as its list.
        mu = self.mus[0] if len(self.mus) == 1 else list(self.mus)
        return {**super().settings(), "mu": mu, "curvature_digits": self.curvature_digits}

    def begin_epoch(self, epoch, rng, n_digits, curvature):
        self.mu = self.mus[min(epoch, len(self.mus) - 1)]
        sample = rng.choice(n_digits, size=min(self.curvature_digits, n_digits), replace=False)
        self.set_curvature(curvature(sample))

    def set_curvature(self, curv):
        """Take a fresh {parameter: Gauss-Newton diagonal}; steps use it until the next call."""
        self.rate = {name: (1.0 / (self.mu + np.maximum(h, 0.0))).astype(np.float32)
                     for name, h in curv.items()}

    def step(self, params, grads, lr, batch_size):
        lr = lr * batch_size
        for name, g in grads.items():
            update = self.rate[name] * g
            update *= lr
            params[name] -= update


def _unprefixed(arrays, prefix, owner):
    if any(not k.startswith(prefix) for k in arrays):
        raise ValueError(f"unexpected {owner} state names {sorted(arrays)}")
    return {k[len(prefix):]: np.array(a, dtype=np.float32) for k, a in arrays.items()}


def make_optimizer(name, *, momentum=None, mu=None, curvature_digits=None):
    """The optimizer called `name` with its options checked; an option another optimizer owns raises ValueError.

    momentum: SGD's (default 0.9). mu: SDLM's, a number or a list of one per pass (the last
    repeats; default the paper's 0.02); curvature_digits: SDLM's sample size (default 500).
    """
    if name not in OPTIMIZERS:
        raise InvalidInputError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    for option, value, owner in [("mu", mu, "sdlm"), ("curvature_digits", curvature_digits, "sdlm"),
                                 ("momentum", momentum, "sgd")]:
        if value is not None and name != owner:
            raise InvalidInputError(f"{option} is {owner.upper()}'s; optimizer {name!r} does not use it")
    if name == "adam":
        return Adam()
    if name == "sgd":
        momentum = DEFAULT_MOMENTUM if momentum is None else momentum
        is_number = isinstance(momentum, (int, float, np.integer, np.floating)) \
            and not isinstance(momentum, (bool, np.bool_))
        if not (is_number and 0.0 <= momentum < 1.0):
            raise InvalidInputError(f"momentum must be in [0, 1), got {momentum!r}")
        return SGD(float(momentum))
    curvature_digits = CURVATURE_DIGITS if curvature_digits is None else curvature_digits
    return SDLM(per_epoch(DEFAULT_MU if mu is None else mu, "mu"),
                check_int(curvature_digits, "curvature_digits", 1))


def per_epoch(value, name):
    """A number, or a list of one per epoch (the last repeats) -> a non-empty list of positive floats."""
    values = [value] if np.ndim(value) == 0 else list(value)
    if not values:
        raise InvalidInputError(f"{name} must be a positive number or a non-empty list of them, got []")
    return [check_positive(v, name) for v in values]
