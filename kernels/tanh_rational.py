"""tanh as a rational function, for the compiled backends' squashing kernels.

libm's tanhf is a scalar call that no compiler vectorises, and LeNet-5
squashes every value its layers compute. Both compiled backends instead evaluate

    tanh(x) = x * P(x^2) / Q(x^2)     for |x| <= 9, in double precision,
    tanh(x) = sign(x)                  beyond (the float32 value there is within 1 ulp of 1),

which is plain arithmetic, so it vectorises. P and Q (degree 6 in x^2, P(0)
= Q(0) = 1, so tanh(x) = x to first order) were fitted for this project by
iteratively reweighted least squares on the relative error over [0, 9]. The
float32 results are within 1 ulp of the exact tanh (tests/test_tanh_rational.py);
Q >= 1 on the whole range, so there is no pole. The fused forward passes,
which evaluate in float32, use a smaller pair, P32 and Q32 (below). The NumPy
reference keeps np.tanh: it is the oracle these are checked against.
"""

import numpy as np

CLAMP = 9.0
P = (1.0, -0.15886992854940793, 0.03140831804047814, 0.00797645346478048,
     0.00022886339455028407, 1.385699419044397e-06, 9.068368903020207e-10)
Q = (1.0, 0.1744633787886774, -0.04377045531544762, 0.024092641806086428,
     0.001641891738307341, 2.188022719387076e-05, 5.259229960211109e-08)


def tanh_rational(x):
    """The approximation as the kernels compute it, in NumPy (float32 in, float32 out)."""
    v = np.clip(np.asarray(x, dtype=np.float64), -CLAMP, CLAMP)
    z = v * v
    y = (v * np.polyval(P[::-1], z) / np.polyval(Q[::-1], z)).astype(np.float32)
    return np.where(x > CLAMP, np.float32(1), np.where(x < -CLAMP, np.float32(-1), y))


# The fused forward passes evaluate tanh in float32, where the rounding of the evaluation
# itself already costs a few ulp: there a rational of degree 4 over 4 in x^2 (relative error
# 3.5e-8 on [0, 9], fitted the same way, Q32 >= 1 there too) keeps them within 7 ulp, with four
# multiply-adds fewer per value than P and Q (squashing is a sixth of the pass's arithmetic).
P32 = (1.0, 0.13384472835704653, 0.003499614336376816, 2.067300448194534e-05, 1.3439392259673663e-08)
Q32 = (1.0, 0.46717794143960223, 0.025892469077122077, 0.0003292114559642681, 7.812023459969479e-07)


# The int8 pass on AVX2 computes its squashing tables' entries, rint(K tanh(i / (2 K))) for the
# table's indices i, where the argument stays within [0, 3.3] (K >= 127: the table ends where the
# value reaches 126.5, at atanh(126.5 / 127) = 3.11 and below). There a rational of degree 2 over
# 3 in x^2 (relative error 6.8e-8 on [0, 3.3], fitted the same way, Q8 >= 1) is as exact as the
# float32 evaluation, with three multiply-adds fewer than P32 and Q32. Every table's entries are
# checked against it when the weights are loaded (kernels/cython/l5_int8_avx2.h).
P8 = (0.9999999321623241, 0.1190988751217086, 0.0018305363327470868)
Q8 = (1.0, 0.45243138412687134, 0.01930932239692079, 7.908560417628354e-05)


def squash_coefficients(amplitude, slope, p_coefficients=P32, q_coefficients=Q32):
    """The fused passes' squashing a * tanh(s * v), with the slope and amplitude folded into the
    rational (P32 over Q32 unless told): v * p(v^2) / q(v^2) with p_k = a s^(2k+1) P_k / c and
    q_k = s^(2k) Q_k / c, c = s^(2n) Q_n making q (degree n) monic (its first step an add), the
    input clamped to +-CLAMP / |s| and the value to +-|a|: three multiplies fewer a value than
    squashing tanh(s * v) * a.

    Returns float32 [clamp, limit, p_0 .. p_m, q_0 .. q_n] (q_n = 1, not read), computed in
    double and rounded once. A zero slope clamps every input to 0 (q is then 1).
    """
    a, s = float(np.float32(amplitude)), float(np.float32(slope))
    n = len(q_coefficients) - 1
    lead = s ** (2 * n) * q_coefficients[n] if s != 0 else 1.0
    p = [a * s ** (2 * k + 1) * c / lead for k, c in enumerate(p_coefficients)]
    q = [s ** (2 * k) * c / lead if s != 0 else float(k == 0) for k, c in enumerate(q_coefficients)]
    clamp = CLAMP / abs(s) if s != 0 else 0.0
    return np.array([clamp, abs(a)] + p + q, dtype=np.float32)
