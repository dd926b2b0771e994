"""The Cython kernels' x86-64 levels: each level this CPU runs against the NumPy reference, the choice
made at import, LENET_ENGINE_ISA, and the instructions each level's objects contain.

One build compiles every kernel once per level (setup.py KERNEL_LEVELS); a CPU runs the levels its
instructions allow. Levels this CPU lacks are still compiled by every build, and their objects are
disassembled here, but their arithmetic only runs on a CPU that has them.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernel_cases as kc
import lenet_engine as le
from lenet_engine import network
from lenet_engine.architectures import get_architecture, initial_state
from lenet_engine.backends import get_backend
from lenet_engine.errors import UnknownModelError, UnsupportedCPUError
from lenet_engine.inputs import to_network_input

cython = get_backend("cython")
LEVELS = cython.LEVELS_AVAILABLE
ARCHS = ("classic", "modern")
REFERENCE = get_backend("numpy")


def _close(got, want, what, tolerance=1e-5, whole=False):
    """Within `tolerance` relative to max(1, |want|) element by element, or with `whole` relative to
    max(1, the largest |want|): a kernel's sums of hundreds of float32 products keep an error of
    the size of their terms where they cancel to near zero (as tests/test_kernels.py measures it)."""
    scale = np.maximum(1.0, np.abs(want).max(initial=0.0) if whole else np.abs(want))
    excess = np.abs(got.astype(np.float64) - want) / scale
    assert excess.max(initial=0.0) <= tolerance, f"{what}: off by {excess.max():.2e} of the scale"


def test_the_best_level_this_cpu_runs_is_in_use():
    assert cython.ISA == os.environ.get(cython.ISA_ENV) or cython.ISA == LEVELS[0]
    assert le.info()["isa"] == cython.ISA and le.info()["isa_available"] == list(LEVELS)
    assert cython.BUILD == cython.level_kernels(cython.ISA).BUILD
    if cython.CPU_LEVEL >= 3:
        assert "v3" in LEVELS  # every x86-64 build has the baseline, v3 and v4 levels


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("op", sorted(kc.CASE_MAKERS))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_threads=st.sampled_from([1, 2]))
def test_every_kernel_of_every_level_matches_the_reference(level, op, seed, n_threads):
    kernels = cython.level_kernels(level)
    case = kc.random_case(op, np.random.default_rng(seed))
    n_threads = min(n_threads, cython.MAX_THREADS)
    want = kc.run_forward(REFERENCE, case, 1, np.float64)
    got = kc.run_forward(kernels, case, n_threads, np.float32)
    for g, w in zip(got, want):
        _close(g, w, f"{level} {op}_forward", whole=True)
    want_grads = kc.run_backward(REFERENCE, case, want, 1, np.float64)
    for g, w in zip(kc.run_backward(kernels, case, got, n_threads, np.float32), want_grads):
        _close(g, w, f"{level} {op}_backward", 1e-4, whole=True)
    want_curv = kc.run_curvature(REFERENCE, case, want, 1, np.float64)
    for g, w in zip(kc.run_curvature(kernels, case, got, n_threads, np.float32), want_curv):
        _close(g, w, f"{level} {op}_curvature", 1e-4, whole=True)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 9))
def test_the_fused_pass_of_every_level_matches_the_reference(level, arch, seed, n):
    spec = get_architecture(arch)
    rng = np.random.default_rng(seed)
    state = {name: t * np.float32(3) if name != "output.prototypes" else t
             for name, t in initial_state(spec, seed % 1000).items()}
    digits = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    want, _ = network.forward_layers(spec, REFERENCE, state, to_network_input(digits, spec.background, spec.ink), 1)
    got = np.full((n, 10), np.nan, np.float32)
    assert cython.level_kernels(level).Lenet5Forward(spec.fused_weights(state))(got, digits, 2) == 0
    _close(got, want, f"{level} lenet5_forward {arch}", 3e-5)


_REFERENCE_OUTPUTS = {}  # (arch, digits): the reference's outputs, computed once for every level


# Left out, not skipped, on a CPU without both levels (CI forbids skips; an AVX2-only CPU has no v4).
if {"v3", "v4"} <= set(LEVELS):

    @pytest.mark.parametrize("arch", ARCHS)
    def test_the_16_lane_fused_pass_gives_the_8_lane_bits(arch, mnist_test):
        # At v4 the fused pass's convolutions, squashing, S4 and full layers run on 16-lane
        # vectors, each lane computing what it computes at 8 lanes in the same order: the same
        # outputs to the bit. 1,003 digits: the last 3 take the one-digit full layers.
        model = le.load(arch, backend="numpy")
        weights = model._arch.fused_weights(model._state)
        outputs = {}
        for level in ("v3", "v4"):
            outputs[level] = np.full((1003, 10), np.nan, np.float32)
            cython.level_kernels(level).Lenet5Forward(weights)(outputs[level], mnist_test[0][:1003], 2)
        np.testing.assert_array_equal(outputs["v4"], outputs["v3"])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("arch", ARCHS)
def test_pixels_computed_or_looked_up_give_the_tables_values(level, arch):
    # The fused pass computes uint8 pixels as pixel * scale + offset where the table is exactly
    # that (input_table's tables are): each output equals the one from the table's own values
    # passed as float32 digits, to the bit. A table that is not affine, or one changed in place
    # after binding, is looked up.
    kernels = cython.level_kernels(level)
    spec = get_architecture(arch)
    weights = spec.fused_weights(initial_state(spec, 7))
    digits = np.random.default_rng(8).integers(0, 256, (9, 28, 28), dtype=np.uint8)
    digits[0] = np.arange(28 * 28).reshape(28, 28) % 256  # every pixel value
    table = weights.table.copy()
    uneven = table.copy()
    uneven[[3, 200]] += np.float32(0.25)
    for t, affine in ((table, True), (uneven, False)):
        bound = kernels.Lenet5Forward(weights._replace(table=t))
        assert bound.affine_field == affine
        got, want = np.full((9, 10), np.nan, np.float32), np.full((9, 10), np.nan, np.float32)
        assert bound(got, digits, 2) == 0 and bound(want, t[digits], 2) == 0
        np.testing.assert_array_equal(got, want)
    t = table.copy()
    bound = kernels.Lenet5Forward(weights._replace(table=t))
    t[[3, 200]] = uneven[[3, 200]]  # after binding: the call must see it
    got, want = np.full((9, 10), np.nan, np.float32), np.full((9, 10), np.nan, np.float32)
    bound(got, digits, 1)
    bound(want, uneven[digits], 1)
    np.testing.assert_array_equal(got, want)


def _shipped_outputs_agree(arch, level, images, labels):
    model = le.load(arch, backend="numpy")
    key = (arch, len(images))
    if key not in _REFERENCE_OUTPUTS:
        _REFERENCE_OUTPUTS[key] = model.forward(images)
    want = _REFERENCE_OUTPUTS[key]
    fused = cython.level_kernels(level).Lenet5Forward(model._arch.fused_weights(model._state))
    got = np.full(want.shape, np.nan, np.float32)
    assert fused(got, images, cython.MAX_THREADS) == 0
    _close(got, want, f"{level} {arch}", 3e-5)
    np.testing.assert_array_equal(network.predicted_labels(model._arch, got),
                                  network.predicted_labels(model._arch, want))
    assert np.mean(network.predicted_labels(model._arch, got) == labels) > 0.98


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_level_runs_the_shipped_models_as_the_reference_does(arch, level, mnist_test):
    _shipped_outputs_agree(arch, level, mnist_test[0][:1000], mnist_test[1][:1000])


@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_level_runs_the_shipped_models_on_all_test_digits(arch, level, mnist_test):
    _shipped_outputs_agree(arch, level, *mnist_test)


def _choose(level):
    """Which level the backend takes in a new process with LENET_ENGINE_ISA=level."""
    done = subprocess.run([sys.executable, "-c", "import lenet_engine.kernels.cython as c; print(c.ISA)"],
                          env={**os.environ, cython.ISA_ENV: level}, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout.strip(), done.stderr


@pytest.mark.parametrize("level", LEVELS)
def test_lenet_engine_isa_forces_a_level(level):
    assert _choose(level)[:2] == (0, level)


def test_an_unknown_level_is_refused_by_name():
    code, _, err = _choose("v5")
    assert code != 0 and "UnknownModelError" in err and "unknown level 'v5'" in err
    with pytest.raises(UnknownModelError, match="this build has"):
        cython.level_kernels("avx9000")


def test_a_level_this_cpu_lacks_is_refused(monkeypatch):
    # Pretend the CPU runs the baseline only: v4 then needs instructions it lacks.
    monkeypatch.setattr(cython, "LEVELS_AVAILABLE", ("baseline",))
    with pytest.raises(UnsupportedCPUError, match="cannot run the v4 kernels"):
        cython.level_kernels("v4")


# The disassembly tests read the built modules with binutils' objdump, which comes with the gcc
# that built them; a build made elsewhere and copied here may lack it.
NEEDS_OBJDUMP = pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils) to disassemble")


def _disassembly(path):
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True,
                          check=True).stdout


# Registers whose presence in a disassembly shows a vector width: AVX's 256-bit ymm, AVX-512's zmm
# and opmask registers.
BEYOND = {"baseline": r"%[yz]mm\d|%k[1-7]\b", "v3": r"%zmm\d|%k[1-7]\b"}


@NEEDS_OBJDUMP
@pytest.mark.parametrize("level", sorted(set(BEYOND) & set(cython.LEVELS_BUILT)))
def test_no_level_contains_instructions_beyond_it(level):
    folder = Path(cython.__file__).parent
    objects = sorted(folder.glob(f"*_{level}.*.so")) + (sorted(folder.glob("_build.*.so")) if level == "baseline" else [])
    assert len(objects) == len(cython.MODULES) + (level == "baseline")
    for path in objects:
        found = re.search(BEYOND[level], _disassembly(path))
        assert found is None, f"{path.name} ({level}) uses {found.group(0)}"


@NEEDS_OBJDUMP
@pytest.mark.parametrize("level", sorted({"v3", "v4"} & set(cython.LEVELS_BUILT)))
def test_the_int8_modules_hold_the_avx_vnni_form_of_vpdpbusd(level):
    # AVX-VNNI's vpdpbusd (VEX) runs only on CPUs with it (Alder Lake and later), which the suite may
    # not have: it is compiled into the 8-lane byte pass of both levels, and its EVEX twin (AVX512-VNNI,
    # on ymm) into v4's alone, where the tests run it; v4's 16-lane byte pass adds the zmm form.
    path, = Path(cython.__file__).parent.glob(f"lenet5_int8_{level}.*.so")
    lines = [line.split("\t")[-1] for line in _disassembly(path).splitlines() if "vpdpbusd" in line]
    assert any(line.startswith("{vex} vpdpbusd") and "%ymm" in line for line in lines)
    evex_ymm = [line for line in lines if line.startswith("vpdpbusd") and "%ymm" in line]
    assert bool(evex_ymm) == (level == "v4")


def _innermost_loops(disassembly, function):
    """The innermost loops of `function` (one per backward jump that no other lies inside), each
    as its instructions' text."""
    body, inside = [], False
    for line in disassembly.splitlines():
        if re.match(rf"^[0-9a-f]+ <{function}(\.[\w.]+)?>:$", line):
            inside = True
        elif inside and not line.strip():
            break
        elif inside and (m := re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)):
            body.append((int(m.group(1), 16), m.group(2)))
    jumps = [(int(m.group(1), 16), at) for at, text in body if (m := re.match(r"j\w+\s+([0-9a-f]+)\b", text))
             and int(m.group(1), 16) < at]
    innermost = [(start, end) for start, end in jumps
                 if not any((s, e) != (start, end) and start <= s and e <= end for s, e in jumps)]
    return [[text for at, text in body if start <= at <= end] for start, end in innermost]


@NEEDS_OBJDUMP
@pytest.mark.parametrize("level", sorted({"v4"} & set(cython.LEVELS_BUILT)))
def test_the_int8_full_layers_keep_their_sums_in_registers(level):
    # C5 and F6 (l5_int8_vnni.h) add vpdpbusd products into up to 16 sums. Through
    # _mm512_dpbusd_epi32, gcc 12 copied every sum to another register and back each iteration
    # and kept one on the stack; l8v_dot's asm keeps each in its register. Checked for one digit
    # (batch-1) and four (batches); two at a time (a batch's odd end) still copies one of F6's sums.
    path, = Path(cython.__file__).parent.glob(f"lenet5_int8_{level}.*.so")
    text = _disassembly(path)
    checked = 0
    for function in ("l8v_digit", "l8v_digit4"):
        for loop in _innermost_loops(text, function):
            if not any(line.startswith("vpdpbusd") for line in loop):
                continue
            copies = [line for line in loop if re.match(r"vmovdq\w+\s+%zmm\d+,%zmm\d+$", line)]
            assert not copies, f"{function}: a loop of vpdpbusd copies its sums: {copies}"
            checked += 1
    assert checked >= 3
