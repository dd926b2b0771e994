"""Running an architecture's layers on a backend: forward passes, the loss and its gradients.

Stateless functions over (architecture, kernels, state dict); the model in
lenet_engine.model owns the state and calls these.
"""

import numpy as np

F32 = np.float32


def forward(arch, k, state, x, n_threads, keep=False):
    """Outputs (N, 10) of the network for prepared input x (N, 1, 32, 32) float32.

    Outputs are RBF distances (classic) or logits (modern). With keep=True also
    returns every layer's input and output, as backward needs them.
    """
    activations = [x]
    for layer in arch.layers:
        x = layer.forward(k, state, x, n_threads)
        if keep:
            activations.append(x)
    return x, activations


def losses(arch, k, out, labels, n_threads, map_j, probs=None):
    """Per-digit losses (N,) float32 of outputs `out`: MAP (classic) or cross-entropy (modern).

    For cross-entropy the softmax is written into `probs` when given (backward needs it).
    """
    result = np.empty(len(out), dtype=F32)
    if arch.loss == "map":
        k.map_loss_forward(result, out, labels, float(map_j), n_threads)
    else:
        k.softmax_xent_forward(result, np.empty_like(out) if probs is None else probs,
                               out, labels, n_threads)
    return result


def loss_and_gradients(arch, k, state, x, labels, n_threads, map_j):
    """Mean loss over the batch, outputs, and {parameter: gradient of the mean loss}."""
    out, activations = forward(arch, k, state, x, n_threads, keep=True)
    dout = np.empty_like(out)
    if arch.loss == "map":
        batch_losses = losses(arch, k, out, labels, n_threads, map_j)
        k.map_loss_backward(dout, out, labels, float(map_j), n_threads)
    else:
        probs = np.empty_like(out)
        batch_losses = losses(arch, k, out, labels, n_threads, map_j, probs)
        k.softmax_xent_backward(dout, probs, labels, n_threads)
    grads = {name: np.empty(shape, dtype=F32) for name, shape in arch.param_shapes().items()}
    dy = dout
    steps = zip(arch.layers, activations[:-1], activations[1:])
    for layer, layer_in, layer_out in reversed(list(steps)):
        dy = layer.backward(k, state, layer_in, layer_out, dy, grads, n_threads)
    return float(batch_losses.mean(dtype=np.float64)), out, grads


def predicted_labels(arch, outputs):
    """Class per row: the nearest prototype (classic) or the largest logit (modern)."""
    if arch.predicts_by_distance:
        return outputs.argmin(axis=1).astype(np.int64)
    return outputs.argmax(axis=1).astype(np.int64)


def probabilities(arch, outputs):
    """(N, 10) float32 posteriors: softmax of the logits, or of minus the RBF distances (p_i ~ exp(-y_i))."""
    scores = -outputs if arch.predicts_by_distance else outputs
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted, dtype=np.float64)
    return (e / e.sum(axis=1, keepdims=True)).astype(F32)
