"""What every model does with digits, whatever its precision: forward, predict, predict_proba,
evaluate. LeNet5 (float32, lenet_engine.model) and Int8LeNet5 (lenet_engine.int8_model) are
Predictors; each says how a chunk of digits goes to its fused kernel (_kernel_input) and which
kernel that is (_bind).
"""

import numpy as np

from lenet_engine import network
from lenet_engine.backends import get_backend, get_num_threads
from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import N_CLASSES, check_digits, check_labels, check_positive

# Digits per forward pass when predicting: bounds memory for any batch size.
PREDICT_CHUNK = 1024
# The constant j of the MAP loss, E = y_D + log(exp(-j) + sum_i exp(-y_i)).
DEFAULT_MAP_J = 1.0


# The softmax and the losses of (N, 10) outputs run on the calling thread: a few microseconds per
# thousand digits, where their layer kernels' OpenMP team would make any later fork() of this
# process hang in its child (GNU OpenMP is not fork-safe). Predicting and scoring then use the
# fused passes' own threads only, which a forked child makes afresh.
ONE_THREAD = 1


class Predictor:
    """The inference API over an architecture (_arch), a backend (_kernels) and a bound fused pass."""

    @property
    def arch(self):
        return self._arch.name

    @property
    def backend(self):
        """Name of the kernel backend in use; assign a name (or "auto") to switch."""
        return self._kernels.NAME

    @backend.setter
    def backend(self, name):
        self._kernels = get_backend(name)
        self._backend_asked = name  # what a pickle records: "auto" picks again where it is unpickled
        self._bound = None  # bound to the previous backend's kernel

    def _threads(self, n_digits):
        # No more threads than digits: a lone digit runs on the calling thread,
        # without waking a thread pool (or asking how many threads there are: a tenth
        # of one digit's prediction).
        if n_digits <= 1:
            return 1
        return min(get_num_threads(), self._kernels.MAX_THREADS, n_digits)

    # --- inference ---------------------------------------------------------

    def forward(self, x):
        """(N, 10) float32 network outputs: RBF distances (classic) or logits (modern)."""
        return self._forward_checked(check_digits(x))

    def _forward_checked(self, digits):
        out = np.empty((len(digits), N_CLASSES), dtype=np.float32)
        n_threads = self._threads(min(len(digits), PREDICT_CHUNK))
        if self._bound is None:
            self._bound = self._bind()
        if len(digits) <= PREDICT_CHUNK:  # one pass, without slicing (a lone digit's call is ~15 us)
            not_finite = self._bound(out, self._kernel_input(digits), n_threads)
        else:
            not_finite = 0
            for start in range(0, len(digits), PREDICT_CHUNK):
                chunk = self._kernel_input(digits[start:start + PREDICT_CHUNK])
                # Rows of a C-contiguous (N, 10) array: the kernel writes them in place.
                not_finite += self._bound(out[start:start + len(chunk)], chunk, n_threads)
                del chunk  # freed before the next one is made: one chunk's input in memory, not two
        if not_finite:
            # Finite inputs only give non-finite outputs when the weights have blown up.
            raise FloatingPointError("the network's outputs overflow: these weights are unusable")
        return out

    def predict(self, x):
        """(N,) int64 class labels."""
        return network.predicted_labels(self._arch, self.forward(x))

    def predict_proba(self, x):
        """(N, 10) float32 class probabilities; classic: p_i proportional to exp(-y_i)."""
        return self._probabilities(self.forward(x))

    def labels_and_probabilities(self, x):
        """(labels (N,) int64, probabilities (N, 10) float32) from one forward pass: each label is
        exactly predict's, and the network runs once, not twice."""
        outputs = self.forward(x)
        return network.predicted_labels(self._arch, outputs), self._probabilities(outputs)

    def _probabilities(self, outputs):
        # In place: the outputs are this call's own array. On one thread (ONE_THREAD).
        network.to_probabilities(self._arch, self._kernels, outputs, ONE_THREAD)
        return outputs

    def predict_number(self, image, *, invert=None, min_probability=None):
        """The number written in a row on a picture -> NumberReading (.text "2026", .value, .digits).

        image: a picture as images.to_mnist takes (a photo, a scan); its digits are found by
        images.split_digits. A digit whose top probability is under `min_probability`
        (default photos.reading.UNSURE_BELOW, 0.9) is flagged unsure and shown as "?".
        """
        from lenet_engine.photos.reading import UNSURE_BELOW, read_number

        return read_number(self, image, invert=invert,
                           min_probability=UNSURE_BELOW if min_probability is None else min_probability)

    def score(self, x, y):
        """Accuracy on digits x with labels y."""
        return self.evaluate(x, y)[1]

    def evaluate(self, x, y, map_j=None):
        """(mean loss, accuracy) on digits x with labels y."""
        digits = check_digits(x)
        labels = check_labels(y, len(digits))
        if not len(digits):
            raise InvalidInputError("evaluating needs at least one digit")
        return self._evaluate_checked(digits, labels, self._map_j(map_j))

    def _evaluate_checked(self, digits, labels, map_j):
        outputs = self._forward_checked(digits)
        batch_losses = network.losses(self._arch, self._kernels, outputs, labels, ONE_THREAD, map_j)
        accuracy = float(np.mean(network.predicted_labels(self._arch, outputs) == labels))
        return float(batch_losses.mean(dtype=np.float64)), accuracy

    def _map_j(self, map_j):
        if map_j is None:
            map_j = (self.metadata.get("recipe") or {}).get("map_j") or DEFAULT_MAP_J
        return check_positive(map_j, "map_j")
