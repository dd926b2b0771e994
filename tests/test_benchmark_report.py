"""The verdicts benchmarks/compare.py prints for issue 5's targets, on made-up measurements."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compare  # noqa: E402  (benchmarks/ is not a package)

MACHINE = {"vector_lanes_fp32": 8, "peak_gmacs_cpu": 80.0, "peak_gmacs_issue": 160.0}


def _entry(rate, latency_ms, cold_s, gmacs):
    return {"digits_per_second": {1024: rate, 10000: rate}, "latency_ms": latency_ms,
            "cold_start_s": cold_s, "efficiency_issue": gmacs / 160.0, "efficiency_cpu": gmacs / 80.0}


def _rows(cython, numba, peer=_entry(40_000, 0.1, 0.3, 0.0), training=None):
    runtimes = {"lenet_engine[cython]": cython, "lenet_engine[numba]": numba, "onnxruntime": peer}
    rows = compare.targets({"modern": {"runtimes": runtimes}}, training, MACHINE)
    return {(" ".join(r["target"].split()[:2]), r["runtime"]): r for r in rows}  # ("cold start", backend)


def test_verdicts_say_met_or_by_how_much_not():
    rows = _rows(_entry(100_000, 0.04, 0.25, 40.0), _entry(60_000, 0.06, 1.4, 24.0))
    assert rows["throughput N=1,024", "lenet_engine[cython]"]["verdict"] == "met (1.25x margin)"
    assert rows["throughput N=1,024", "lenet_engine[numba]"]["verdict"] == "not met: 1.33x short"
    assert rows["batch-1 latency", "lenet_engine[numba]"]["verdict"] == "not met: 1.20x short"
    assert rows["cold start", "lenet_engine[cython]"]["verdict"].startswith("met")
    assert rows["cold start", "lenet_engine[numba]"]["verdict"].startswith("not a target")
    assert "why" not in rows["cold start", "lenet_engine[numba]"]
    assert "why" not in rows["throughput N=1,024", "lenet_engine[cython]"]


def test_every_target_not_met_says_why():
    rows = _rows(_entry(70_000, 0.06, 0.35, 40.0), _entry(60_000, 0.06, 1.4, 24.0),
                 training={"pytorch eager": 10.0, "lenet_engine[cython]": 6.0})
    short = [r for r in rows.values() if r["verdict"].startswith("not met")]
    assert len(short) == 10  # per backend: throughput x2, latency, efficiency; cython: cold start, training
    assert all(r["why"] for r in short)
    # Efficiency: this run's numbers against the CPU's own width.
    assert rows["efficiency at", "lenet_engine[cython]"]["why"].startswith("50% of this CPU's own")
    assert "90% of this CPU's" in rows["efficiency at", "lenet_engine[cython]"]["why"]
    # A shortfall measured before, and one that has no known cause.
    assert "C3" in rows["throughput N=1,024", "lenet_engine[numba]"]["why"]
    assert rows["throughput N=1,024", "lenet_engine[cython]"]["why"].startswith("no cause on record")
    assert rows["training s/epoch", "lenet_engine[cython]"]["why"].startswith("no cause on record")


def test_the_report_prints_each_reason_once(capsys):
    rows = _rows(_entry(70_000, 0.06, 0.35, 40.0), _entry(60_000, 0.06, 1.4, 24.0))
    compare.print_targets(list(rows.values()))
    out = capsys.readouterr().out
    assert out.count("modern's C3 reads all 6 S2 maps") == 1
    assert "throughput N=10,000 (modern, lenet_engine[numba])" in out
