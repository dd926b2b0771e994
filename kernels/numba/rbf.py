"""Numba kernels: Euclidean RBF output units. Twins: kernels/numpy/rbf.py and kernels/cython/rbf.pyx."""

from numba import prange

from lenet_engine.kernels.numba._jit import parallel_kernel


@parallel_kernel
def rbf_forward(out, x, centers, n_threads):
    """out: (N, U)   x: (N, D)   centers: (U, D)"""
    n_batch, n_units = out.shape
    dim = x.shape[1]
    for n in prange(n_batch):
        for u in range(n_units):
            # A double accumulator: distances reach the hundreds, where float32
            # rounding would show in the comparison with other backends.
            acc = 0.0
            for d in range(dim):
                diff = x[n, d] - centers[u, d]
                acc += diff * diff
            out[n, u] = acc


@parallel_kernel
def rbf_backward(dx, dcenters, dout, x, centers, n_threads):
    """dx: (N, D)   dcenters: (U, D)   dout: (N, U)"""
    n_batch, n_units = dout.shape
    dim = x.shape[1]
    for n in prange(n_batch):
        dx[n, :] = 0
        for u in range(n_units):
            g = 2.0 * dout[n, u]
            for d in range(dim):
                dx[n, d] += g * (x[n, d] - centers[u, d])
    for u in prange(n_units):
        for d in range(dim):
            acc = 0.0
            for n in range(n_batch):
                acc += dout[n, u] * (x[n, d] - centers[u, d])
            dcenters[u, d] = -2.0 * acc


@parallel_kernel
def rbf_curvature(hx, hcenters, hout, dout, x, centers, n_threads):
    """Diagonal curvature through the RBF units (SDLM); the reference's docstring says what.

    hx: (N, D)   hcenters: (U, D)   hout, dout: (N, U)   x: (N, D)   centers: (U, D)
    """
    n_batch, n_units = hout.shape
    dim = x.shape[1]
    for n in prange(n_batch):
        own = 0.0
        for u in range(n_units):
            own += 2.0 * dout[n, u]
        own = max(own, 0.0)
        for d in range(dim):
            acc = 0.0
            for u in range(n_units):
                diff = x[n, d] - centers[u, d]
                acc += 4.0 * hout[n, u] * diff * diff
            hx[n, d] = acc + own
    for u in prange(n_units):
        own = 0.0
        for n in range(n_batch):
            own += 2.0 * dout[n, u]
        own = max(own, 0.0)
        for d in range(dim):
            acc = 0.0
            for n in range(n_batch):
                diff = x[n, d] - centers[u, d]
                acc += 4.0 * hout[n, u] * diff * diff
            hcenters[u, d] = acc + own
