"""int8 inference: the scheme (lenet_engine.quantize), the exact NumPy reference, the compiled
kernels bit for bit against it, the model API, its files, and accuracy on MNIST."""

import copy
import importlib
import pickle

import numpy as np
import pytest

import lenet_engine as le
from lenet_engine import quantize
from lenet_engine.backends import backends, get_backend
from lenet_engine.cli import load_samples, main
from lenet_engine.io import weights_file
from lenet_engine.kernels.fused_int8 import POOL_SUMS, Int8Weights, check_int8_weights
from lenet_engine.kernels.numpy.lenet5_int8 import int8_layers, pool_lookup, squash_lookup

ARCHS = ("classic", "modern")


def _int8_kernels():
    """(id, kernels) for every int8 kernel this machine runs: numba, and each Cython level this CPU
    has, each with the pass it chooses at import (_variants adds the others)."""
    found = [("numba", get_backend("numba"))] if "numba" in backends() else []
    if "cython" in backends():
        from lenet_engine.kernels import cython

        for level in cython.LEVELS_AVAILABLE:
            found.append((f"cython-{level}", cython.level_kernels(level)))
    return found


def _has_level(level):
    return "cython" in backends() and level in get_backend("cython").LEVELS_AVAILABLE


def _int8_module(level):
    return importlib.import_module(f"lenet_engine.kernels.cython.lenet5_int8_{level}")


def _has_vnni_pass():
    return _has_level("v4") and "VNNI" in _int8_module("v4").INT8_INSTRUCTIONS


def _has_vbmi_pass():
    return _has_level("v4") and "VBMI" in _int8_module("v4").INT8_INSTRUCTIONS


def _has_avx_vnni():
    return _has_level("v3") and _int8_module("v3").CPU_AVX_VNNI


# Each level's passes that the default leaves aside run too, where the CPU runs that level at all:
# at v3 the int16 pass of l5_int8.h instead of l5_int8_avx2.h's (and, where the CPU has AVX-VNNI,
# whose byte pass of l5_int8_avx_vnni.h it then takes, the AVX2 pass); at v4, where the CPU has
# VNNI, the AVX2 pass instead of VNNI's 16-lane byte pass, and the 8-lane byte pass with
# AVX512-VNNI's vpdpbusd on 8 lanes (the AVX-VNNI form's twin: the same instruction in the EVEX
# encoding), and the int16 pass; and the 16-lane byte pass with its squashing by gathers instead
# of vpermi2b (where the CPU has VBMI). A CPU without them has no such case: it is left out, not
# skipped. Each variant: (level, the switches and what they are set to, what INT8_INSTRUCTIONS
# then says).
VARIANTS = {
    "cython-v3-int16": ("v3", (("_set_avx2", False),), "AVX2 vpmaddwd"),
    "cython-v3-vpmaddwd": ("v3", (("_set_avx2_dot", "vpmaddwd"),), "AVX2 vpmaddwd, tanh by formula"),
    "cython-v4-avx2-pass": ("v4", (("_set_vnni", False), ("_set_avx2_dot", "vpmaddwd")),
                            "AVX2 vpmaddwd, tanh by formula"),
    "cython-v4-avx-vnni-pass-evex": ("v4", (("_set_vnni", False), ("_set_avx2_dot", "avx512-vnni")),
                                     "AVX512-VNNI vpdpbusd on 8 lanes, tanh by formula"),
    "cython-v4-int16": ("v4", (("_set_vnni", False), ("_set_avx2", False)), "AVX-512BW vpmaddwd"),
    "cython-v4-vnni-without-vbmi": ("v4", (("_set_vbmi", False),), "AVX512-VNNI vpdpbusd"),
}
DEFAULTS = {"_set_avx2": True, "_set_vnni": True, "_set_vbmi": True, "_set_avx2_dot": None}


def _variants():
    return ["cython-v3-int16"] * _has_level("v3") + ["cython-v3-vpmaddwd"] * _has_avx_vnni() \
        + ["cython-v4-avx2-pass", "cython-v4-avx-vnni-pass-evex"] * _has_vnni_pass() \
        + ["cython-v4-int16"] * _has_level("v4") + ["cython-v4-vnni-without-vbmi"] * _has_vbmi_pass()


