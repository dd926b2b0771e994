"""The layers LeNet-5 is made of, each a thin driver of one kernel pair.

A layer knows its parameter names and shapes, allocates its output, and
calls its backend's `<op>_forward` / `<op>_backward`; the arithmetic lives in
the kernels (lenet_engine.kernels.<backend>). Called by lenet_engine.network.
Activations are float32, channels-first.
"""

import numpy as np

from lenet_engine.kernels.tables import full_connection_table

F32 = np.float32


def _new(alloc, shape):
    """A float32 array of `shape` for a layer to write: from alloc when given, else new."""
    return np.empty(shape, dtype=F32) if alloc is None else alloc(shape)


class Layer:
    """Base: a layer without parameters. Subclasses override what they need."""

    def __init__(self, name, in_shape, out_shape):
        self.name = name
        self.in_shape = tuple(in_shape)    # one sample, e.g. (6, 28, 28)
        self.out_shape = tuple(out_shape)

    def param_shapes(self):
        """{parameter name: shape} of the trainable parameters."""
        return {}

    def buffer_shapes(self):
        """{name: shape} of fixed (non-trainable) tensors saved with the weights."""
        return {}

    def fan_in(self, param):
        """Inputs feeding one unit, for initialisation; None for parameter-free layers."""
        return None

    def forward(self, k, p, x, n_threads, alloc=None):
        """Return the output for input x. alloc(shape) gives the float32 array to write it
        into (training reuses its buffers from step to step); None: a new array."""
        raise NotImplementedError

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        """Return dx; write each parameter gradient into grads[param name].

        input_grad=False (the network's first layer, whose dx nobody reads): a layer
        may skip dx and return None; the convolutions do. alloc: as in forward.
        """
        raise NotImplementedError

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        """SDLM's second-order backward: return hx; write each parameter's curvature into curv[name].

        hy is the Gauss-Newton diagonal arriving at the output, dy the gradient there
        (read only by layers with curvature of their own, the RBF units).
        """
        raise NotImplementedError



