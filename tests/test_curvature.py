"""SDLM's second-order backward pass (<op>_curvature) of the NumPy reference, against finite differences.

Each layer kernel must return the Gauss-Newton diagonal
h_z = sum_k hout_k (d out_k / d z)^2 for every input and parameter z, the
Jacobian column taken here by central differences in float64; the RBF units
add their own clamped curvature term, sum_k dout_k d2 out_k / dz2 (see
kernels/numpy/rbf.py). Each loss kernel must return the exact diagonal of the
Hessian of the mean loss. The compiled twins are checked against this
reference in test_kernels.py, and the whole pass in test_sdlm.py.
"""

import numpy as np
import pytest

import kernel_cases as kc
from lenet_engine.backends import get_backend
from test_gradients import CASES, COORDINATES

REFERENCE = get_backend("numpy")


def _outputs(case):
    return np.concatenate([o.reshape(-1) for o in kc.run_forward(REFERENCE, case, 1, np.float64)[:1]])


def _mean_loss(case):
    return float(kc.run_forward(REFERENCE, case, 1, np.float64)[0].mean())


def check_curvature(case, seed, eps=1e-4):
    case = case.as_dtype(np.float64)
    outs = kc.run_forward(REFERENCE, case, 1, np.float64)
    hs = kc.run_curvature(REFERENCE, case, outs, 1, np.float64)
    hout = None if case.dout is None else kc.hout_of(case).reshape(-1)
    dout = None if case.dout is None else case.dout.reshape(-1)
    rng = np.random.default_rng(seed)
    for h, i in zip(hs, case.grad_of):
        assert (h >= 0).all(), f"{case.op}_curvature of input {i} has negative entries"
        flat = case.inputs[i].reshape(-1)
        for p in rng.choice(flat.size, size=min(COORDINATES, flat.size), replace=False):
            saved = flat[p]
            if hout is None:  # a loss: the exact second derivative of the mean loss
                centre = _mean_loss(case)
                flat[p] = saved + eps
                up = _mean_loss(case)
                flat[p] = saved - eps
                down = _mean_loss(case)
                want = (up - 2 * centre + down) / eps**2
            else:
                centre = _outputs(case)
                flat[p] = saved + eps
                up = _outputs(case)
                flat[p] = saved - eps
                down = _outputs(case)
                jacobian = (up - down) / (2 * eps)
                want = float(hout @ jacobian**2)
                if case.op == "rbf":
                    want += max(0.0, float(dout @ ((up - 2 * centre + down) / eps**2)))
            flat[p] = saved
            got = h.reshape(-1)[p]
            assert abs(got - want) <= 1e-5 + 1e-4 * abs(want), (
                f"{case.op}_curvature, input {i}, element {p}: kernel {got}, finite differences {want}")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_curvature_matches_finite_differences(name, seed):
    check_curvature(CASES[name](np.random.default_rng(seed)), seed)


def test_every_kernel_has_a_curvature():
    backward = {n[: -len("_backward")] for n in dir(REFERENCE) if n.endswith("_backward")}
    curvature = {n[: -len("_curvature")] for n in dir(REFERENCE) if n.endswith("_curvature")}
    assert backward == curvature == set(kc.CURVATURE_ARGS)


def test_map_loss_keeps_the_rbf_own_term_non_negative():
    # Under the MAP loss, sum_i dE/dy_i = (1 - sum_i p_i) / N >= 0, so the clamp never bites.
    rng = np.random.default_rng(0)
    dist = (50 * rng.random((64, 10))).astype(np.float64)
    labels = rng.integers(0, 10, 64)
    ddist = np.empty_like(dist)
    REFERENCE.map_loss_backward(ddist, dist, labels, 1.0, 1)
    assert (ddist.sum(axis=1) >= 0).all()
