"""from_torch: a PyTorch state_dict of the seed's LeNet-5 (or a module, a .pt/.pth or .safetensors file) runs as in PyTorch.

Needs torch; skipped without it (CI installs torch==2.13.0, a CPU build).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require

torch = require("torch")
nn = torch.nn

import lenet_engine as le
from lenet_engine.errors import UnsupportedModelError, WeightsFileError, WeightsNotFoundError
from lenet_engine.io import safetensors_file

TOLERANCE = 1e-5


def seed_sequential():
    """The seed's Keras model in PyTorch, as the from_torch docstring gives it."""
    return nn.Sequential(
        nn.ZeroPad2d(2), nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
        nn.Linear(84, 10),
    )


class NamedLeNet5(nn.Module):
    """The same network with named layers, padding inside conv1 and the activations as functions."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.avg_pool2d(torch.tanh(self.conv1(x)), 2)
        x = nn.functional.avg_pool2d(torch.tanh(self.conv2(x)), 2)
        x = torch.tanh(self.fc1(x.flatten(1)))
        return self.fc3(torch.tanh(self.fc2(x)))


@pytest.fixture(scope="module")
def samples():
    with np.load(Path(le.__file__).parent / "data" / "sample_digits.npz") as data:
        return data["images"], data["labels"]


def torch_outputs(module, images):
    x = torch.from_numpy(images.astype(np.float32) / 255)[:, None]
    with torch.no_grad():
        return module.eval()(x).numpy()


def random_module(cls, seed):
    torch.manual_seed(seed)
    module = cls()
    # PyTorch's default init leaves biases small; larger ones check that each lands in its place.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    return module


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@pytest.mark.parametrize("cls, seed", [(seed_sequential, 0), (seed_sequential, 1), (NamedLeNet5, 2)])
def test_state_dict_runs_as_in_pytorch(cls, seed, backend, samples):
    images = samples[0]
    module = random_module(cls, seed)
    model = le.from_torch(module.state_dict(), backend=backend)
    assert model.arch == "modern" and model.metadata["imported_from"] == {"format": "torch"}
    want = torch_outputs(module, images)
    np.testing.assert_allclose(model.forward(images), want, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(model.predict(images), want.argmax(axis=1))
    # The module itself is accepted too.
    from_module = le.from_torch(module).state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(from_module[key], value, err_msg=key)


def test_trained_weights_run_as_in_pytorch(samples):
    # The shipped modern weights moved into the nn.Sequential by hand: a trained network, not a random one.
    images, labels = samples
    engine = le.load("modern")
    state = engine.state_dict()
    module = seed_sequential()
    by_index = {1: "conv1", 4: "conv2", 8: "dense1", 10: "dense2", 12: "dense3"}
    module.load_state_dict({f"{i}.{kind}": torch.from_numpy(state[f"{name}.{kind}"])
                            for i, name in by_index.items() for kind in ("weight", "bias")})
    want = torch_outputs(module, images)
    imported = le.from_torch(module.state_dict())
    np.testing.assert_allclose(imported.forward(images), want, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(engine.forward(images), want, rtol=0, atol=TOLERANCE)
    assert imported.score(images, labels) == engine.score(images, labels) >= 0.98


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pt_file_runs_as_in_pytorch(tmp_path, suffix, samples):
    module = random_module(seed_sequential, 3)
    path = tmp_path / f"lenet{suffix}"
    torch.save(module.state_dict(), path)
    model = le.from_torch(path)
    assert model.metadata["imported_from"] == {"format": "torch", "file": path.name}
    np.testing.assert_allclose(model.forward(samples[0]), torch_outputs(module, samples[0]), rtol=0, atol=TOLERANCE)
    # str paths as well as Path objects
    np.testing.assert_array_equal(le.from_torch(str(path)).forward(samples[0]), model.forward(samples[0]))


def test_safetensors_file_runs_as_in_pytorch(tmp_path, samples):
    module = random_module(NamedLeNet5, 4)
    arrays = {k: v.numpy() for k, v in module.state_dict().items()}
    safetensors_file.save_file(arrays, tmp_path / "lenet.safetensors")
    model = le.from_torch(tmp_path / "lenet.safetensors")
    np.testing.assert_allclose(model.forward(samples[0]), torch_outputs(module, samples[0]), rtol=0, atol=TOLERANCE)


def test_numpy_state_dicts_and_float64_tensors_are_accepted(samples):
    module = random_module(seed_sequential, 5)
    want = le.from_torch(module.state_dict()).forward(samples[0])
    as_numpy = {k: v.numpy() for k, v in module.state_dict().items()}
    np.testing.assert_array_equal(le.from_torch(as_numpy).forward(samples[0]), want)
    as_double = {k: v.double() for k, v in module.state_dict().items()}
    np.testing.assert_array_equal(le.from_torch(as_double).forward(samples[0]), want)


# torch warns about the pickle protocol of the garbage bytes before refusing them.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_pickled_module_is_refused_without_being_unpickled(tmp_path):
    path = tmp_path / "whole_module.pt"
    torch.save(seed_sequential(), path)   # the whole module, not its state_dict: needs a full unpickle
    with pytest.raises(WeightsFileError, match=r"weights_only=True"):
        le.from_torch(path)
    (tmp_path / "garbage.pt").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(WeightsFileError, match="could not be read as a state_dict"):
        le.from_torch(tmp_path / "garbage.pt")


def _edited_state(edit):
    state = dict(random_module(seed_sequential, 6).state_dict())
    edit(state)
    return state


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({"8.weight": torch.zeros(100, 400), "8.bias": torch.zeros(100)}),
     r"'8.weight' has shape \(100, 400\), which fits no layer"),
    (lambda s: s.update({"1.weight": torch.zeros(8, 1, 5, 5)}), r"'1.weight' has shape \(8, 1, 5, 5\)"),
    (lambda s: s.pop("12.bias"), r"'12.weight' is dense3's weight, but its bias '12.bias' is missing"),
    (lambda s: s.update({"12.bias": torch.zeros(9)}), r"its bias '12.bias' has shape \(9,\)"),
    (lambda s: [s.pop("4.weight"), s.pop("4.bias")], r"no weight of shape \(16, 6, 5, 5\) \(conv2"),
    (lambda s: s.update({"bn.running_mean": torch.zeros(6)}), r"'bn.running_mean' is neither a weight nor a bias"),
    (lambda s: s.update({"bn.num_batches_tracked": torch.tensor(3)}), r"'bn.num_batches_tracked' is a torch.int64"),
    (lambda s: s.update({"extra.weight": torch.zeros(84, 120), "extra.bias": torch.zeros(84)}),
     r"'extra.weight' and '10.weight' both have the shape of dense2's weight"),
    (lambda s: s.update({"extra.bias": torch.zeros(3)}), r"'extra.bias' is a bias without a weight"),
])
def test_state_dicts_of_other_networks_are_refused_naming_the_key(edit, message):
    with pytest.raises(UnsupportedModelError, match=message):
        le.from_torch(_edited_state(edit))


def test_non_state_dicts_and_bad_values_are_refused(tmp_path):
    state = dict(random_module(seed_sequential, 7).state_dict())
    with pytest.raises(UnsupportedModelError, match="expected a state_dict"):
        le.from_torch([1, 2, 3])
    with pytest.raises(UnsupportedModelError, match=r"'epoch' is of type int.*training checkpoint"):
        le.from_torch({"epoch": 3, **state})
    state["1.weight"] = state["1.weight"].clone()
    state["1.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(WeightsFileError, match="NaN"):
        le.from_torch(state)
    torch.save({"model": {}, "epoch": 3}, tmp_path / "checkpoint.pt")
    with pytest.raises(UnsupportedModelError, match="'model' is of type dict"):
        le.from_torch(tmp_path / "checkpoint.pt")


def test_modules_with_other_layers_are_refused_naming_the_layer():
    other = nn.Sequential(
        nn.ZeroPad2d(2), nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    with pytest.raises(UnsupportedModelError, match="module layer '2' is a ReLU"):
        le.from_torch(other)
    le.from_torch(other.state_dict())  # the weights alone cannot show it: mapped, as documented
    pools3 = seed_sequential()
    pools3[3] = nn.AvgPool2d(3)
    with pytest.raises(UnsupportedModelError, match=r"module layer '3' is AvgPool2d\(3"):
        le.from_torch(pools3)


def test_files_that_are_not_torch_saves_are_weights_file_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"junk" * 10)
    (tmp_path / "text.pth").write_text("example text, not a state_dict\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("junk.pt", "text.pth", "empty.pt"):
        with pytest.raises(WeightsFileError, match=r"could not be read as a state_dict.*: \S"):
            le.from_torch(tmp_path / name)


def test_bad_paths_are_refused(tmp_path):
    with pytest.raises(WeightsNotFoundError):
        le.from_torch(tmp_path / "absent.pt")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(WeightsFileError, match="expected a .pt or .pth file"):
        le.from_torch(tmp_path / "weights.bin")
    (tmp_path / "broken.safetensors").write_bytes(b"\1\0\0\0\0\0\0\0{")
    with pytest.raises(WeightsFileError):
        le.from_torch(tmp_path / "broken.safetensors")


def test_missing_torch_names_the_extra_for_pt_files(tmp_path, monkeypatch):
    path = tmp_path / "lenet.pt"
    torch.save(seed_sequential().state_dict(), path)
    monkeypatch.setitem(sys.modules, "torch", None)   # makes `import torch` fail
    with pytest.raises(le.MissingDependencyError, match=r"pip install 'lenet-engine\[torch\]'") as info:
        le.from_torch(path)
    assert isinstance(info.value, ImportError)
    # .safetensors files and numpy state dicts need no torch.
    arrays = {k: v.numpy() for k, v in seed_sequential().state_dict().items()}
    safetensors_file.save_file(arrays, tmp_path / "lenet.safetensors")
    assert le.from_torch(tmp_path / "lenet.safetensors").arch == "modern"
    assert le.from_torch(arrays).arch == "modern"
