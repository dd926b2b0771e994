# Included (textually) by the kernel modules of the Cython backend, kernels/cython/*.pyx.
# Float reductions written so that gcc -O3 vectorises them.
#
# Without -ffast-math gcc keeps a float sum in source order, one add after
# another, and will not vectorise it. Numba's twins get the same freedom from
# fastmath="reassoc"; here the reassociation is spelled out instead: LANES
# independent partial sums, one per vector lane, added up at the end. The
# order depends only on the length, so every thread count gives the same bits.

cdef enum:
    LANES = 8
    # dot restarts its lanes every BLOCK elements, so no float32 lane sums
    # more than BLOCK / LANES terms: long rows (wide maps) keep their precision.
    BLOCK = 256


cdef inline float _lanes_dot(const float* a, const float* b, Py_ssize_t length) noexcept nogil:
    # sum_i a[i] * b[i] over LANES partial sums, then a fixed pairwise order (LANES = 8).
    cdef float part[LANES]
    cdef Py_ssize_t i, lane, group, body = length - length % LANES
    for lane in range(LANES):
        part[lane] = 0.0
    for group in range(length // LANES):
        i = group * LANES
        for lane in range(LANES):
            part[lane] += a[i + lane] * b[i + lane]
    for i in range(body, length):
        part[0] += a[i] * b[i]
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]))


cdef inline float dot(const float* a, const float* b, Py_ssize_t length) noexcept nogil:
    """sum_i a[i] * b[i] in float32, BLOCK elements at a time."""
    cdef float total = 0.0
    cdef Py_ssize_t block, rest = length % BLOCK
    for block in range(length // BLOCK):
        total += _lanes_dot(a + block * BLOCK, b + block * BLOCK, BLOCK)
    return total + _lanes_dot(a + length - rest, b + length - rest, rest)


cdef inline float _lanes_sum(const float* a, Py_ssize_t length) noexcept nogil:
    # sum_i a[i] over LANES partial sums, then the fixed pairwise order of _lanes_dot.
    cdef float part[LANES]
    cdef Py_ssize_t i, lane, group, body = length - length % LANES
    for lane in range(LANES):
        part[lane] = 0.0
    for group in range(length // LANES):
        i = group * LANES
        for lane in range(LANES):
            part[lane] += a[i + lane]
    for i in range(body, length):
        part[0] += a[i]
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]))


cdef inline float float_sum(const float* a, Py_ssize_t length) noexcept nogil:
    """sum_i a[i] in float32, BLOCK elements at a time (as dot)."""
    cdef float result = 0.0
    cdef Py_ssize_t block, rest = length % BLOCK
    for block in range(length // BLOCK):
        result += _lanes_sum(a + block * BLOCK, BLOCK)
    return result + _lanes_sum(a + length - rest, rest)


cdef inline double sqdist(const float* a, const float* b, Py_ssize_t length) noexcept nogil:
    """sum_i (a[i] - b[i])^2, the differences in float32 and the sum in double (as the Numba twin)."""
    cdef double part[LANES]
    cdef double diff
    cdef Py_ssize_t i, lane, group, body = length - length % LANES
    for lane in range(LANES):
        part[lane] = 0.0
    for group in range(length // LANES):
        i = group * LANES
        for lane in range(LANES):
            diff = a[i + lane] - b[i + lane]
            part[lane] += diff * diff
    for i in range(body, length):
        diff = a[i] - b[i]
        part[0] += diff * diff
    # A fixed pairwise order over the LANES = 8 partial sums.
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]))
