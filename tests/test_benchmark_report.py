"""The verdicts benchmarks/compare.py prints for the performance targets, on made-up measurements.

Nothing here times anything or imports a peer: the runtimes are dicts of made-up numbers, or
fake runners returning chosen outputs.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare  # benchmarks/ is not a package
import peers

CYTHON, NUMBA = "lenet_engine[cython]", "lenet_engine[numba]"
MACHINE = {"cpu": "a CPU", "host": "a host", "cores_usable": 2, "threads": 2, "clock_ghz": 2.5,
           "clock_source": "timed",
           "isa": {"isa": "v3"}, "vector_lanes_fp32": 8, "peak_cores": 2, "peak_gmacs": 80.0}


def _entry(rate, latency_ms, gmacs=None, proba_ms=None):
    e = {"digits_per_second": {1024: rate, 10000: rate}, "latency_ms": latency_ms,
         "proba_latency_ms": latency_ms if proba_ms is None else proba_ms}
    if gmacs is not None:
        e["efficiency"] = gmacs / MACHINE["peak_gmacs"]
    return e


def _peers():
    """Every fp32 peer, ONNX Runtime the fastest: 40,000 digits/s and 0.1 ms."""
    return {"pytorch eager": _entry(5_000, 1.0), "torchscript": _entry(8_000, 0.9),
            "onnxruntime": _entry(40_000, 0.1), "openvino": _entry(20_000, 0.3)}


def _rows(cython, numba, peer_entries=None, missing=None, training=None, machine=MACHINE, native=None,
          training_missing=None):
    runtimes = {CYTHON: cython, NUMBA: numba, **(_peers() if peer_entries is None else peer_entries)}
    rows = compare.targets({"modern": {"runtimes": runtimes, "missing": missing or {}}}, training, machine,
                           native, training_missing)
    return {(r["key"], r["runtime"]): r for r in rows}


# --- verdicts -------------------------------------------------------------------------


def test_verdicts_say_met_or_by_how_much_not():
    rows = _rows(_entry(120_000, 0.04, gmacs=56.0, proba_ms=0.06), _entry(60_000, 0.06),
                 training={"pytorch eager": 10.0, CYTHON: 4.0})
    assert rows["throughput N=1,024", CYTHON]["verdict"] == "met (1.20x margin)"  # 3x against 2.5x
    assert rows["throughput N=1,024", NUMBA]["verdict"] == "not met: 1.33x short"  # 1.5x against 2x
    assert rows["latency forward", CYTHON]["verdict"] == "met (1.25x margin)"
    assert rows["latency predict_proba", CYTHON]["verdict"] == "not met: 1.20x short"
    assert rows["efficiency", CYTHON]["verdict"] == "met (1.17x margin)"  # 70% against 60%
    assert rows["training", CYTHON]["verdict"] == "met (1.25x margin)"
    assert "why" not in rows["throughput N=1,024", CYTHON]
    # numba's targets are its throughput alone.
    assert {key for key, runtime in rows if runtime == NUMBA} == {"throughput N=1,024", "throughput N=10,000"}


def test_every_target_not_met_says_why():
    rows = _rows(_entry(70_000, 0.06, gmacs=40.0), _entry(60_000, 0.06),
                 training={"pytorch eager": 10.0, CYTHON: 6.0})
    short = [r for r in rows.values() if r["verdict"].startswith("not met")]
    # cython: throughput x2, latency x2, efficiency, training; numba: throughput x2
    assert len(short) == 8
    assert all(r["why"] for r in short)
    # Efficiency: this run's numbers against the machine's own peak at the level in use.
    assert rows["efficiency", CYTHON]["why"].startswith("50% of this machine's fp32 FMA peak at the level in use (v3)")
    assert "8 lanes" in rows["efficiency", CYTHON]["why"]
    # Shortfalls analysed before, and one that has no known cause.
    assert "C3" in rows["throughput N=1,024", NUMBA]["why"]
    assert "FMA peak" in rows["throughput N=1,024", CYTHON]["why"]
    assert rows["latency forward", CYTHON]["why"].startswith("no cause on record")
    assert rows["training", CYTHON]["why"].startswith("no cause on record")


def test_why_names_what_this_run_shows():
    machine = {**MACHINE, "isa": {"isa": "v3", "isa_available": ["v4", "v3", "baseline"], "forced": "v3"}}
    rows = _rows(_entry(70_000, 0.04, proba_ms=0.07), _entry(60_000, 0.06), machine=machine)
    why = rows["latency predict_proba", CYTHON]["why"]
    assert "below v4, the best level this CPU runs (LENET_ENGINE_ISA=v3)" in why
    assert "30.0 us of its 70.0 us are the step from outputs to probabilities" in why


def test_the_report_prints_each_reason_once(capsys):
    rows = _rows(_entry(70_000, 0.06, gmacs=40.0), _entry(60_000, 0.06))
    compare.print_targets(list(rows.values()))
    out = capsys.readouterr().out
    assert out.count(compare.KNOWN_SHORTFALLS[("lenet_engine[numba]", "modern")]) == 1
    assert "throughput N=10,000 (modern, lenet_engine[numba])" in out


# --- agreement: relative to max(1, |y|) -------------------------------------------------


def test_agreement_is_relative_to_the_larger_of_one_and_the_output():
    reference = np.array([[100.0, 0.5]], np.float32)
    # Distances near 100 off by 1.6e-4: 1.6e-6 of the output, within the tolerance.
    assert compare.agreement(reference + np.float32([1.6e-4, 0]), reference) == pytest.approx(1.6e-6, rel=0.1)
    assert compare.agreement(reference + np.float32([1.6e-4, 0]), reference) <= compare.AGREEMENT
    # Below 1 the difference counts as it is: 1.6e-4 off an output of 0.5 is too much.
    assert compare.agreement(reference + np.float32([0, 1.6e-4]), reference) > compare.AGREEMENT


def _fake_runner(outputs, precision="f32", missing=()):
    def runner(name, arch, workdir, threads, spinning=True, output="forward"):
        if name in missing:
            raise ImportError(f"No module named {name!r}")

        def run(digits):
            return outputs[name]

        run.precision = precision if name == peers.OPENVINO_DEFAULT else "f32"
        return run

    return runner


def test_a_peer_within_the_relative_tolerance_is_timed_one_beyond_it_is_not(monkeypatch):
    reference = np.array([[100.0, 30.0], [2.0, 0.5]], np.float32)
    outputs = {name: reference for name in peers.RUNTIMES}
    outputs["onnxruntime"] = reference + np.float32([[1.6e-4, 0], [0, 0]])  # 1.6e-6 relative: timed
    outputs["torchscript"] = reference + np.float32([[0, 0], [0, 1e-3]])  # 1e-3 of 0.5: not timed
    outputs[peers.OPENVINO_DEFAULT] = reference * np.float32(1.01)  # bf16: far off, shown all the same
    monkeypatch.setattr(compare.peers, "runner", _fake_runner(outputs, precision="bf16", missing=("openvino",)))
    result, missing = {"runtimes": {}}, {}
    timed, loaded = compare.load_runners(result, "classic", 2, "unused", missing, None, reference)
    runtimes = result["runtimes"]
    assert "onnxruntime" in timed and "error" not in runtimes["onnxruntime"]
    assert "torchscript" not in timed and "not timed" in runtimes["torchscript"]["error"]
    assert "torchscript" in loaded  # its accuracy is still measured
    assert "not installed" in missing["openvino"]
    # OpenVINO at its default precision: its own row, labelled with the precision it chose, not dropped.
    assert peers.OPENVINO_DEFAULT in timed
    assert runtimes[peers.OPENVINO_DEFAULT]["label"] == "OpenVINO (default precision: bf16)"
    assert runtimes[peers.OPENVINO_DEFAULT]["agreement"] > compare.AGREEMENT
    assert "error" not in runtimes[peers.OPENVINO_DEFAULT]


def test_openvino_default_is_left_out_where_it_is_f32(monkeypatch):
    reference = np.ones((1, 10), np.float32)
    monkeypatch.setattr(compare.peers, "runner",
                        _fake_runner({name: reference for name in peers.RUNTIMES}, precision="f32"))
    result, missing = {"runtimes": {}}, {}
    timed, _ = compare.load_runners(result, "modern", 2, "unused", missing, None, reference)
    assert peers.OPENVINO_DEFAULT not in timed and "f32" in missing[peers.OPENVINO_DEFAULT]
    assert "openvino" in timed


def test_reduced_precision_peer_is_no_yardstick():
    fast_bf16 = {**_entry(1_000_000, 0.001), "precision": "bf16"}
    rows = _rows(_entry(120_000, 0.04), _entry(90_000, 0.06), peer_entries={**_peers(), peers.OPENVINO_DEFAULT: fast_bf16})
    assert rows["throughput N=1,024", CYTHON]["peer"] == "onnxruntime"
    assert rows["throughput N=1,024", CYTHON]["verdict"].startswith("met")
    assert rows["latency forward", CYTHON]["peer"] == "onnxruntime"


# --- a peer that cannot be timed: "not measured", never judged against the next one -------


def test_a_disagreeing_peer_makes_its_verdicts_not_measured():
    entries = _peers()
    entries["onnxruntime"] = {"error": "outputs differ from the engine's by 1.6e-04 of max(1, |y|): not timed"}
    # 10x TorchScript, the fastest peer left: still not "met".
    rows = _rows(_entry(200_000, 0.01), _entry(200_000, 0.01), peer_entries=entries)
    for key, runtime in (("throughput N=1,024", CYTHON), ("throughput N=10,000", NUMBA),
                         ("latency forward", CYTHON), ("latency predict_proba", CYTHON)):
        verdict = rows[key, runtime]["verdict"]
        assert verdict.startswith("not measured: onnxruntime outputs differ"), verdict
        assert "why" not in rows[key, runtime]


def test_a_missing_peer_makes_its_verdicts_not_measured():
    entries = _peers()
    del entries["openvino"]
    rows = _rows(_entry(200_000, 0.01), _entry(200_000, 0.01), peer_entries=entries,
                 missing={"openvino": "not installed (No module named 'openvino')"})
    assert rows["throughput N=1,024", CYTHON]["verdict"] == (
        "not measured: openvino not installed (No module named 'openvino')")
    assert rows["latency forward", CYTHON]["verdict"].startswith("not measured: openvino")


def test_a_peer_without_probabilities_leaves_the_forward_latency_measured():
    entries = _peers()
    entries["onnxruntime"] = {**entries["onnxruntime"], "proba_error": "probabilities differ: not timed"}
    del entries["onnxruntime"]["proba_latency_ms"]
    rows = _rows(_entry(120_000, 0.04), _entry(90_000, 0.06), peer_entries=entries)
    assert rows["latency forward", CYTHON]["verdict"].startswith("met")
    assert rows["latency predict_proba", CYTHON]["verdict"] == (
        "not measured: onnxruntime probabilities differ: not timed")


def test_a_broken_engine_backend_is_not_measured_anywhere():
    cython = {"error": "outputs differ from the engine's by 1.0e-02 of max(1, |y|), over 1e-04: not timed"}
    rows = _rows(cython, _entry(90_000, 0.06))
    mine = [r for (key, runtime), r in rows.items() if runtime == CYTHON and key != "training"]
    assert len(mine) == 7  # throughput x2, latency x2, efficiency, native build x2
    assert all(r["verdict"] == f"not measured: {CYTHON} {cython['error']}" for r in mine)


def test_training_needs_pytorch():
    rows = _rows(_entry(120_000, 0.04), _entry(90_000, 0.06))
    assert rows["training", CYTHON]["verdict"] == "not measured: run with --train"
    rows = _rows(_entry(120_000, 0.04), _entry(90_000, 0.06), training={CYTHON: 4.0},
                 training_missing={"pytorch eager": "not installed"})
    assert rows["training", CYTHON]["verdict"] == "not measured: pytorch eager not installed"


def test_targets_are_for_two_threads():
    rows = _rows(_entry(120_000, 0.04), _entry(90_000, 0.06), machine={**MACHINE, "threads": 4})
    assert all(r["verdict"].startswith("not measured") for r in rows.values())
    assert "this run used 4" in rows["throughput N=1,024", CYTHON]["verdict"]


# --- the portable build against a native one -------------------------------------------


def test_native_build_target():
    entry = _entry(120_000, 0.04)
    rows = _rows(entry, _entry(90_000, 0.06))
    assert rows["native build N=1,024", CYTHON]["verdict"].startswith("not measured: no native build's results")
    native = {("modern", 1024): 120_000 / 0.97, ("modern", 10000): 120_000 / 0.90}
    rows = _rows(entry, _entry(90_000, 0.06), native=native)
    assert rows["native build N=1,024", CYTHON]["verdict"].startswith("met")
    assert rows["native build N=10,000", CYTHON]["verdict"] == "not met: 1.06x short"
    rows = _rows(entry, _entry(90_000, 0.06), native="x.json is a run of the v4 build")
    assert rows["native build N=1,024", CYTHON]["verdict"] == "not measured: x.json is a run of the v4 build"


def test_native_results_must_be_a_native_build_on_this_machine(tmp_path):
    def write(isa, **machine):
        path = tmp_path / f"{isa}.json"
        theirs = {**MACHINE, "isa": {"isa": isa}, **machine}
        runtimes = {CYTHON: {"digits_per_second": {"1024": 123.0, "10000": 456.0}}}
        path.write_text(json.dumps({"machine": theirs, "results": {"modern": {"runtimes": runtimes}}}))
        return path

    assert compare.read_native_results(write("native"), MACHINE) == {("modern", 1024): 123.0,
                                                                      ("modern", 10000): 456.0}
    assert "not a -march=native one" in compare.read_native_results(write("v4"), MACHINE)
    assert "measured elsewhere" in compare.read_native_results(write("native", cpu="another CPU"), MACHINE)


# --- the machine's level --------------------------------------------------------------


def test_lanes_of_the_level_in_use():
    assert [compare.level_lanes(level, 4) for level in ("baseline", "v3", "v4")] == [4, 8, 16]
    assert compare.level_lanes("native", 3) == 8  # a native build: the CPU's own widest


# --- int8 -------------------------------------------------------------------------------


def _int8_rows(monkeypatch, instructions, int8_missing=None, own_fp32=None):
    import int8_peers

    monkeypatch.setattr(compare.le, "info", lambda: {"int8": instructions})
    res = {"runtimes": {CYTHON: _entry(100_000, 0.02), **_peers(),
                        peers.OPENVINO_DEFAULT: _entry(60_000, 0.25)},
           "missing": {}}
    int8 = {int8_peers.ENGINE: {"digits_per_second": 250_000.0, "latency_ms": 0.015},
            # The numba row is the engine too, shown beside: never the peer, however fast.
            "lenet_engine[numba] int8": {"digits_per_second": 900_000.0, "latency_ms": 0.001},
            "onnxruntime int8": {"digits_per_second": 15_000.0, "latency_ms": 0.05},
            "openvino int8": {"digits_per_second": 17_000.0, "latency_ms": 0.2}}
    if own_fp32:
        int8[int8_peers.OWN_FP32] = {"digits_per_second": own_fp32, "latency_ms": 0.0001}
    return {r["key"]: r for r in compare.int8_targets("modern", int8, int8_missing or {}, res)}


def test_int8_verdicts_judge_against_own_fp32_and_the_fastest_peer_at_any_precision(monkeypatch):
    rows = _int8_rows(monkeypatch, "AVX512-VNNI vpdpbusd")
    assert rows["int8 own"]["verdict"] == "met (1.25x margin)"            # 2.5x against 2x with VNNI
    # The fastest peer at any precision is OpenVINO's default (bf16) here: 250,000 / 60,000 = 4.17x.
    assert rows["int8 throughput"]["peer"] == peers.OPENVINO_DEFAULT
    assert rows["int8 throughput"]["verdict"] == "met (1.04x margin)"
    # Latency against the fastest at any precision: ONNX Runtime int8's 0.05 ms (its fp32 takes
    # 0.1); 0.3x against 0.4x.
    assert rows["int8 latency"]["peer"] == "onnxruntime int8"
    assert rows["int8 latency"]["verdict"] == "met (1.33x margin)"


def test_int8_own_target_judges_against_the_fp32_pass_timed_in_the_same_rounds(monkeypatch):
    import int8_peers

    # Timed in the int8 rounds, the fp32 pass is the yardstick (250,000 / 131,579 = 1.9x), not the
    # fp32 table's 100,000 from minutes before; and it is never the fastest peer, however fast.
    rows = _int8_rows(monkeypatch, "AVX512-VNNI vpdpbusd", own_fp32=131_579.0)
    assert rows["int8 own"]["peer"] == int8_peers.OWN_FP32
    assert rows["int8 own"]["verdict"] == "not met: 1.05x short"
    assert rows["int8 latency"]["peer"] == "onnxruntime int8"
    assert rows["int8 throughput"]["peer"] == peers.OPENVINO_DEFAULT
    # An older results file without that row: the fp32 table's rate.
    assert _int8_rows(monkeypatch, "AVX512-VNNI vpdpbusd")["int8 own"]["peer"] == CYTHON


def test_int8_verdicts_without_vnni_or_with_a_peer_missing(monkeypatch):
    rows = _int8_rows(monkeypatch, "AVX2 vpmaddwd")
    assert "1.5x the engine's fp32 (without VNNI)" in rows["int8 own"]["target"]
    assert rows["int8 throughput"]["verdict"] == "not a target without VNNI"
    rows = _int8_rows(monkeypatch, "AVX512-VNNI vpdpbusd", {"openvino int8": "not installed"})
    assert rows["int8 latency"]["verdict"] == "not measured: openvino int8 not installed"
    # The numba backend missing leaves the verdicts standing: it is no peer.
    rows = _int8_rows(monkeypatch, "AVX512-VNNI vpdpbusd", {"lenet_engine[numba] int8": "not installed"})
    assert rows["int8 latency"]["verdict"] == "met (1.33x margin)"


def test_the_clock_is_timed_not_read():
    # The peak counts the clock the cores run at (turbo included), timed on a chain of one-cycle
    # operations: any x86-64 core of this century runs between 0.5 and 7 GHz.
    ghz = compare.running_clock_ghz(1, steps=20_000_000, repeats=2)
    assert 0.5 < ghz < 7.0
