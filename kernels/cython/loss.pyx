# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, language_level=3
# Twins: kernels/numpy/loss.py (the reference) and kernels/numba/loss.py.
"""Cython kernels: softmax cross-entropy (modern) and the paper's MAP loss (classic); softmax.

Forward writes the per-sample loss, backward the gradient of the batch
*mean* of that loss. Parallel over the batch. The per-sample arithmetic is
done in double (N x 10 numbers, so it costs nothing). Called by
lenet_engine.model.
"""

from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdint cimport int64_t

include "_checks.pxi"


# --- softmax cross-entropy ----------------------------------------------------

cdef double _softmax_xent_row(float* probs, const float* logits, Py_ssize_t n_classes,
                              int64_t label) noexcept nogil:
    # Writes one row of probabilities, returns its loss. Exponents are shifted
    # by the largest logit so none overflows.
    cdef Py_ssize_t k
    cdef double top = logits[0], total = 0.0, log_norm
    for k in range(1, n_classes):
        if logits[k] > top:
            top = logits[k]
    for k in range(n_classes):
        total += exp(logits[k] - top)
    log_norm = log(total)
    for k in range(n_classes):
        probs[k] = <float>exp(logits[k] - top - log_norm)
    return log_norm - (logits[label] - top)


def softmax_xent_forward(float[::1] loss not None, float[:, ::1] probs not None,
                         const float[:, ::1] logits not None, const int64_t[::1] labels not None,
                         int n_threads):
    """loss[n] = -log softmax(logits[n])[labels[n]]; probs = softmax(logits).
    loss: (N,)   probs, logits: (N, K)   labels: (N,) int64 in 0..K-1"""
    name = "softmax_xent_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = logits.shape[0], n_classes = logits.shape[1]
    check_shape(name, "loss", loss.shape, 1, (n_batch,))
    check_shape(name, "probs", probs.shape, 2, (n_batch, n_classes))
    check_labels(name, labels, n_batch, n_classes)

    cdef Py_ssize_t n
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        loss[n] = <float>_softmax_xent_row(&probs[n, 0], &logits[n, 0], n_classes, labels[n])


