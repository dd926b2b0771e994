"""Models cross process boundaries: pickle, copy.deepcopy, cloudpickle, a spawned process."""

import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import lenet_engine as le
from conftest import require
from lenet_engine.errors import ShapeMismatchError

DIGITS = np.random.default_rng(7).integers(0, 256, size=(64, 28, 28), dtype=np.uint8)


def _cloudpickle_round_trip(model):
    cloudpickle = require("cloudpickle")
    return cloudpickle.loads(cloudpickle.dumps(model))


ROUND_TRIPS = {
    "pickle": lambda m: pickle.loads(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL)),
    "deepcopy": copy.deepcopy,
    "cloudpickle": _cloudpickle_round_trip,
}


@pytest.fixture(scope="module", params=le.backends())
def models(request):
    """Shipped, fresh and fitted models on one backend, each after a prediction (so its kernel is bound)."""
    backend = request.param
    fitted = le.LeNet5("modern", seed=3, backend=backend)
    fitted.fit(DIGITS[:16], np.arange(16) % 10, epochs=1, batch_size=16, verbose=0)
    models = {"classic": le.load("classic", backend=backend), "modern": le.load("modern", backend=backend),
              "fresh-classic-trainable": le.LeNet5("classic", seed=1, backend=backend, trainable_prototypes=True),
              "fitted-modern": fitted}
    return backend, {name: (model, model.forward(DIGITS)) for name, model in models.items()}


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_round_trip_gives_the_same_bits_backend_and_metadata(models, how):
    backend, cases = models
    for name, (model, expected) in cases.items():
        copied = ROUND_TRIPS[how](model)
        assert copied.backend == model.backend == backend, name
        assert (copied.arch, copied.num_parameters, copied.metadata) == (model.arch, model.num_parameters,
                                                                          model.metadata), name
        assert copied._arch.trains_prototypes == model._arch.trains_prototypes, name
        np.testing.assert_array_equal(copied.forward(DIGITS), expected, err_msg=name)


def test_a_copy_owns_its_weights():
    model = le.load("modern")
    twin = copy.deepcopy(model)
    twin.fit(DIGITS[:16], np.arange(16) % 10, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.state_dict()["dense3.bias"], le.load("modern").state_dict()["dense3.bias"])
    assert not np.array_equal(twin.state_dict()["dense3.bias"], model.state_dict()["dense3.bias"])


def test_auto_backend_is_chosen_again_where_the_model_is_unpickled():
    model = le.load("classic")  # backend "auto"
    assert pickle.loads(pickle.dumps(model))._backend_asked == "auto"
    model.backend = "numpy"
    assert pickle.loads(pickle.dumps(model))._backend_asked == "numpy"


def test_a_tampered_pickle_is_refused():
    state = le.load("modern").__getstate__()
    state["state"]["dense3.bias"] = np.zeros(11, dtype=np.float32)
    with pytest.raises(ShapeMismatchError, match="dense3.bias"):
        le.LeNet5.__new__(le.LeNet5).__setstate__(state)


def _forward_in_child(model):
    return model.forward(DIGITS), model.backend


def test_a_spawned_process_gets_the_same_outputs():
    model = le.load("classic")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        outputs, backend = pool.submit(_forward_in_child, model).result(timeout=120)
    assert backend == model.backend
    np.testing.assert_array_equal(outputs, model.forward(DIGITS))
