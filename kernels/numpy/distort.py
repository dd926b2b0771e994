"""NumPy reference: resampling digits through a random geometric distortion (training augmentation).

Twins: kernels/numba/distort.py and kernels/cython/distort.pyx.
"""

import numpy as np


def distort_forward(out, x, matrices, flow, n_threads):
    """out[n] = x[n] sampled bilinearly at the source point of each output pixel; 0 outside x[n].

    out, x: (N, H, W) float32 ink in [0, 1]   matrices: (N, 2, 3)   flow: (N, 2, H, W)
    Output pixel (row i, column j), taken relative to the centre c = ((H-1)/2, (W-1)/2) as
    (u, v) = (j - cx, i - cy), reads x[n] at
        column cx + m[0,0] u + m[0,1] v + m[0,2] + flow[n, 0, i, j]
        row    cy + m[1,0] u + m[1,1] v + m[1,2] + flow[n, 1, i, j]
    with m = matrices[n]: an inverse affine map (lenet_engine.distortions draws it)
    plus an optional elastic displacement field.
    """
    n_batch, h, w = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    rows, cols = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    m = matrices[:, :, :, None, None]
    src_col = cx + m[:, 0, 0] * cols + m[:, 0, 1] * rows + m[:, 0, 2] + flow[:, 0]
    src_row = cy + m[:, 1, 0] * cols + m[:, 1, 1] * rows + m[:, 1, 2] + flow[:, 1]
    # Far-off points read only blank paper; clamping them keeps the integer casts defined.
    src_row, src_col = np.clip(src_row, -2.0, h + 1.0), np.clip(src_col, -2.0, w + 1.0)
    r0, c0 = np.floor(src_row), np.floor(src_col)
    fr, fc = src_row - r0, src_col - c0
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    batch = np.arange(n_batch)[:, None, None]

    def pixel(r, c):
        # x[n, r, c], or 0 (blank paper) where (r, c) falls outside the image.
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        return np.where(inside, x[batch, np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)], 0.0)

    out[...] = ((1 - fr) * ((1 - fc) * pixel(r0, c0) + fc * pixel(r0, c0 + 1))
                + fr * ((1 - fc) * pixel(r0 + 1, c0) + fc * pixel(r0 + 1, c0 + 1)))
