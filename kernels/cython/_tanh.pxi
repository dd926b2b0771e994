# Included (textually) by the Cython kernels that squash: activation.pyx and lenet5.pyx.
# tanh as the rational function of kernels/tanh_rational.py (within 1 ulp), which
# gcc vectorises where tanhf would be a scalar call.

from lenet_engine.kernels import tanh_rational

# The coefficients, copied once from the one place they are written down.
cdef double CLAMP = tanh_rational.CLAMP
cdef double TP[7]
cdef double TQ[7]
for _i in range(7):
    TP[_i] = tanh_rational.P[_i]
    TQ[_i] = tanh_rational.Q[_i]


cdef inline float _tanh(float v) noexcept nogil:
    cdef double x = v
    # Written so that NaN fails both tests and passes through unchanged.
    x = CLAMP if x > CLAMP else x
    x = -CLAMP if x < -CLAMP else x
    cdef double z = x * x
    cdef double p = TP[0] + z * (TP[1] + z * (TP[2] + z * (TP[3] + z * (TP[4] + z * (TP[5] + z * TP[6])))))
    cdef double q = TQ[0] + z * (TQ[1] + z * (TQ[2] + z * (TQ[3] + z * (TQ[4] + z * (TQ[5] + z * TQ[6])))))
    cdef float t = <float>(x * p / q)
    # Past the clamp the float32 tanh is +-1; comparisons keep NaN as NaN.
    t = 1.0 if v > CLAMP else t
    t = -1.0 if v < -CLAMP else t
    return t
