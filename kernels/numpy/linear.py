"""NumPy reference: full (dense) layer. Twins: kernels/numba/linear.py (and kernels/cython/linear.pyx)."""


def linear_forward(out, x, w, b, n_threads):
    """out = x @ w.T + b.   out: (N, O)   x: (N, I)   w: (O, I)   b: (O,)"""
    out[...] = x @ w.T + b


def linear_backward(dx, dw, db, dout, x, w, n_threads):
    """Gradients of linear_forward; d* shaped like their primal."""
    dx[...] = dout @ w
    dw[...] = dout.T @ x
    db[...] = dout.sum(axis=0)


def linear_curvature(hx, hw, hb, hout, x, w, n_threads):
    """Gauss-Newton diagonal (SDLM's second-order backward): linear_backward with x and w squared."""
    linear_backward(hx, hw, hb, hout, x * x, w * w, n_threads)