cdef void _softmax_row(float* probs, const float* scores, double sign, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t k
    cdef double top = sign * scores[0], total = 0.0
    for k in range(1, n_classes):
        if sign * scores[k] > top:
            top = sign * scores[k]
    for k in range(n_classes):
        total += exp(sign * scores[k] - top)
    for k in range(n_classes):
        probs[k] = <float>(exp(sign * scores[k] - top) / total)


def softmax_forward(float[:, ::1] probs not None, const float[:, ::1] scores not None, double sign,
                    int n_threads):
    """probs[n] = softmax(sign * scores[n]): from logits (sign 1) or RBF distances (sign -1).
    probs, scores: (N, K); probs may be scores (each row is read before it is written). A lone digit's row is done on the calling thread: predict_proba
    of one digit pays for ten exponentials, not for waking a thread team."""
    name = "softmax_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = scores.shape[0], n_classes = scores.shape[1], n
    check_shape(name, "probs", probs.shape, 2, (n_batch, n_classes))
    if n_classes == 0:
        return
    if n_batch <= 64 or n_threads == 1:
        with nogil:
            for n in range(n_batch):
                _softmax_row(&probs[n, 0], &scores[n, 0], sign, n_classes)
        return
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        _softmax_row(&probs[n, 0], &scores[n, 0], sign, n_classes)


def softmax_xent_backward(float[:, ::1] dlogits not None, const float[:, ::1] probs not None,
                          const int64_t[::1] labels not None, int n_threads):
    """Gradient of the mean loss: (probs - onehot(labels)) / N.   dlogits, probs: (N, K)"""
    name = "softmax_xent_backward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = probs.shape[0], n_classes = probs.shape[1]
    check_shape(name, "dlogits", dlogits.shape, 2, (n_batch, n_classes))
    check_labels(name, labels, n_batch, n_classes)

    cdef double inv_n = 1.0 / n_batch if n_batch else 0.0
    cdef Py_ssize_t n, k
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for k in range(n_classes):
            dlogits[n, k] = <float>(probs[n, k] * inv_n)
        dlogits[n, labels[n]] = <float>((probs[n, labels[n]] - 1.0) * inv_n)


def softmax_xent_curvature(float[:, ::1] hlogits not None, const float[:, ::1] probs not None,
                           int n_threads):
    """Hessian diagonal of the mean loss in the logits (SDLM): p (1 - p) / N.   hlogits, probs: (N, K)"""
    name = "softmax_xent_curvature"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = probs.shape[0], n_classes = probs.shape[1]
    check_shape(name, "hlogits", hlogits.shape, 2, (n_batch, n_classes))

    cdef double inv_n = 1.0 / n_batch if n_batch else 0.0
    cdef Py_ssize_t n, k
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        for k in range(n_classes):
            hlogits[n, k] = <float>(probs[n, k] * (1.0 - probs[n, k]) * inv_n)


# --- the paper's MAP criterion ------------------------------------------------

cdef double _log_partition(const float* dist, Py_ssize_t n_classes, double j) noexcept nogil:
    # log(exp(-j) + sum_i exp(-dist_i)), shifted by the smallest exponent
    # min(j, min dist) so the largest term is exp(0) and none overflows.
    cdef Py_ssize_t k
    cdef double m = j, total
    for k in range(n_classes):
        if dist[k] < m:
            m = dist[k]
    total = exp(m - j)
    for k in range(n_classes):
        total += exp(m - dist[k])
    return -m + log(total)


def map_loss_forward(float[::1] loss not None, const float[:, ::1] dist not None,
                     const int64_t[::1] labels not None, double j, int n_threads):
    """loss[n] = dist[n, D] + log(exp(-j) + sum_i exp(-dist[n, i])), D = labels[n].
    loss: (N,)   dist: (N, K) RBF outputs   labels: (N,) int64   j: positive constant"""
    name = "map_loss_forward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = dist.shape[0], n_classes = dist.shape[1]
    check_shape(name, "loss", loss.shape, 1, (n_batch,))
    check_labels(name, labels, n_batch, n_classes)

    cdef Py_ssize_t n
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        loss[n] = <float>(dist[n, labels[n]] + _log_partition(&dist[n, 0], n_classes, j))


def map_loss_backward(float[:, ::1] ddist not None, const float[:, ::1] dist not None,
                      const int64_t[::1] labels not None, double j, int n_threads):
    """Gradient of the mean MAP loss: (onehot(D) - exp(-dist_i) / Z) / N.   ddist, dist: (N, K)"""
    name = "map_loss_backward"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = dist.shape[0], n_classes = dist.shape[1]
    check_shape(name, "ddist", ddist.shape, 2, (n_batch, n_classes))
    check_labels(name, labels, n_batch, n_classes)

    cdef double inv_n = 1.0 / n_batch if n_batch else 0.0
    cdef double log_z
    cdef Py_ssize_t n, k
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        log_z = _log_partition(&dist[n, 0], n_classes, j)
        for k in range(n_classes):
            ddist[n, k] = <float>(-exp(-dist[n, k] - log_z) * inv_n)
        ddist[n, labels[n]] = <float>((1.0 - exp(-dist[n, labels[n]] - log_z)) * inv_n)


def map_loss_curvature(float[:, ::1] hdist not None, const float[:, ::1] dist not None, double j,
                       int n_threads):
    """Hessian diagonal of the mean MAP loss in the distances (SDLM): p_i (1 - p_i) / N,
    p_i = exp(-dist_i) / (exp(-j) + sum_k exp(-dist_k)).   hdist, dist: (N, K)"""
    name = "map_loss_curvature"
    check_threads(name, n_threads)
    cdef Py_ssize_t n_batch = dist.shape[0], n_classes = dist.shape[1]
    check_shape(name, "hdist", hdist.shape, 2, (n_batch, n_classes))

    cdef double inv_n = 1.0 / n_batch if n_batch else 0.0
    cdef double log_z, p
    cdef Py_ssize_t n, k
    for n in prange(n_batch, nogil=True, schedule="static", num_threads=n_threads):
        log_z = _log_partition(&dist[n, 0], n_classes, j)
        for k in range(n_classes):
            p = exp(-dist[n, k] - log_z)
            hdist[n, k] = <float>(p * (1.0 - p) * inv_n)
