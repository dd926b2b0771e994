"""Numba kernels: softmax cross-entropy and the paper's MAP loss.

Forward writes per-sample losses, backward the gradient of their batch mean.
Twins: kernels/numpy/loss.py (the reference) and kernels/cython/loss.pyx.
"""

import numpy as np
from numba import prange

from lenet_engine.kernels.numba._jit import kernel, parallel_kernel


@parallel_kernel(serial_when_one=True)  # predicting and scoring run it on one thread
def softmax_xent_forward(loss, probs, logits, labels, n_threads):
    """loss: (N,)   probs, logits: (N, K)   labels: (N,) int64"""
    n_batch, n_classes = logits.shape
    for n in prange(n_batch):
        top = logits[n, 0]
        for k in range(1, n_classes):
            top = max(top, logits[n, k])
        total = 0.0
        for k in range(n_classes):
            total += np.exp(logits[n, k] - top)
        log_norm = np.log(total)
        for k in range(n_classes):
            probs[n, k] = np.exp(logits[n, k] - top - log_norm)
        loss[n] = log_norm - (logits[n, labels[n]] - top)



@parallel_kernel(serial_when_one=True)  # predicting and scoring run it on one thread
def softmax_forward(probs, scores, sign, n_threads):
    """probs, scores: (N, K), probs may be scores (each row is read before it is written)
    sign: 1.0 (logits) or -1.0 (distances)"""
    n_batch, n_classes = scores.shape
    for n in prange(n_batch):
        top = sign * scores[n, 0]
        for k in range(1, n_classes):
            top = max(top, sign * scores[n, k])
        total = 0.0
        for k in range(n_classes):
            total += np.exp(np.float64(sign * scores[n, k] - top))
        for k in range(n_classes):
            probs[n, k] = np.exp(np.float64(sign * scores[n, k] - top)) / total


@parallel_kernel
def softmax_xent_backward(dlogits, probs, labels, n_threads):
    """dlogits, probs: (N, K)   labels: (N,) int64"""
    n_batch, n_classes = probs.shape
    inv_n = 1.0 / n_batch
    for n in prange(n_batch):
        for k in range(n_classes):
            dlogits[n, k] = probs[n, k] * inv_n
        dlogits[n, labels[n]] -= inv_n


@kernel
def _log_partition(dist_row, j):
    # log(exp(-j) + sum_i exp(-dist_i)), shifted by the smallest exponent for stability.
    m = j
    for k in range(dist_row.shape[0]):
        m = min(m, dist_row[k])
    total = np.exp(m - j)
    for k in range(dist_row.shape[0]):
        total += np.exp(m - dist_row[k])
    return -m + np.log(total)


@parallel_kernel(serial_when_one=True)  # predicting and scoring run it on one thread
def map_loss_forward(loss, dist, labels, j, n_threads):
    """loss: (N,)   dist: (N, K) RBF outputs   labels: (N,) int64   j: positive constant"""
    for n in prange(dist.shape[0]):
        loss[n] = dist[n, labels[n]] + _log_partition(dist[n], j)


@parallel_kernel
def map_loss_backward(ddist, dist, labels, j, n_threads):
    """ddist, dist: (N, K)   labels: (N,) int64"""
    n_batch, n_classes = dist.shape
    inv_n = 1.0 / n_batch
    for n in prange(n_batch):
        log_z = _log_partition(dist[n], j)
        for k in range(n_classes):
            ddist[n, k] = -np.exp(-dist[n, k] - log_z) * inv_n
        ddist[n, labels[n]] += inv_n


@parallel_kernel
def softmax_xent_curvature(hlogits, probs, n_threads):
    """Hessian diagonal of the mean loss in the logits: p (1 - p) / N.   hlogits, probs: (N, K)"""
    n_batch, n_classes = probs.shape
    inv_n = 1.0 / n_batch
    for n in prange(n_batch):
        for k in range(n_classes):
            p = probs[n, k]
            hlogits[n, k] = p * (1.0 - p) * inv_n


@parallel_kernel
def map_loss_curvature(hdist, dist, j, n_threads):
    """Hessian diagonal of the mean MAP loss in the distances: p_i (1 - p_i) / N.   hdist, dist: (N, K)"""
    n_batch, n_classes = dist.shape
    inv_n = 1.0 / n_batch
    for n in prange(n_batch):
        log_z = _log_partition(dist[n], j)
        for k in range(n_classes):
            p = np.exp(-dist[n, k] - log_z)
            hdist[n, k] = p * (1.0 - p) * inv_n
