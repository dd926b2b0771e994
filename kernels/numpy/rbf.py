"""NumPy reference: Euclidean RBF output units. Twins: kernels/numba/rbf.py (and kernels/cython/rbf.pyx)."""


def rbf_forward(out, x, centers, n_threads=1):
    """out[n, i] = sum_j (x[n, j] - centers[i, j])^2.   out: (N, U)   x: (N, D)   centers: (U, D)"""
    diff = x[:, None, :] - centers[None, :, :]
    out[...] = (diff * diff).sum(axis=2)


def rbf_backward(dx, dcenters, dout, x, centers, n_threads=1):
    """Gradients of rbf_forward; d* shaped like their primal."""
    diff = x[:, None, :] - centers[None, :, :]
    g = 2.0 * dout[:, :, None] * diff
    dx[...] = g.sum(axis=1)
    dcenters[...] = -g.sum(axis=0)
