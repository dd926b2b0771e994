"""NumPy reference: valid 2-D convolution, dense and sparse (Table I).

The oracle the compiled backends are tested against; written for clarity,
not speed. Twins: kernels/numba/conv.py (and kernels/cython/conv.pyx).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, k):
    # (N, C, H, W) -> (N, C, Ho, Wo, k, k): every k x k patch, as a view.
    return sliding_window_view(x, (k, k), axis=(2, 3))


def _scatter_patches(dx, grad_patches):
    # Inverse of _windows: add each patch gradient back onto the input grid.
    dx[...] = 0
    ho, wo, k = grad_patches.shape[2], grad_patches.shape[3], grad_patches.shape[4]
    for ki in range(k):
        for kj in range(k):
            dx[:, :, ki:ki + ho, kj:kj + wo] += grad_patches[..., ki, kj]


def conv2d_forward(out, x, w, b, n_threads):
    """out = b + sum over input maps of x (*) w, valid correlation, stride 1.

    out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (Co, Ci, K, K)   b: (Co,)
    with Ho = H - K + 1, Wo = W - K + 1.
    """
    patches = _windows(x, w.shape[2])
    out[...] = np.einsum("nchwij,ocij->nohw", patches, w) + b[:, None, None]


def conv2d_backward(dx, dw, db, dout, x, w, n_threads):
    """Gradients of conv2d_forward. dx: like x, or None to skip it (a network's first layer);
    dw: like w, db: like b, dout: like out."""
    patches = _windows(x, w.shape[2])
    dw[...] = np.einsum("nchwij,nohw->ocij", patches, dout)
    db[...] = dout.sum(axis=(0, 2, 3))
    if dx is not None:
        _scatter_patches(dx, np.einsum("nohw,ocij->nchwij", dout, w))


def sparse_conv2d_forward(out, x, w, b, conn_start, conn_in, n_threads):
    """Convolution in which output map o reads only some input maps (LeNet's C3).

    out: (N, Co, Ho, Wo)   x: (N, Ci, H, W)   w: (P, K, K), one kernel per connection
    b: (Co,)   conn_start: (Co + 1,) int64   conn_in: (P,) int64
    Output map o uses kernels w[p] and input maps conn_in[p] for p in
    conn_start[o] .. conn_start[o + 1] - 1 (see kernels/tables.py).
    """
    patches = _windows(x, w.shape[1])
    for o in range(out.shape[1]):
        span = slice(conn_start[o], conn_start[o + 1])
        out[:, o] = np.einsum("nchwij,cij->nhw", patches[:, conn_in[span]], w[span]) + b[o]


def sparse_conv2d_backward(dx, dw, db, dout, x, w, conn_start, conn_in, n_threads):
    """Gradients of sparse_conv2d_forward; arguments as there, d* shaped like their primal
    (dx None: skipped)."""
    patches = _windows(x, w.shape[1])
    grad_patches = np.zeros(patches.shape, dtype=np.float32)
    for o in range(dout.shape[1]):
        span = slice(conn_start[o], conn_start[o + 1])
        dw[span] = np.einsum("nchwij,nhw->cij", patches[:, conn_in[span]], dout[:, o])
        grad_patches[:, conn_in[span]] += np.einsum("nhw,cij->nchwij", dout[:, o], w[span])
    db[...] = dout.sum(axis=(0, 2, 3))
    if dx is not None:
        _scatter_patches(dx, grad_patches)


# Second-order backward passes (SDLM): each propagates h, the Gauss-Newton
# diagonal of the Hessian, d2E/dy2 ~ sum (dy/dz)^2 d2E/dz2. A layer linear in
# its input and its weights passes h back as its backward pass passes a
# gradient, with every input and weight squared.

def conv2d_curvature(hx, hw, hb, hout, x, w, n_threads):
    """Gauss-Newton diagonal of conv2d_forward: hx = hout sent back through w**2, hw = hout (*) x**2.

    Shapes as conv2d_backward, h* for d*.
    """
    conv2d_backward(hx, hw, hb, hout, x * x, w * w, n_threads)


def sparse_conv2d_curvature(hx, hw, hb, hout, x, w, conn_start, conn_in, n_threads):
    """Gauss-Newton diagonal of sparse_conv2d_forward; shapes as sparse_conv2d_backward."""
    sparse_conv2d_backward(hx, hw, hb, hout, x * x, w * w, conn_start, conn_in, n_threads)
