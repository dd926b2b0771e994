"""What the test modules share: the tiers, optional packages, the real MNIST, backends.

Tiers: `pytest` runs the default tier; tests marked `slow` (full-pass retraining,
the build-variant compiles) run with `pytest -m slow`, and the large fuzzing
budgets with `--hypothesis-profile=ci`. A test that needs something this machine
lacks (an optional package, MNIST) skips and says what is missing; with
LENET_ENGINE_REQUIRE_ALL=1, as .ci/run sets it, every such skip is a failure, so
CI can never pass by skipping.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from lenet_engine import datasets
from lenet_engine.backends import get_backend
from lenet_engine.errors import LenetEngineError

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_ALL = os.environ.get("LENET_ENGINE_REQUIRE_ALL") == "1"

# The fuzz tests' budget (tests/fuzzing.py scales it per test). "default" keeps the default
# tier fast; "ci" gives each loader (safetensors, IDX, images) a few thousand cases:
# pytest --hypothesis-profile=ci. Tests with their own max_examples keep it.
_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=1000, **_COMMON)
settings.register_profile("quick", max_examples=30, **_COMMON)
settings.load_profile("default")

# What to install for each optional package the tests import.
EXTRAS = {"PIL": "images", "scipy": "images", "matplotlib": "plot", "h5py": "keras", "onnx": "onnx",
          "onnxruntime": "onnx", "torch": "torch", "dask": "dask", "distributed": "dask", "pyarrow": "dask",
          "pandas": "dask", "sklearn": "sklearn", "dask_ml": "sklearn", "cloudpickle": "dask",
          "starlette": "serve", "uvicorn": "serve", "httpx": "serve-test", "requests": "serve-test",
          "tritonclient": "serve-test", "selenium": "serve-test"}


def require(module):
    """Import an optional package for a test module, or skip it, naming the extra that installs it."""
    extra = EXTRAS[module.split(".")[0]]
    return pytest.importorskip(module, reason=f"needs {module}: pip install 'lenet-engine[{extra}]'")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but LENET_ENGINE_REQUIRE_ALL=1 forbids skips: {reason}"


def pytest_collectreport(report):
    # A module that skips as a whole (pytest.importorskip at import) is a collection skip.
    if REQUIRE_ALL and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but LENET_ENGINE_REQUIRE_ALL=1 forbids skips: {reason}"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder holding the four real MNIST .gz files; skips (fails in CI) when there is none.

    $LENET_ENGINE_DATA/mnist if set, else ../shared/data/mnist beside the
    checkout, else the user cache folder, downloading the files if needed.
    """
    value = os.environ.get("LENET_ENGINE_DATA")
    if value:
        folder = Path(value) / "mnist"
    elif (ROOT.parent / "shared" / "data" / "mnist").is_dir():
        folder = ROOT.parent / "shared" / "data" / "mnist"
    else:
        folder = datasets.mnist_dir()
        try:
            for split in ("train", "test"):
                datasets.load_mnist(split, root=folder, download=True)
        except LenetEngineError as exc:
            pytest.skip(f"needs the real MNIST, which could not be found or downloaded ({exc}); "
                        "set LENET_ENGINE_DATA to the folder holding mnist/")
    if not all((folder / f"{name}.gz").is_file() for name in datasets.MNIST_FILES):
        pytest.skip(f"needs the real MNIST: {folder} does not hold the four MNIST .gz files "
                    "(set LENET_ENGINE_DATA to the folder holding mnist/)")
    return folder


@pytest.fixture(scope="session")
def mnist_test(mnist_root):
    """The 10,000 MNIST test digits and labels (read-only arrays)."""
    images, labels = datasets.load_mnist("test", root=mnist_root, download=False)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@pytest.fixture(scope="session")
def mnist_train(mnist_root):
    images, labels = datasets.load_mnist("train", root=mnist_root, download=False)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@pytest.fixture(scope="session")
def reference():
    return get_backend("numpy")


COMPILED_BACKENDS = ("numba", "cython")
