"""Fixtures shared by the test modules: the real MNIST data, the shared project documents, backends."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from lenet_engine import datasets
from lenet_engine.backends import get_backend
from lenet_engine.errors import LenetEngineError

ROOT = Path(__file__).resolve().parents[1]

# The fuzz tests' budget (tests/fuzzing.py scales it per test). "ci", the default, gives each
# loader (safetensors, IDX, images) a few thousand cases, about a minute and a half for all of
# them on a 2-core machine; "quick" is for iterating: pytest --hypothesis-profile=quick.
# Tests with their own max_examples keep it.
settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("quick", parent=settings.get_profile("ci"), max_examples=60)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder holding the four real MNIST .gz files; fails (never skips) when there is none.

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
            pytest.fail(f"MNIST is needed by the tests and could not be found or downloaded: {exc}")
    if not all((folder / f"{name}.gz").is_file() for name in datasets.MNIST_FILES):
        pytest.fail(f"{folder} does not hold the four MNIST .gz files "
                    "(set LENET_ENGINE_DATA to the folder containing mnist/)")
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
def lenet5_md() -> str:
    """The project's specification, ../shared/LENET5.md (or $LENET_ENGINE_SHARED/LENET5.md)."""
    folder = Path(os.environ.get("LENET_ENGINE_SHARED", ROOT.parent / "shared"))
    path = folder / "LENET5.md"
    if not path.is_file():
        pytest.fail(f"{path} not found: run the tests from a checkout beside shared/, "
                    "or set LENET_ENGINE_SHARED to the folder holding LENET5.md")
    return path.read_text()


@pytest.fixture(scope="session")
def reference():
    return get_backend("numpy")


COMPILED_BACKENDS = ("numba", "cython")
