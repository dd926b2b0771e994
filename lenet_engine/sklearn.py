"""LeNet5Classifier: a LeNet5 as a scikit-learn classifier (the [sklearn] extra).

    from lenet_engine.sklearn import LeNet5Classifier
    clf = LeNet5Classifier(arch="modern", epochs=3).fit(X, y)   # X: (N, 784) or (N, 28, 28)
    clf.predict(X), clf.predict_proba(X), clf.score(X, y)

It works wherever scikit-learn estimators do: clone, Pipeline, GridSearchCV and
cross_val_score (n_jobs > 1 too: it pickles), joblib.dump, dask-ml's ParallelPostFit.
Pixels are uint8 0..255 (other integer dtypes are taken if their values are) or
floats in [0, 1]; a LeNet has 784 input pixels, so X must have 784 features.
"""

import numpy as np

from lenet_engine._optional import import_optional

import_optional("sklearn", "sklearn", "lenet_engine.sklearn")

from sklearn.base import BaseEstimator, ClassifierMixin  # after the dependency check
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from lenet_engine.errors import InvalidInputError
from lenet_engine.inputs import DIGIT_SIZE, N_CLASSES
from lenet_engine.model import LeNet5

PIXELS = DIGIT_SIZE * DIGIT_SIZE

__all__ = ["LeNet5Classifier"]


class LeNet5Classifier(ClassifierMixin, BaseEstimator):
    """A LeNet-5 trained by LeNet5.fit; the parameters are fit's (see its docstring) and LeNet5's.

    Fitted attributes: model_ (the LeNet5), classes_ (up to 10 labels, any type), history_
    (fit's per-epoch history), n_features_in_ (784), and feature_names_in_ for DataFrames.
    With fewer than 10 classes, class i is the network's output unit i and the
    probabilities are renormalised over the units in use.
    """

    def __init__(self, arch="modern", *, epochs=10, batch_size=32, optimizer="adam", lr=None, momentum=None,
                 mu=None, augment=None, map_j=None, trainable_prototypes=False, backend="auto",
                 random_state=0, verbose=0):
        self.arch = arch
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.mu = mu
        self.augment = augment
        self.map_j = map_j
        self.trainable_prototypes = trainable_prototypes
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y):
        check_classification_targets(y)
        digits = self._digits(X, y, reset=True)
        y = np.asarray(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) > N_CLASSES:
            raise InvalidInputError(f"y has {len(self.classes_)} classes: a LeNet5 has {N_CLASSES} outputs")
        seed = self._seed()
        model = LeNet5(self.arch, seed=seed, backend=self.backend, trainable_prototypes=self.trainable_prototypes)
        self.history_ = model.fit(digits, labels.astype(np.int64), epochs=self.epochs, batch_size=self.batch_size,
                                  lr=self.lr, optimizer=self.optimizer, momentum=self.momentum, mu=self.mu,
                                  augment=self.augment, map_j=self.map_j, seed=seed, verbose=self.verbose)
        self.model_ = model
        return self

    def predict_proba(self, X):
        """(N, n_classes) float32, columns in the order of classes_."""
        check_is_fitted(self)
        probs = self.model_.predict_proba(self._digits(X))[:, :len(self.classes_)]
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X):
        best = self.predict_proba(X).argmax(axis=1)  # checks the model is fitted first
        return self.classes_[best]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # pixels: negative values are refused
        tags.classifier_tags.poor_score = True  # the checks' data are not pictures of digits
        return tags

    def _seed(self):
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31))

    def _digits(self, X, y=None, reset=False):
        """X checked by scikit-learn's rules (784 features, finite, not sparse) as (N, 28, 28) digits."""
        if isinstance(X, (list, tuple, np.ndarray)) and np.ndim(X) == 3:  # (N, 28, 28): pixels as features
            X = np.asarray(X)
            X = X.reshape(len(X), -1)
        if reset:
            X, _ = validate_data(self, X, y, dtype="numeric", reset=True, y_numeric=False)
        else:
            X = validate_data(self, X, dtype="numeric", reset=False)
        if X.size and X.min() < 0:
            raise InvalidInputError(f"Negative values in data passed to {type(self).__name__}: "
                                    "pixels are uint8 0..255 or floats in [0, 1]")
        if X.shape[1] != PIXELS:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{PIXELS} features as input (the pixels of 28x28 digits)")
        if X.dtype.kind in "iu" and X.dtype != np.uint8:
            if X.size and (X.min() < 0 or X.max() > 255):
                raise InvalidInputError(f"integer pixels range over {X.min()}..{X.max()}: expected 0..255")
            X = X.astype(np.uint8)
        elif X.dtype.kind == "b":
            X = X.astype(np.float32)
        return X.reshape(len(X), DIGIT_SIZE, DIGIT_SIZE)