class Conv(Layer):
    """Valid 5x5 convolution over all input maps, + bias."""

    def __init__(self, name, in_shape, n_out, kernel=5):
        c, h, w = in_shape
        super().__init__(name, in_shape, (n_out, h - kernel + 1, w - kernel + 1))
        self.kernel = kernel

    def param_shapes(self):
        n_out, n_in, k = self.out_shape[0], self.in_shape[0], self.kernel
        return {f"{self.name}.weight": (n_out, n_in, k, k), f"{self.name}.bias": (n_out,)}

    def fan_in(self, param):
        return self.in_shape[0] * self.kernel ** 2

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, (len(x),) + self.out_shape)
        k.conv2d_forward(y, x, p[f"{self.name}.weight"], p[f"{self.name}.bias"], n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape) if input_grad else None
        k.conv2d_backward(dx, grads[f"{self.name}.weight"], grads[f"{self.name}.bias"],
                          dy, x, p[f"{self.name}.weight"], n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        k.conv2d_curvature(hx, curv[f"{self.name}.weight"], curv[f"{self.name}.bias"],
                           hy, x, p[f"{self.name}.weight"], n_threads)
        return hx

    def sparse_form(self, p):
        """(kernels (P, K, K), bias, conn_start, conn_in): this convolution as a sparse one whose
        table lists every pair, as the fused kernel reads a C3."""
        w = p[f"{self.name}.weight"]
        table = full_connection_table(self.out_shape[0], self.in_shape[0])
        return (w.reshape(-1, self.kernel, self.kernel), p[f"{self.name}.bias"]) + table


class SparseConv(Layer):
    """5x5 convolution where output map o reads only the input maps of row o of a table (C3)."""

    def __init__(self, name, in_shape, conn_start, conn_in, kernel=5):
        c, h, w = in_shape
        super().__init__(name, in_shape, (len(conn_start) - 1, h - kernel + 1, w - kernel + 1))
        self.kernel = kernel
        self.conn_start, self.conn_in = conn_start, conn_in

    def param_shapes(self):
        k = self.kernel
        return {f"{self.name}.weight": (len(self.conn_in), k, k),
                f"{self.name}.bias": (self.out_shape[0],)}

    def fan_in(self, param):
        # Units of different maps read different numbers of maps; the
        # initialiser takes one bound per output map.
        return np.diff(self.conn_start) * self.kernel ** 2

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, (len(x),) + self.out_shape)
        k.sparse_conv2d_forward(y, x, p[f"{self.name}.weight"], p[f"{self.name}.bias"],
                                self.conn_start, self.conn_in, n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape) if input_grad else None
        k.sparse_conv2d_backward(dx, grads[f"{self.name}.weight"], grads[f"{self.name}.bias"],
                                 dy, x, p[f"{self.name}.weight"],
                                 self.conn_start, self.conn_in, n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        k.sparse_conv2d_curvature(hx, curv[f"{self.name}.weight"], curv[f"{self.name}.bias"],
                                  hy, x, p[f"{self.name}.weight"],
                                  self.conn_start, self.conn_in, n_threads)
        return hx

    def sparse_form(self, p):
        """(kernels (P, K, K), bias, conn_start, conn_in), as Conv.sparse_form."""
        return p[f"{self.name}.weight"], p[f"{self.name}.bias"], self.conn_start, self.conn_in


class AvgPool(Layer):
    """2x2 average pooling, stride 2, no parameters (modern)."""

    def __init__(self, name, in_shape):
        c, h, w = in_shape
        super().__init__(name, in_shape, (c, h // 2, w // 2))
        # As a subsampling layer (pool_form): coefficient 1/4 and bias 0 for every map.
        self._coef, self._bias = np.full(c, 0.25, F32), np.zeros(c, F32)
        self._coef.flags.writeable = self._bias.flags.writeable = False

    def pool_form(self, p):
        """(coefficient, bias) per map, as the fused kernel's subsampling reads them."""
        return self._coef, self._bias

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, (len(x),) + self.out_shape)
        k.avgpool2x2_forward(y, x, n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape)
        k.avgpool2x2_backward(dx, dy, n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        k.avgpool2x2_curvature(hx, hy, n_threads)
        return hx


class Subsample(Layer):
    """LeNet's S2/S4: 2x2 block sums times a trainable coefficient, + bias, per map."""

    def __init__(self, name, in_shape):
        c, h, w = in_shape
        super().__init__(name, in_shape, (c, h // 2, w // 2))

    def param_shapes(self):
        c = self.in_shape[0]
        return {f"{self.name}.coef": (c,), f"{self.name}.bias": (c,)}

    def fan_in(self, param):
        return 4

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, (len(x),) + self.out_shape)
        k.subsample_forward(y, x, p[f"{self.name}.coef"], p[f"{self.name}.bias"], n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape)
        k.subsample_backward(dx, grads[f"{self.name}.coef"], grads[f"{self.name}.bias"],
                             dy, x, p[f"{self.name}.coef"], n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        k.subsample_curvature(hx, curv[f"{self.name}.coef"], curv[f"{self.name}.bias"],
                              hy, x, p[f"{self.name}.coef"], n_threads)
        return hx

    def pool_form(self, p):
        """(coefficient, bias) per map, as the fused kernel's subsampling reads them."""
        return p[f"{self.name}.coef"], p[f"{self.name}.bias"]


class Squash(Layer):
    """amplitude * tanh(slope * x), elementwise; (1, 1) is plain tanh."""

    def __init__(self, name, shape, amplitude, slope):
        super().__init__(name, shape, shape)
        self.amplitude, self.slope = F32(amplitude), F32(slope)

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, x.shape)
        k.tanh_forward(y.reshape(-1), x.reshape(-1), self.amplitude, self.slope, n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape)
        k.tanh_backward(dx.reshape(-1), dy.reshape(-1), y.reshape(-1),
                        self.amplitude, self.slope, n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        k.tanh_curvature(hx.reshape(-1), hy.reshape(-1), y.reshape(-1),
                         self.amplitude, self.slope, n_threads)
        return hx


class Linear(Layer):
    """Full layer over the flattened (C, H, W) input; `weight_shape` lets C5 keep its conv shape."""

    def __init__(self, name, in_shape, n_out, weight_shape=None):
        super().__init__(name, in_shape, (n_out,))
        self.n_in = int(np.prod(in_shape))
        self.weight_shape = weight_shape or (n_out, self.n_in)

    def param_shapes(self):
        return {f"{self.name}.weight": self.weight_shape, f"{self.name}.bias": self.out_shape}

    def fan_in(self, param):
        return self.n_in

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, (len(x),) + self.out_shape)
        w = p[f"{self.name}.weight"].reshape(self.out_shape[0], self.n_in)
        k.linear_forward(y, x.reshape(len(x), self.n_in), w, p[f"{self.name}.bias"], n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape)
        n_out = self.out_shape[0]
        k.linear_backward(dx.reshape(len(x), self.n_in),
                          grads[f"{self.name}.weight"].reshape(n_out, self.n_in),
                          grads[f"{self.name}.bias"], dy,
                          x.reshape(len(x), self.n_in),
                          p[f"{self.name}.weight"].reshape(n_out, self.n_in), n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        n_out = self.out_shape[0]
        k.linear_curvature(hx.reshape(len(x), self.n_in),
                           curv[f"{self.name}.weight"].reshape(n_out, self.n_in),
                           curv[f"{self.name}.bias"], hy,
                           x.reshape(len(x), self.n_in),
                           p[f"{self.name}.weight"].reshape(n_out, self.n_in), n_threads)
        return hx

    def matrix_form(self, p):
        """(weights (n_out, n_in), bias): the layer as a matrix over its flattened input."""
        return p[f"{self.name}.weight"].reshape(self.out_shape[0], self.n_in), p[f"{self.name}.bias"]

    def output_form(self, p):
        """(weights, bias, distance_output) as the fused kernel's output stage reads them."""
        return self.matrix_form(p) + (False,)


class RBF(Layer):
    """Euclidean RBF units: squared distance from the input to each prototype.

    The prototypes are fixed (the paper's) unless `trainable`; either way they
    are saved with the weights under the same name.
    """

    def __init__(self, name, n_in, n_units, trainable=False):
        super().__init__(name, (n_in,), (n_units,))
        self.trainable = trainable
        self._zeros = np.zeros(n_units, F32)
        self._zeros.flags.writeable = False

    def _shapes(self):
        return {f"{self.name}.prototypes": self.out_shape + self.in_shape}

    def param_shapes(self):
        return self._shapes() if self.trainable else {}

    def buffer_shapes(self):
        return {} if self.trainable else self._shapes()

    def forward(self, k, p, x, n_threads, alloc=None):
        y = _new(alloc, (len(x),) + self.out_shape)
        k.rbf_forward(y, x, p[f"{self.name}.prototypes"], n_threads)
        return y

    def backward(self, k, p, x, y, dy, grads, n_threads, input_grad=True, alloc=None):
        dx = _new(alloc, x.shape)
        name = f"{self.name}.prototypes"
        # Fixed prototypes: the kernel's gradient for them goes to scratch and is dropped.
        dcenters = grads[name] if self.trainable else np.empty_like(p[name])
        k.rbf_backward(dx, dcenters, dy, x, p[name], n_threads)
        return dx

    def curvature(self, k, p, x, y, dy, hy, curv, n_threads):
        hx = np.empty_like(x)
        name = f"{self.name}.prototypes"
        hcenters = curv[name] if self.trainable else np.empty_like(p[name])
        k.rbf_curvature(hx, hcenters, hy, dy, x, p[name], n_threads)
        return hx

    def output_form(self, p):
        """(prototypes, zero biases (unread), distance_output) as the fused kernel's output stage reads them."""
        return p[f"{self.name}.prototypes"], self._zeros, True
