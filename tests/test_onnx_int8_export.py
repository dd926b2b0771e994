"""Int8LeNet5.to_onnx: ONNX Runtime runs the exported integer graph and gives the engine's int8
stages bit for bit, its labels on the MNIST test set, and its outputs (exact for modern's logits;
classic's RBF distances are float sums in another order)."""

import sys

import numpy as np
import pytest
from test_int8 import ARCHS, random_digits, random_int8_model

from conftest import require

onnx = require("onnx")
ort = require("onnxruntime")

import lenet_engine as le
from lenet_engine.cli import load_samples
from lenet_engine.kernels.numpy.lenet5_int8 import int8_layers

STAGES = ("c1", "s2", "c3", "s4", "c5", "f6")
# Classic's RBF distances: float64 sums in two orders, rounded to float32, relative to max(1, |y|);
# near a tie a probability moves by a quarter of the distances' error (1e-5 holds for distances to ~40).
RBF_TOLERANCE = 1e-6
PROBABILITY_TOLERANCE = {"classic": 1e-5, "modern": 1e-6}


def session(path, extra_outputs=()):
    """An ONNX Runtime session on the file at `path`, with the named intermediate values as extra outputs."""
    proto = onnx.load(path)
    for name in extra_outputs:
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def as_float(digits):
    return (digits / np.float32(255)).astype(np.float32)


def assert_outputs_match(q8, digits, outputs, probabilities, labels):
    want = q8.forward(digits)
    if q8.arch == "modern":
        assert np.array_equal(outputs.view(np.int32), want.view(np.int32))
    else:
        error = np.abs(outputs.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))
        assert error.max() <= RBF_TOLERANCE
    np.testing.assert_allclose(probabilities, q8.predict_proba(digits), rtol=0, atol=PROBABILITY_TOLERANCE[q8.arch])
    np.testing.assert_array_equal(labels, q8.predict(digits))
    assert labels.dtype == np.int64


@pytest.fixture(scope="module")
def samples():
    return load_samples()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_integer_stage_equals_the_reference_bit_for_bit(arch, seed, tmp_path):
    _, q8 = random_int8_model(arch, seed)
    digits = random_digits(np.random.default_rng(seed + 20), 23)
    digits[:2] = 0      # blank digits: all padding
    digits[2:4] = 255
    q8.to_onnx(tmp_path / "int8.onnx")
    stage_names = [f"{stage}.out" for stage in STAGES]
    *stages, outputs, probabilities, labels = session(tmp_path / "int8.onnx", stage_names).run(
        stage_names + ["outputs", "probabilities", "labels"], {"digits": as_float(digits)})
    want = int8_layers(digits, q8._weights)
    for stage, got in zip(STAGES, stages):
        assert got.dtype == np.int8 and np.array_equal(got.reshape(want[stage].shape), want[stage]), stage
    assert_outputs_match(q8, digits, outputs, probabilities, labels)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_shipped_int8_models_on_sample_digits_and_one_digit(arch, tmp_path, samples):
    images, labels = samples
    q8 = le.load(arch, precision="int8")
    q8.to_onnx(tmp_path / "int8.onnx")
    run = session(tmp_path / "int8.onnx").run
    assert_outputs_match(q8, images, *run(None, {"digits": as_float(images)}))
    assert_outputs_match(q8, images[:1], *run(None, {"digits": as_float(images[:1])}))
    assert np.mean(run(["labels"], {"digits": as_float(images)})[0] == labels) >= 0.98


@pytest.mark.parametrize("name", ["classic", "classic-distorted", "modern"])
def test_onnx_runtime_gives_the_engines_int8_labels_on_the_10000_test_digits(name, tmp_path, mnist_test):
    images, labels = mnist_test
    q8 = le.load(name, precision="int8")
    q8.to_onnx(tmp_path / "int8.onnx")
    outputs, probabilities, predicted = session(tmp_path / "int8.onnx").run(None, {"digits": as_float(images)})
    assert_outputs_match(q8, images, outputs, probabilities, predicted)
    assert np.mean(predicted == labels) == q8.score(images, labels)


def test_the_graph_is_integer_operators_with_int8_weights(tmp_path):
    for arch in ARCHS:
        le.load(arch, precision="int8").to_onnx(tmp_path / f"{arch}.onnx")
        proto = onnx.load(tmp_path / f"{arch}.onnx")
        onnx.checker.check_model(proto, full_check=True)
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
        assert [i.name for i in proto.graph.input] == ["digits"]
        assert [o.name for o in proto.graph.output] == ["outputs", "probabilities", "labels"]
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["arch"] == arch and props["precision"] == "int8"
        ops = {node.op_type for node in proto.graph.node}
        assert {"ConvInteger", "MatMulInteger", "Gather", "ReduceSum"} <= ops
        assert not ops & {"Conv", "Gemm", "Tanh", "AveragePool"}
        weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
        for name in ("c1.weight", "c3.weight", "c5.weight", "f6.weight"):
            assert weights[name].dtype == np.int8, name
    # Classic's Table I: 60 of C3's 96 pairs connected, the others zero kernels.
    c3 = weights_of(tmp_path / "classic.onnx")["c3.weight"]
    assert np.count_nonzero(np.abs(c3.astype(np.int32)).sum(axis=(2, 3))) == 60


def weights_of(path):
    return {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)   # makes `import onnx` fail
    with pytest.raises(le.MissingDependencyError, match=r"pip install 'lenet-engine\[onnx\]'"):
        le.load("modern", precision="int8").to_onnx(tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
