"""Numba kernel: resampling digits through a random geometric distortion (training augmentation).

Twins: kernels/numpy/distort.py (the reference, which says what is computed) and
kernels/cython/distort.pyx. Parallel over the batch.
"""

import math

from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel


@kernel
def _pixel(x, n, r, c):
    # x[n, r, c], or 0 (blank paper) outside the image.
    if r < 0 or r >= x.shape[1] or c < 0 or c >= x.shape[2]:
        return 0.0
    return x[n, r, c]


@parallel_kernel
def distort_forward(out, x, matrices, flow, n_threads):
    """out, x: (N, H, W)   matrices: (N, 2, 3)   flow: (N, 2, H, W)"""
    n_batch, h, w = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    for n in prange(n_batch):
        m = matrices[n]
        for i in range(h):
            v = i - cy
            for j in range(w):
                u = j - cx
                col = cx + m[0, 0] * u + m[0, 1] * v + m[0, 2] + flow[n, 0, i, j]
                row = cy + m[1, 0] * u + m[1, 1] * v + m[1, 2] + flow[n, 1, i, j]
                # Far-off points read only blank paper; clamping them keeps the casts defined.
                row = min(max(row, -2.0), h + 1.0)
                col = min(max(col, -2.0), w + 1.0)
                r0, c0 = math.floor(row), math.floor(col)
                fr, fc = row - r0, col - c0
                r, c = int(r0), int(c0)
                out[n, i, j] = ((1 - fr) * ((1 - fc) * _pixel(x, n, r, c) + fc * _pixel(x, n, r, c + 1))
                                + fr * ((1 - fc) * _pixel(x, n, r + 1, c) + fc * _pixel(x, n, r + 1, c + 1)))
