"""Mini-batch optimizers for LeNet5.fit: SGD with momentum, Adam, and the paper's SDLM.

Each keeps its own state per parameter and updates the parameters in place;
arrays() / load_arrays() and scalars() / load_scalars() let a checkpoint keep that state.
"""

import math

import numpy as np

OPTIMIZERS = ("adam", "sgd", "sdlm")
# LeCun et al. (1998), SDLM: eta 0.0005 for passes 1-2, 0.0002 for 3-5, 0.0001 for 6-8,
# 0.00005 for 9-12, 0.00001 after (the last entry repeats).
PAPER_ETA = [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5]
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2, "sdlm": PAPER_ETA}
DEFAULT_MU = 0.02
DEFAULT_MOMENTUM = 0.9


class _CheckpointHooks:
    """How a checkpoint reads and restores an optimizer's state; these defaults: no state of that kind."""

    def arrays(self):
        return {}

    def load_arrays(self, arrays):
        if arrays:
            raise ValueError(f"unexpected optimizer state {sorted(arrays)} for {type(self).__name__}")

    def scalars(self):
        return {}

    def load_scalars(self, scalars):
        pass


class SGD(_CheckpointHooks):
    """v <- momentum * v - lr * g;  p <- p + v."""

    def __init__(self, momentum=DEFAULT_MOMENTUM):
        self.momentum = momentum
        self.velocity = {}

    def arrays(self):
        return {f"velocity/{k}": v for k, v in self.velocity.items()}

    def load_arrays(self, arrays):
        self.velocity = _unprefixed(arrays, "velocity/", type(self).__name__)

    def step(self, params, grads, lr):
        for name, g in grads.items():
            v = self.velocity.setdefault(name, np.zeros_like(g))
            v *= self.momentum
            v -= lr * g
            params[name] += v


class Adam(_CheckpointHooks):
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

    def step(self, params, grads, lr):
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


class SDLM(_CheckpointHooks):
    """Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, appendix C).

    Parameter k steps by lr / (mu + h_kk) along its gradient, h_kk the Gauss-Newton
    diagonal of the Hessian that set_curvature() is given (LeNet5.fit estimates it on
    `curvature_digits` training digits before each pass). lr is the step of the whole batch: fit passes the
    paper's per-digit eta times the batch size, as that many per-digit steps would take.
    """

    def __init__(self, mu=DEFAULT_MU):
        self.mu = mu
        self.rate = {}

    def set_curvature(self, curv):
        """Take a fresh {parameter: Gauss-Newton diagonal}; steps use it until the next call."""
        self.rate = {name: (1.0 / (self.mu + np.maximum(h, 0.0))).astype(np.float32)
                     for name, h in curv.items()}

    def step(self, params, grads, lr):
        for name, g in grads.items():
            update = self.rate[name] * g
            update *= lr
            params[name] -= update


def _unprefixed(arrays, prefix, owner):
    if any(not k.startswith(prefix) for k in arrays):
        raise ValueError(f"unexpected {owner} state names {sorted(arrays)}")
    return {k[len(prefix):]: np.array(a, dtype=np.float32) for k, a in arrays.items()}


def make_optimizer(name, momentum=DEFAULT_MOMENTUM, mu=DEFAULT_MU):
    """The optimizer called `name`; momentum is SGD's (checked whatever the name, so a typo shows), mu SDLM's."""
    is_number = isinstance(momentum, (int, float, np.integer, np.floating)) \
        and not isinstance(momentum, (bool, np.bool_))
    if not (is_number and 0.0 <= momentum < 1.0):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if name == "adam":
        return Adam()
    if name == "sgd":
        return SGD(momentum)
    if name == "sdlm":
        return SDLM(float(mu))
    raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
