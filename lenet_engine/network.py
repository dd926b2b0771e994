"""Running an architecture's layers on a backend: forward passes, the loss and its gradients.

Stateless functions over (architecture, kernels, state dict); the model in
lenet_engine.model owns the state and calls these.
"""

import numpy as np

F32 = np.float32


def bound_forward(arch, k, state):
    """The forward pass as a callable (out, digits, n_threads) -> how many outputs are not finite.

    Backend k's fused kernel (lenet5_forward), which takes each digit through every
    layer, bound to the state's weights (Lenet5Forward): digits (N, 28, 28) as
    inputs.kernel_digits gives them, out (N, 10) float32 C-contiguous, written with
    RBF distances (classic) or logits (modern). The compiled backends check the
    weights once, here, and count non-finite outputs in compiled code. The state's
    arrays are read at every call, so in-place updates (training) are seen.
    """
    return k.Lenet5Forward(arch.fused_weights(state))


def forward_layers(arch, k, state, x, n_threads, alloc=None):
    """Outputs as forward() does, layer kernel by layer kernel, and every layer's output (backward needs them).

    Returns (outputs, activations) with activations[0] = x and activations[i + 1] the output of layer i.
    alloc: where the layers' outputs go (a Workspace), None for new arrays.
    """
    activations = [x]
    for layer in arch.layers:
        activations.append(layer.forward(k, state, activations[-1], n_threads, alloc=alloc))
    return activations[-1], activations


class Workspace:
    """Float32 buffers a training loop reuses from step to step.

    Called with a shape, as the layers' `alloc`: the i-th request of a step gets the
    buffer the i-th request of the step before got, when the shape is the same. New
    arrays every step would have the OS zero fresh pages for each (about 6% of a
    training step). Whatever a step returns is overwritten by the next one.
    """

    def __init__(self):
        self._buffers = []
        self._next = 0

    def start_step(self):
        self._next = 0

    def __call__(self, shape):
        i, self._next = self._next, self._next + 1
        if i < len(self._buffers) and self._buffers[i].shape == tuple(shape):
            return self._buffers[i]
        buffer = np.empty(shape, dtype=F32)
        self._buffers[i:i + 1] = [buffer]
        return buffer


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


def _loss_gradient(arch, k, out, labels, n_threads, map_j):
    """Per-digit losses, the gradient of their mean in the outputs, and the softmax (modern) or None."""
    dout = np.empty_like(out)
    if arch.loss == "map":
        batch_losses = losses(arch, k, out, labels, n_threads, map_j)
        k.map_loss_backward(dout, out, labels, float(map_j), n_threads)
        return batch_losses, dout, None
    probs = np.empty_like(out)
    batch_losses = losses(arch, k, out, labels, n_threads, map_j, probs)
    k.softmax_xent_backward(dout, probs, labels, n_threads)
    return batch_losses, dout, probs


def loss_and_gradients(arch, k, state, x, labels, n_threads, map_j, workspace=None):
    """Mean loss over the batch, outputs, and {parameter: gradient of the mean loss}.

    With a Workspace, the outputs and gradients live in its buffers (valid until the next call).
    """
    if workspace is not None:
        workspace.start_step()
    out, activations = forward_layers(arch, k, state, x, n_threads, alloc=workspace)
    batch_losses, dout, _ = _loss_gradient(arch, k, out, labels, n_threads, map_j)
    new = workspace or (lambda shape: np.empty(shape, dtype=F32))
    grads = {name: new(shape) for name, shape in arch.param_shapes().items()}
    dy = dout
    steps = list(zip(arch.layers, activations[:-1], activations[1:]))
    for i in reversed(range(len(steps))):
        layer, layer_in, layer_out = steps[i]
        # The first layer's input gradient would only be thrown away.
        dy = layer.backward(k, state, layer_in, layer_out, dy, grads, n_threads, input_grad=i > 0,
                            alloc=workspace)
    return float(batch_losses.mean(dtype=np.float64)), out, grads


def curvature(arch, k, state, x, labels, n_threads, map_j):
    """{parameter: Gauss-Newton diagonal of the Hessian of the mean loss over x}, for SDLM.

    The second-order backward pass: the loss's own Hessian diagonal in the outputs, sent
    back through every layer's <op>_curvature kernel (squared weights, squared slopes).
    """
    out, activations = forward_layers(arch, k, state, x, n_threads)
    _, dout, probs = _loss_gradient(arch, k, out, labels, n_threads, map_j)
    hout = np.empty_like(out)
    if arch.loss == "map":
        k.map_loss_curvature(hout, out, float(map_j), n_threads)
    else:
        k.softmax_xent_curvature(hout, probs, n_threads)
    curv = {name: np.empty(shape, dtype=F32) for name, shape in arch.param_shapes().items()}
    dy, hy = dout, hout
    steps = zip(arch.layers, activations[:-1], activations[1:])
    for layer, layer_in, layer_out in reversed(list(steps)):
        hy = layer.curvature(k, state, layer_in, layer_out, dy, hy, curv, n_threads)
        dy = None  # only the output layer reads the gradient
    return curv


def predicted_labels(arch, outputs):
    """Class per row: the nearest prototype (classic) or the largest logit (modern)."""
    if arch.predicts_by_distance:
        return outputs.argmin(axis=1).astype(np.int64)
    return outputs.argmax(axis=1).astype(np.int64)


def to_probabilities(arch, k, outputs, n_threads):
    """Outputs (N, 10) float32 turned into posteriors in place: softmax of the logits, or of minus
    the RBF distances (p_i ~ exp(-y_i))."""
    k.softmax_forward(outputs, outputs, -1.0 if arch.predicts_by_distance else 1.0, n_threads)
