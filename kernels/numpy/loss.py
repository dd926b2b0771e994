"""NumPy reference: softmax cross-entropy (modern) and the paper's MAP loss (classic); softmax.

Forward writes the per-sample loss; backward writes the gradient of the
batch *mean* of that loss. Twins: kernels/numba/loss.py (and kernels/cython/loss.pyx).
"""

import numpy as np


def softmax_xent_forward(loss, probs, logits, labels, n_threads):
    """loss[n] = -log softmax(logits[n])[labels[n]]; probs = softmax(logits).

    loss: (N,)   probs, logits: (N, K)   labels: (N,) int64 in 0..K-1
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_norm
    probs[...] = np.exp(log_probs)
    loss[...] = -log_probs[np.arange(len(labels)), labels]



def softmax_forward(probs, scores, sign, n_threads):
    """probs[n] = softmax(sign * scores[n]): class probabilities from logits (sign 1) or from
    RBF distances (sign -1, p_i proportional to exp(-y_i)).   probs, scores: (N, K), probs may be scores"""
    signed = sign * scores.astype(np.float64)
    e = np.exp(signed - signed.max(axis=1, keepdims=True))
    probs[...] = e / e.sum(axis=1, keepdims=True)


def softmax_xent_backward(dlogits, probs, labels, n_threads):
    """Gradient of the mean loss: (probs - onehot(labels)) / N.   dlogits, probs: (N, K)"""
    dlogits[...] = probs
    dlogits[np.arange(len(labels)), labels] -= 1.0
    dlogits /= len(labels)


def _log_partition(dist, j):
    # log(exp(-j) + sum_i exp(-dist_i)), shifted by the smallest exponent for stability.
    m = np.minimum(dist.min(axis=1), j)
    return -m + np.log(np.exp(m - j) + np.exp(m[:, None] - dist).sum(axis=1))


def map_loss_forward(loss, dist, labels, j, n_threads):
    """The paper's MAP criterion: loss[n] = dist[n, D] + log(exp(-j) + sum_i exp(-dist[n, i])).

    loss: (N,)   dist: (N, K) RBF outputs   labels: (N,) int64   j: positive constant
    """
    loss[...] = dist[np.arange(len(labels)), labels] + _log_partition(dist, j)


def map_loss_backward(ddist, dist, labels, j, n_threads):
    """Gradient of the mean MAP loss: (onehot(D) - exp(-dist_i) / Z) / N.   ddist, dist: (N, K)"""
    ddist[...] = -np.exp(-dist - _log_partition(dist, j)[:, None])
    ddist[np.arange(len(labels)), labels] += 1.0
    ddist /= len(labels)


def softmax_xent_curvature(hlogits, probs, n_threads):
    """Diagonal of the Hessian of the mean loss in the logits: p_k (1 - p_k) / N.   hlogits, probs: (N, K)"""
    hlogits[...] = probs * (1.0 - probs) / len(probs)


def map_loss_curvature(hdist, dist, j, n_threads):
    """Diagonal of the Hessian of the mean MAP loss in the distances: p_i (1 - p_i) / N,
    p_i = exp(-dist_i) / (exp(-j) + sum_k exp(-dist_k)).   hdist, dist: (N, K)"""
    p = np.exp(-dist - _log_partition(dist, j)[:, None])
    hdist[...] = p * (1.0 - p) / len(dist)