@pytest.fixture(params=[name for name, _ in _int8_kernels()] + _variants())
def int8_kernels(request):
    if request.param not in VARIANTS:
        yield dict(_int8_kernels())[request.param]
        return
    from lenet_engine.kernels import cython

    level, switches, instructions = VARIANTS[request.param]
    module = _int8_module(level)
    for switch, value in switches:
        getattr(module, switch)(value)
    try:
        assert module.INT8_INSTRUCTIONS == instructions
        yield cython.level_kernels(level)
    finally:
        for switch, _ in switches:
            getattr(module, switch)(DEFAULTS[switch])


def random_digits(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def random_int8_model(arch, seed):
    """A freshly initialised network with perturbed biases, quantized on random digits."""
    model = le.LeNet5(arch, seed=seed, backend="numpy")
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    for name, t in state.items():
        if name.endswith("bias"):
            t += rng.normal(0, 0.3, t.shape).astype(np.float32)
    model.load_state_dict(state)
    return model, model.quantize(random_digits(rng, 64))


@pytest.fixture(scope="module")
def samples():
    return load_samples()


# --- the scheme -----------------------------------------------------------------------------


@pytest.mark.parametrize("amplitude,slope", [(1.0, 1.0), (1.7159, 2 / 3)])
@pytest.mark.parametrize("share", [1.0, 0.4, quantize.MIN_RANGE])
def test_squash_table_is_the_rounded_squashing_and_saturates_at_its_ends(amplitude, slope, share):
    out_scale = share * amplitude / 127
    table, step = quantize.squash_table(amplitude, slope, out_scale)
    half = (len(table) - 1) // 2
    z = np.arange(-half, half + 1) * step
    expected = np.clip(np.rint(amplitude * np.tanh(slope * z) / out_scale), -127, 127)
    assert np.array_equal(table, expected)
    assert np.all(np.diff(table.astype(int)) >= 0) and np.array_equal(table, -table[::-1])
    assert table[-1] == 127 and table[0] == -127  # beyond the ends the output would not change
    # Steps of half an output step at the steepest: neighbouring entries differ by at most one.
    assert np.abs(np.diff(table.astype(int))).max() <= 1


def test_pool_table_of_an_average_is_the_rounded_quarter():
    table = quantize.pool_table(np.full(3, 0.25), np.zeros(3), 0.5, 0.5, squash=None)  # exact in binary
    t = np.arange(-508, 509)
    assert table.shape == (3, 1017) and np.array_equal(table[1], np.rint(t / 4))


def test_weights_are_symmetric_per_row_and_within_half_a_step():
    w = np.random.default_rng(0).normal(size=(7, 30))
    q, scale = quantize.quantize_rows(w)
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and q.min() >= -127
    assert np.all(np.abs(q * scale[:, None] - w) <= scale[:, None] / 2 + 1e-12)
    zero_row, zero_scale = quantize.quantize_rows(np.zeros((1, 4)))
    assert not zero_row.any() and zero_scale[0] == 1.0


def test_squash_lookup_rounds_half_to_even_in_float32():
    lut = np.arange(-5, 6, dtype=np.int8)
    acc = np.array([[1, 3, 5, -1, 40, -40]], np.int32)
    out = squash_lookup(acc, np.array([0.5], np.float32), lut)
    assert out.tolist() == [[0, 2, 2, 0, 5, -5]]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, clipped at +-5


def test_pool_lookup_reads_each_maps_table_at_the_sum():
    a = np.array([[[[127, 127], [127, 127]], [[-1, 0], [0, 0]]]], np.int8)
    lut = np.tile(np.arange(1017) % 100, (2, 1)).astype(np.int8)
    assert pool_lookup(a, lut)[:, :, 0, 0].tolist() == [[(508 + 508) % 100, (-1 + 508) % 100]]


def test_c1_padding_is_exact_in_the_pixel_domain():
    # A blank digit is all padding: its C1 accumulators are the biases alone, as in float.
    _, q8 = random_int8_model("classic", 3)
    c1 = int8_layers(np.zeros((1, 28, 28), np.uint8), q8._weights)["c1"]
    expected = squash_lookup(q8._weights.c1_b.reshape(1, 6, 1, 1).astype(np.int64), q8._weights.c1_m,
                             q8._weights.c1_lut)
    assert np.array_equal(c1, np.broadcast_to(expected, c1.shape))


# --- the reference against float, the kernels against the reference --------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_the_int8_reference_follows_the_float_network(arch, samples):
    images, _ = samples
    model = le.load(arch, backend="numpy")
    q8 = model.quantize(images[:100])
    fp32, int8 = model.forward(images), q8.forward(images)
    scale = np.maximum(1.0, np.abs(fp32))
    assert np.mean(np.abs(fp32 - int8) / scale) < 0.05
    assert np.mean(q8.predict(images) == model.predict(images)) >= 0.99


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_int8_kernels_equal_the_reference_bit_for_bit(int8_kernels, arch, seed):
    _, q8 = random_int8_model(arch, seed)
    # 39 digits: blocks of 8 a thread, which the VNNI pass takes 4 at a time, then 2, then 1.
    n = 39
    digits = random_digits(np.random.default_rng(seed + 10), n)
    digits[:3] = 0  # blank digits: all padding
    digits[3:5] = 255
    k, ref = int8_kernels, get_backend("numpy")
    for n_threads in sorted({1, 2, k.MAX_THREADS} & set(range(1, k.MAX_THREADS + 1))):
        got = np.full((n, 10), np.nan, np.float32)
        k.lenet5_int8_forward(got, digits, q8._weights, n_threads)
        want = np.empty((n, 10), np.float32)
        ref.lenet5_int8_forward(want, digits, q8._weights, 1)
        codes, want_codes = np.zeros((n, 84), np.int8), np.ones((n, 84), np.int8)
        k.lenet5_int8_codes(codes, digits, q8._weights, n_threads)
        ref.lenet5_int8_codes(want_codes, digits, q8._weights, 1)
        assert np.array_equal(codes, want_codes)
        if arch == "modern":   # integers all the way to one float32 product per logit
            assert np.array_equal(got.view(np.int32), want.view(np.int32))
        else:                  # the RBF distances are float32 sums, as in the fp32 kernels
            np.testing.assert_allclose(got, want, rtol=3e-5, atol=3e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_compiled_integer_stages_equal_the_reference_on_real_digits(int8_kernels, arch, samples):
    images, _ = samples
    weights = le.load(arch, precision="int8")._weights
    k, ref = int8_kernels, get_backend("numpy")
    want = np.empty((len(images), 84), np.int8)
    ref.lenet5_int8_codes(want, images, weights, 1)
    for n_threads in sorted({1, k.MAX_THREADS}):
        got = np.zeros_like(want)
        k.lenet5_int8_codes(got, images, weights, n_threads)
        assert np.array_equal(got, want)


def assert_codes_as_the_reference(kernels, weights, digits):
    want = np.empty((len(digits), 84), np.int8)
    get_backend("numpy").lenet5_int8_codes(want, digits, weights, 1)
    got = np.zeros_like(want)
    kernels.lenet5_int8_codes(got, digits, weights, 1)
    assert np.array_equal(got, want)


def test_squashing_tables_that_are_not_odd_are_read_exactly_too(int8_kernels, samples):
    # quantize.squash_table's tables are odd, and the VNNI pass's vpermi2b squashing reads their
    # nonnegative half only; a table from elsewhere that is not odd must take the gathers instead.
    _, q8 = random_int8_model("modern", 3)
    luts = {}
    for name in ("c1_lut", "c3_lut"):
        lut = getattr(q8._weights, name).copy()
        middle = len(lut) // 2
        lut[middle + 1:middle + 40] = np.minimum(lut[middle + 1:middle + 40].astype(np.int16) + 1, 127)
        luts[name] = lut
    weights = q8._weights._replace(**luts)
    assert_codes_as_the_reference(int8_kernels, weights, samples[0][:40])


@pytest.mark.parametrize("stage", ["s2_lut", "s4_lut"])
def test_pooling_tables_that_cannot_be_stepped_are_read_exactly_too(int8_kernels, samples, stage):
    # quantize.pool_table's tables move by at most 1 from one sum to the next, and the VNNI pass
    # reads them by steps; a table from elsewhere that jumps must take the gathers instead.
    _, q8 = random_int8_model("modern", 3)
    luts, ramp = getattr(q8._weights, stage).copy(), np.arange(POOL_SUMS) - 508
    ramp[510:] += 1
    luts[2] = np.clip(ramp, -127, 127)
    weights = q8._weights._replace(**{stage: luts})
    assert_codes_as_the_reference(int8_kernels, weights, samples[0][:40])


@pytest.mark.parametrize("arch", ARCHS)
def test_numba_pass_sums_in_float64_where_float32_could_round(arch, samples, monkeypatch):
    # The numba pass sums the integers in float32, exact while no partial sum can pass 2**24;
    # weights whose sums could pass it run in float64.
    from lenet_engine.kernels.numba import lenet5_int8 as numba_int8

    _, q8 = random_int8_model(arch, 4)
    w = q8._weights
    assert numba_int8.largest_sum(w) < 2 ** 24
    assert numba_int8.Lenet5Int8Forward(w).dtype == np.float32
    # Every other C5 unit's bias past 2**24: those units saturate, the others do not.
    large = w._replace(c5_b=w.c5_b + np.where(np.arange(120) % 2 == 0, 2 ** 25, 0).astype(np.int32))
    assert numba_int8.Lenet5Int8Forward(large).dtype == np.float64
    digits = samples[0][:24]
    ref = get_backend("numpy")
    for weights, float64_everywhere in ((large, False), (w, True)):
        if float64_everywhere:  # the float64 code on ordinary weights: every stage's sums exact
            monkeypatch.setattr(numba_int8, "EXACT_IN_FLOAT32", 0)
        bound = numba_int8.Lenet5Int8Forward(weights)
        assert bound.dtype == np.float64
        want, got = np.empty((24, 84), np.int8), np.zeros((24, 84), np.int8)
        ref.lenet5_int8_codes(want, digits, weights, 1)
        bound.codes(got, digits, 2 if numba_int8.numba.config.NUMBA_NUM_THREADS > 1 else 1)
        assert np.array_equal(got, want)


def _avx2_levels():
    """The Cython levels whose modules hold l5_int8_avx2.h's pass (those with AVX2 and FMA)."""
    return [level for level in ("v3", "v4") if _has_level(level)]


@pytest.mark.parametrize("level", _avx2_levels())
@pytest.mark.parametrize("model", list(weights_file.SHIPPED) + ["random-0", "random-1", "random-2"])
def test_the_avx2_pass_computes_every_squashing_table_of_the_quantizer_by_its_formula(level, model):
    # The formula replaces the table reads only where it gives every entry (checked at load);
    # quantize.squash_table's tables all pass, so the fast path is the one that runs.
    weights = random_int8_model("modern", int(model[-1]))[1]._weights if model.startswith("random") \
        else le.load(model, precision="int8")._weights
    assert _int8_module(level).Lenet5Int8Forward(weights).squash_by_formula == (True,) * 4


@pytest.mark.parametrize("level", _avx2_levels())
def test_a_table_the_formula_misses_by_one_entry_is_read_exactly(level, samples):
    # One entry moved by one step (the table still odd and rising): no amplitude fits it exactly
    # any more, so that stage reads its table, and the codes stay the reference's.
    _, q8 = random_int8_model("classic", 4)
    lut = q8._weights.c3_lut.copy()
    middle = len(lut) // 2
    step = int(np.flatnonzero(lut[middle:] == 60)[0])
    lut[middle + step], lut[middle - step] = 59, -59
    weights = q8._weights._replace(c3_lut=lut)
    forward = _int8_module(level).Lenet5Int8Forward(weights)
    assert forward.squash_by_formula == (True, False, True, True)
    digits = samples[0][:40]
    want = np.empty((len(digits), 84), np.int8)
    get_backend("numpy").lenet5_int8_codes(want, digits, weights, 1)
    module = _int8_module(level)
    module._set_vnni(False)
    try:
        got = np.zeros_like(want)
        forward.codes(got, digits, 1)
    finally:
        module._set_vnni(True)
    assert np.array_equal(got, want)


if "cython" in backends():  # left out, not skipped, where the Cython backend is not built

    @pytest.mark.parametrize("amplitude,share", [(1.7159, 1.0), (1.7159, 0.5), (1.0, 0.125), (1.7159, 0.3)])
    def test_the_fitted_amplitude_is_the_squashings_in_output_steps(amplitude, share):
        from lenet_engine.kernels import cython

        _squash_amplitude = _int8_module(cython.LEVELS_AVAILABLE[0])._squash_amplitude
        # The table ends where the value reaches 126.5: for a large amplitude that is the nearly
        # straight start of tanh, which pins K loosely; any K inside the bounds gives every entry.
        scale = share * amplitude / 127
        lut, _ = quantize.squash_table(amplitude, 2 / 3, scale)
        fitted = _squash_amplitude(lut)
        assert fitted == pytest.approx(amplitude / scale, rel=0.01)
        i = np.arange(len(lut)) - len(lut) // 2
        assert np.array_equal(np.clip(np.rint(fitted * np.tanh(i / (2 * fitted))), -127, 127), lut)
        assert _squash_amplitude(np.roll(lut, 1)) is None                  # not odd
        assert _squash_amplitude(np.zeros(1, np.int8)) is None             # no entries to fit

    @pytest.mark.parametrize("share", [1.0, quantize.MIN_RANGE])
    def test_the_squashing_steps_rebuild_the_odd_tables_upper_half(share):
        from lenet_engine.kernels import cython

        module = _int8_module(cython.LEVELS_AVAILABLE[0])
        lut, _ = quantize.squash_table(1.7159, 2 / 3, share * 1.7159 / 127)
        half = len(lut) // 2
        steps, stepped = module._squash_steps(lut)
        assert stepped == 1 and steps.shape == (256,)
        # Entry u is its bucket's first plus the rises up to its place in the bucket.
        first, rises = steps[:128].view(np.int8).astype(int), steps[128:]
        u = np.arange(1024)
        bits = (rises[u // 8, None] >> np.arange(8)) & 1
        rebuilt = first[u // 8] + (bits * (np.arange(8) <= (u % 8)[:, None])).sum(axis=1)
        assert np.array_equal(rebuilt[:half + 1], lut[half:]) and np.all(rebuilt[half:] == lut[-1])
        lopsided = lut.copy()
        lopsided[half + 1] += 1
        assert module._squash_steps(lopsided)[1] == 0                            # not odd
        jump = lut.copy()
        jump[half + 1], jump[half - 1] = 2, -2                                   # odd, but rises by 2
        assert module._squash_steps(jump)[1] == 0
        assert module._squash_steps(np.zeros(2 * 1024 + 1, np.int8))[1] == 0    # over 1,024 in its half

    @pytest.mark.parametrize("stage", ["s2_lut", "s4_lut"])
    @pytest.mark.parametrize("arch", ARCHS)
    def test_the_pooling_steps_rebuild_every_entry_of_each_maps_table(arch, stage):
        from lenet_engine.kernels import cython

        module = _int8_module(cython.LEVELS_AVAILABLE[0])
        luts = getattr(random_int8_model(arch, 4)[1]._weights, stage)
        maps = len(luts)
        # classic's tables (coefficient, bias, tanh) fall where a map's coefficient is negative;
        # modern's (the average) all rise. Flipped, every table falls.
        for tables in (luts, -luts):
            steps, falling, stepped = module._pool_steps(tables)
            assert stepped == 1 and steps.shape == (maps, 256)
            first, changes = steps[:, :128].astype(int) - 128, steps[:, 128:]
            u = np.arange(1024)
            bits = (changes[:, u // 8, None] >> np.arange(8)) & 1
            counted = (bits * (np.arange(8) <= (u % 8)[:, None])).sum(axis=2)
            sign = np.where([(falling >> c) & 1 for c in range(maps)], -1, 1)[:, None]
            rebuilt = first[:, u // 8] + sign * counted
            assert np.array_equal(rebuilt[:, :POOL_SUMS], tables)
            assert np.all(rebuilt[:, POOL_SUMS:] == tables[:, -1:])
        jump, ramp = luts.copy(), np.arange(POOL_SUMS) - 508
        ramp[510:] += 1
        jump[2] = np.clip(ramp, -127, 127)
        assert module._pool_steps(jump)[2] == 0                                   # rises by 2 at 510
        both = luts.copy()
        both[1] = np.concatenate([np.arange(509), np.arange(507, -1, -1)]).clip(-127, 127).astype(np.int8)
        assert module._pool_steps(both)[2] == 0                                   # up, then down
        assert module._pool_steps(np.zeros((6, 1025), np.int8))[2] == 0         # over 1,024 entries

    if _has_vnni_pass():  # left out, not skipped, where the CPU has no AVX512-VNNI

        @pytest.mark.parametrize("vbmi", [True, False] if _has_vbmi_pass() else [False])
        @pytest.mark.parametrize("share", [1.0, quantize.MIN_RANGE])
        def test_the_vnni_squashing_reads_the_table_at_every_index(vbmi, share):
            # Every index of the table, both signs, past its ends, at the ties of rint, and from
            # sums near int32's ends, 16 lanes each with a multiplier of its own: the bytes of the
            # reference's lookup, by vpermi2b (where the CPU has VBMI) and by gathers.
            module = _int8_module("v4")
            lut, _ = quantize.squash_table(1.7159, 2 / 3, share * 1.7159 / 127)
            half = len(lut) // 2
            rng = np.random.default_rng(5)
            m = np.concatenate([[1.0, 0.5, 0.25, 2.0], rng.uniform(1e-4, 3.0, 12)]).astype(np.float32)
            edges = np.array([np.iinfo(np.int32).min, np.iinfo(np.int32).max, -1, 0, 1], np.int64)
            acc = np.concatenate([np.arange(-4 * half - 70, 4 * half + 70), 2 * np.arange(-half, half) + 1, edges,
                                  rng.integers(-2 ** 31, 2 ** 31, 5000)])
            acc = np.resize(acc, -(-len(acc) // 1024) * 1024).astype(np.int32)
            module._set_vbmi(vbmi)
            try:
                got = module._vnni_squash(acc, m, lut)
            finally:
                module._set_vbmi(True)
            want = squash_lookup(acc.reshape(-1, 16), m, lut).reshape(-1)
            assert np.array_equal(got, want)


# --- the model API --------------------------------------------------------------------------


@pytest.mark.parametrize("name", weights_file.SHIPPED)
def test_shipped_models_load_in_int8(name, samples):
    images, labels = samples
    q8 = le.load(name, precision="int8")
    assert isinstance(q8, le.Int8LeNet5) and q8.precision == "int8" and le.load(name).precision == "fp32"
    assert q8.metadata["calibration"].startswith("the first 1000 MNIST training digits")
    assert q8.metadata["test_accuracy"] >= q8.metadata["fp32_test_accuracy"] - 0.001
    assert q8.metadata["labels_as_fp32"] >= 0.998
    assert q8.score(images, labels) >= 0.98
    probs = q8.predict_proba(images[:5])
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    labels_, probs_ = q8.labels_and_probabilities(images[:5])
    assert np.array_equal(labels_, q8.predict(images[:5])) and np.array_equal(probs_, probs)


def test_float_digits_are_rounded_to_pixels(samples):
    images, _ = samples
    q8 = le.load("modern", precision="int8")
    as_float = images[:20].astype(np.float32) / 255
    assert np.array_equal(q8.forward(as_float), q8.forward(images[:20]))
    assert np.array_equal(q8.forward(images[0]), q8.forward(images[:1]))
    for layout in (np.asfortranarray(as_float), as_float.transpose(0, 2, 1).copy().transpose(0, 2, 1)):
        assert np.array_equal(q8.forward(layout), q8.forward(images[:20]))  # any memory layout


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_pickle_and_deepcopy_keep_the_outputs_bit_for_bit(arch, tmp_path, samples):
    images, _ = samples
    _, q8 = random_int8_model(arch, 5)
    q8.save(tmp_path / "q.safetensors")
    loaded = le.load(tmp_path / "q.safetensors", backend=q8.backend)
    assert isinstance(loaded, le.Int8LeNet5) and loaded.arch == arch
    want = q8.forward(images[:50])
    for other in (loaded, pickle.loads(pickle.dumps(q8)), copy.deepcopy(q8)):
        assert np.array_equal(other.forward(images[:50]), want)
        assert other.metadata["activation_scales"] == q8.metadata["activation_scales"]


def test_wrong_or_unknown_precision_is_refused(tmp_path):
    with pytest.raises(le.WrongPrecisionError, match="holds fp32 weights, not int8"):
        le.load(weights_file.shipped_path("modern"), precision="int8")
    with pytest.raises(le.WrongPrecisionError, match="holds int8 weights, not fp32"):
        le.load("modern-int8", precision="fp32")
    with pytest.raises(le.UnknownModelError, match="unknown precision 'int4': expected one of fp32, int8"):
        le.load("modern", precision="int4")
    with pytest.raises(le.UnknownModelError, match="unknown backend 'gpu'") as refused:
        le.load("modern", precision="int8", backend="gpu")
    assert not isinstance(refused.value, le.CorruptWeightsError)  # the caller's mistake, not the file's


def test_an_int8_file_missing_a_tensor_is_refused(tmp_path):
    _, q8 = random_int8_model("modern", 0)
    path = tmp_path / "cut.safetensors"
    q8.save(path)
    arch, tensors, metadata = weights_file.load(path)
    del tensors["int8.c3_lut"]
    record = {k: v for k, v in metadata.items() if k not in ("arch", "engine_version")}
    weights_file.save(path, tensors, arch, record)
    with pytest.raises(le.CorruptWeightsError, match="without the tensor 'int8.c3_lut'"):
        le.load(path)


def test_weights_that_would_read_out_of_bounds_are_refused():
    _, q8 = random_int8_model("classic", 0)
    w = q8._weights
    with pytest.raises(ValueError, match="conn_in must name S2 maps"):
        check_int8_weights(w._replace(conn_in=w.conn_in + 1))
    with pytest.raises(ValueError, match="odd length"):
        check_int8_weights(w._replace(c1_lut=w.c1_lut[:-1].copy()))
    with pytest.raises(TypeError, match="c5_w must be a C-contiguous int8"):
        check_int8_weights(w._replace(c5_w=w.c5_w.astype(np.int16)))
    with pytest.raises(ValueError, match="s2_lut has shape"):
        check_int8_weights(w._replace(s2_lut=w.s2_lut[:, :-1].copy()))
    with pytest.raises(TypeError, match="an Int8Weights"):
        check_int8_weights(tuple(w))
    nan_multiplier = w.c3_m.copy()
    nan_multiplier[5] = np.nan
    with pytest.raises(ValueError, match="c3_m must be finite"):
        check_int8_weights(w._replace(c3_m=nan_multiplier))
    with pytest.raises(ValueError, match="f6_scale must be finite"):
        check_int8_weights(w._replace(f6_scale=np.float32(np.inf)))
    assert isinstance(w, Int8Weights)


def test_weights_whose_sums_or_outputs_could_overflow_are_refused():
    # Such files load only if made by hand (quantize clips biases at 2**30); the compiled passes
    # would wrap int32 sums where the reference does not, or give NaN distances.
    w = le.load("classic", precision="int8")._weights
    with pytest.raises(ValueError, match="c1_b holds a bias past 2"):
        check_int8_weights(w._replace(c1_b=np.full_like(w.c1_b, 2**31 - 1)))
    nan_prototype = w.out_w.copy()
    nan_prototype[3, 0] = np.nan
    for bad in (w._replace(out_w=nan_prototype), w._replace(f6_scale=np.float32(1e38))):
        with pytest.raises(ValueError, match="could overflow float32"):
            check_int8_weights(bad)
    m = le.load("modern", precision="int8")._weights
    with pytest.raises(ValueError, match="could overflow float32"):
        check_int8_weights(m._replace(out_m=np.full_like(m.out_m, 1e36)))


def test_calibration_needs_finite_digits():
    model = le.LeNet5("modern", backend="numpy")
    with pytest.raises(le.InvalidInputError, match="at least one calibration digit"):
        model.quantize(np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(le.InvalidInputError):
        model.quantize(np.full((2, 28, 28), np.nan, np.float32))


def test_int8_models_do_not_train():
    q8 = le.load("modern", precision="int8")
    assert not hasattr(q8, "fit") and not hasattr(q8, "state_dict")


def test_a_backend_without_int8_kernels_is_refused_and_skipped_by_auto(monkeypatch):
    import types

    from lenet_engine import int8_model

    q8 = le.load("modern", precision="int8", backend="numpy")
    first = next(name for name in backends())
    without = types.SimpleNamespace(NAME=first)   # a backend as one built before the int8 kernels
    real = int8_model.get_backend
    monkeypatch.setattr(int8_model, "get_backend", lambda name: without if name == first else real(name))
    with pytest.raises(le.UnknownModelError, match=f"the {first} backend has no int8 kernels"):
        q8.backend = first
    q8.backend = "auto"
    assert q8.backend != first and q8.backend in backends()


def test_info_names_the_integer_instructions():
    about = le.info()
    if "cython" not in about["backends"]:
        assert about["int8"] is None
        return
    level = about["isa"]
    avx2_pass = ("AVX2 vpmaddwd, tanh by formula", "AVX-VNNI vpdpbusd, tanh by formula")
    expected = {"v4": ("AVX512-VNNI vpdpbusd, AVX512-VBMI vpermi2b and BITALG vpopcntb tables", "AVX512-VNNI vpdpbusd") + avx2_pass,
                "v3": avx2_pass,
                "baseline": ("portable C",)}.get(level)
    assert expected is None or about["int8"] in expected


# --- the command line and MNIST ---------------------------------------------------------------


def test_cli_demo_and_predict_take_precision_int8(tmp_path, samples, capsys):
    images, _ = samples
    assert main(["demo", "--model", "modern", "--precision", "int8", "--show", "0"]) == 0
    out = capsys.readouterr().out
    assert "accuracy on 200 shipped test digits" in out
    np.save(tmp_path / "d.npy", images[:4])
    assert main(["predict", "--model", "classic", "--precision", "int8", "--json", str(tmp_path / "d.npy")]) == 0
    rows = __import__("json").loads(capsys.readouterr().out)
    assert [r["label"] for r in rows] == le.load("classic", precision="int8").predict(images[:4]).tolist()


def test_cli_visualize_draws_an_int8_models_maps(tmp_path, samples, capsys):
    images, _ = samples
    np.save(tmp_path / "d.npy", images[:2])
    out = tmp_path / "maps.png"
    for arch in ARCHS:  # classic's F6 code is drawn beside its RBF prototype
        code = main(["visualize", "--model", arch, "--precision", "int8", str(tmp_path / "d.npy"), "-o", str(out)])
        assert code == 0, capsys.readouterr().err
        assert out.stat().st_size > 1000
        out.unlink()
    q8 = le.load("classic", precision="int8")
    maps = q8.layer_outputs(images[:1])
    assert np.array_equal(maps["output"], q8.forward(images[:1]))
    assert set(q8._arch.stages.values()) <= set(maps)


def test_cli_quantize_writes_a_calibrated_model(tmp_path, mnist_root, capsys):
    out = tmp_path / "m8.safetensors"
    code = main(["quantize", "--model", "modern", "--calibration", "200", "--out", str(out),
                 "--data-root", str(mnist_root), "--no-download"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "int8: test accuracy" in captured.out
    q8 = le.load(out)
    assert q8.precision == "int8" and q8.metadata["calibration_digits"] == 200
    assert q8.metadata["labels_as_fp32"] >= 0.995


@pytest.mark.slow
@pytest.mark.parametrize("name", weights_file.SHIPPED)
def test_shipped_int8_accuracy_and_agreement_on_the_10000_test_digits(name, mnist_test):
    images, labels = mnist_test
    fp32, int8 = le.load(name), le.load(name, precision="int8")
    float_labels, int_labels = fp32.predict(images), int8.predict(images)
    assert np.mean(int_labels == labels) >= np.mean(float_labels == labels) - 0.001
    assert np.mean(int_labels == float_labels) >= 0.998
    assert int8.metadata["test_accuracy"] == np.mean(int_labels == labels)
