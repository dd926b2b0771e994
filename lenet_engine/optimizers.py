"""Mini-batch optimizers for LeNet5.fit: SGD with momentum, and Adam.

Each keeps its own state per parameter and updates the parameters in place.
"""

import math

import numpy as np

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2}


class SGD:
    """v <- momentum * v - lr * g;  p <- p + v."""

    def __init__(self, momentum=0.9):
        self.momentum = momentum
        self.velocity = {}

    def step(self, params, grads, lr):
        for name, g in grads.items():
            v = self.velocity.setdefault(name, np.zeros_like(g))
            v *= self.momentum
            v -= lr * g
            params[name] += v


class Adam:
    """Kingma & Ba (2015), with the defaults Keras uses (beta1 0.9, beta2 0.999, eps 1e-7)."""

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-7):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m, self.v = {}, {}

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


def make_optimizer(name, momentum=0.9):
    """The optimizer called `name`; momentum is SGD's (checked whatever the name, so a typo shows)."""
    is_number = isinstance(momentum, (int, float, np.integer, np.floating)) \
        and not isinstance(momentum, (bool, np.bool_))
    if not (is_number and 0.0 <= momentum < 1.0):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if name == "adam":
        return Adam()
    if name == "sgd":
        return SGD(momentum)
    raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
