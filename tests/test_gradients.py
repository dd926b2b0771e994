"""Every backward of the NumPy reference against central finite differences, in float64."""

import numpy as np
import pytest

import kernel_cases as kc
from lenet_engine import constants
from lenet_engine.backends import get_backend

REFERENCE = get_backend("numpy")
COORDINATES = 40  # checked per gradient array, chosen at random


def objective(case):
    outs = kc.run_forward(REFERENCE, case, 1, np.float64)
    return float((outs[0] * case.dout).sum()) if case.dout is not None else float(outs[0].mean())


def check_gradients(case, seed=0, eps=1e-6):
    case = case.as_dtype(np.float64)
    outs = kc.run_forward(REFERENCE, case, 1, np.float64)
    grads = kc.run_backward(REFERENCE, case, outs, 1, np.float64)
    rng = np.random.default_rng(seed)
    for grad, i in zip(grads, case.grad_of):
        x = case.inputs[i]
        flat = x.reshape(-1)
        picks = rng.choice(flat.size, size=min(COORDINATES, flat.size), replace=False)
        for p in picks:
            saved = flat[p]
            flat[p] = saved + eps
            up = objective(case)
            flat[p] = saved - eps
            down = objective(case)
            flat[p] = saved
            numeric = (up - down) / (2 * eps)
            analytic = grad.reshape(-1)[p]
            assert abs(numeric - analytic) <= 1e-6 + 1e-5 * abs(numeric), (
                f"{case.op}_backward, input {i}, element {p}: analytic {analytic}, numeric {numeric}")


CASES = {
    "conv2d": lambda rng: kc.conv2d(rng, 2, 3, 4, 5, 9, 8),
    "conv2d_k3": lambda rng: kc.conv2d(rng, 2, 2, 3, 3, 6, 7),
    "sparse_conv2d_table_i": lambda rng: kc.sparse_conv2d(rng, 2, constants.TABLE_I, 6, 5, 7, 7),
    "sparse_conv2d_random": lambda rng: kc.sparse_conv2d(rng, 2, kc.random_table(rng, 4, 5), 4, 3, 6, 6),
    "avgpool2x2": lambda rng: kc.avgpool2x2(rng, 2, 3, 3, 4),
    "subsample": lambda rng: kc.subsample(rng, 2, 3, 3, 4),
    "linear": lambda rng: kc.linear(rng, 3, 17, 5),
    "tanh": lambda rng: kc.tanh(rng, 30, 1.0, 1.0),
    "scaled_tanh": lambda rng: kc.tanh(rng, 30, constants.SQUASH_AMPLITUDE, constants.SQUASH_SLOPE),
    "rbf": lambda rng: kc.rbf(rng, 3, 4, 7),
    "softmax_xent": lambda rng: kc.softmax_xent(rng, 5, 10, 3.0),
    "map_loss": lambda rng: kc.map_loss(rng, 5, 10, 5.0, 1.0),
    "map_loss_large_j": lambda rng: kc.map_loss(rng, 4, 10, 50.0, 20.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_backward_matches_finite_differences(name, seed):
    check_gradients(CASES[name](np.random.default_rng(seed)), seed)


def test_every_kernel_pair_has_a_gradient_case():
    ops = {n[: -len("_backward")] for n in dir(REFERENCE) if n.endswith("_backward")}
    covered = {CASES[name](np.random.default_rng(0)).op for name in CASES}
    assert ops == covered
