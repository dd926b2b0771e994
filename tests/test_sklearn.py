"""lenet_engine.sklearn.LeNet5Classifier: scikit-learn's estimator checks, and the tools that take estimators."""

import numpy as np
import pytest

from conftest import require

require("sklearn")
import joblib
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

import lenet_engine as le
from lenet_engine.sklearn import LeNet5Classifier

NEEDS_784 = "a LeNet5 takes 28x28 digits, 784 pixel features; this check's data has a few features"
# Every check that fits or predicts on scikit-learn's own small datasets, and why it cannot apply.
EXPECTED_FAILURES = {name: NEEDS_784 for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_estimators_dtypes", "check_dtype_object", "check_pipeline_consistency", "check_estimators_nan_inf",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array",
    "check_classifiers_one_label", "check_classifiers_classes", "check_classifiers_train",
    "check_supervised_y_2d", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
    "check_fit2d_predict1d")}
EXPECTED_FAILURES["check_fit2d_1sample"] = ("one digit is enough to fit a LeNet5: the check's 10-feature "
                                            "sample is refused for its features, not its count")
EXPECTED_FAILURES["check_fit2d_1feature"] = NEEDS_784 + " (refused with 'X has 1 features, ... expecting 784')"
# The kernels take numpy arrays: scikit-learn skips this check unless SCIPY_ARRAY_API is set.
NOT_RUN = {"check_array_api_input"}

def _name(check):
    return getattr(check, "func", check).__name__


def _check_of(case):
    # The generator gives (estimator, check), or a pytest.param of them marked xfail with its reason.
    return (case.values if hasattr(case, "values") else case)[1]


CASES = [case for case in estimator_checks_generator(LeNet5Classifier(epochs=1), legacy=True,
                                                     expected_failed_checks=EXPECTED_FAILURES, mark="xfail")
         if _name(_check_of(case)) not in NOT_RUN]


@pytest.mark.parametrize("estimator, check", CASES, ids=[_name(_check_of(c)) for c in CASES])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_every_expected_failure_names_a_check_that_runs():
    assert set(EXPECTED_FAILURES) <= {_name(_check_of(case)) for case in CASES}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Batches of 16 digits are too little work to share: on a busy 2-core machine two OpenMP
    # threads wait on each other at every step (40x slower here than one).
    le.set_num_threads(1)
    yield
    le.set_num_threads(None)


@pytest.fixture(scope="module")
def data(mnist_train, mnist_test):
    return mnist_train[0][:1000], mnist_train[1][:1000], mnist_test[0][:500], mnist_test[1][:500]


@pytest.fixture(scope="module")
def fitted(data):
    x, y, _, _ = data
    return LeNet5Classifier(epochs=1, batch_size=16).fit(x.reshape(-1, 784), y)


def test_fit_predict_score_on_flat_or_square_digits(fitted, data):
    x, y, xt, yt = data
    assert fitted.n_features_in_ == 784 and list(fitted.classes_) == list(range(10))
    same = LeNet5Classifier(epochs=1, batch_size=16).fit(x, y)  # (N, 28, 28): the same training
    np.testing.assert_array_equal(same.predict(xt), fitted.predict(xt.reshape(-1, 784)))
    probs = fitted.predict_proba(xt)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert fitted.score(xt, yt) > 0.7  # 1,000 digits seen once
    np.testing.assert_array_equal(fitted.predict(xt.astype(np.int64)), fitted.predict(xt))


def test_labels_of_any_kind_and_fewer_than_ten_classes(data):
    x, y, xt, _ = data
    keep = y < 3
    names = np.array(["zero", "one", "two"])[y[keep]]
    clf = LeNet5Classifier(epochs=1).fit(x[keep], names)
    assert list(clf.classes_) == ["one", "two", "zero"]
    assert clf.predict_proba(xt).shape == (len(xt), 3)
    assert set(clf.predict(xt)) <= set(names)


def test_bad_inputs_are_refused_clearly(fitted, data):
    x, _, _, _ = data
    with pytest.raises(ValueError, match="expecting 784 features"):
        fitted.predict(np.zeros((2, 100)))
    with pytest.raises(le.InvalidInputError, match="0..255"):
        fitted.predict(np.full((2, 784), 300))
    with pytest.raises(le.InvalidInputError, match="11 classes"):
        LeNet5Classifier(epochs=1).fit(x[:11], np.arange(11))


def test_clone_params_and_pickles(fitted, data):
    _, _, xt, _ = data
    twin = clone(fitted).set_params(epochs=5)
    assert twin.get_params()["epochs"] == 5 and not hasattr(twin, "model_")
    import io

    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict_proba(xt), fitted.predict_proba(xt))


def test_pipeline_grid_search_on_two_processes_and_cross_validation(data):
    x, y, xt, yt = data
    pipe = make_pipeline(MinMaxScaler(clip=True), LeNet5Classifier(epochs=1))
    search = GridSearchCV(pipe, {"lenet5classifier__batch_size": [16, 64]}, cv=2, n_jobs=2).fit(
        x.reshape(-1, 784), y)
    assert search.best_params_["lenet5classifier__batch_size"] in (16, 64)
    assert search.score(xt.reshape(-1, 784), yt) > 0.5
    scores = cross_val_score(LeNet5Classifier(epochs=1), x.reshape(-1, 784), y, cv=2)
    assert scores.shape == (2,) and (scores > 0.5).all()


def test_dask_ml_parallel_post_fit_predicts_over_dask_arrays(fitted, data):
    da = require("dask.array")
    wrappers = require("dask_ml.wrappers")
    _, _, xt, _ = data
    wrapped = wrappers.ParallelPostFit(fitted)
    lazy = wrapped.predict(da.from_array(xt.reshape(-1, 784), chunks=(250, 784)))
    np.testing.assert_array_equal(lazy.compute(), fitted.predict(xt))
