"""lenet_engine against PyTorch, TorchScript, ONNX Runtime and OpenVINO, on the same machine, in one run.

    pip install -e ".[bench]" matplotlib
    python benchmarks/compare.py --train --json results.json --plot throughput.png
    python benchmarks/compare.py --native-results native.json   # also the portable-build target

Every peer runs the same model (the engine's shipped weights, copied into an
equivalent PyTorch module, exported from it to TorchScript and ONNX; see
peers.py) on the same digits. Its outputs are checked against the engine's
before anything is timed: max |a - b| / max(1, |b|) at most AGREEMENT (a
relative tolerance where outputs are large, as classic's RBF distances are,
an absolute one below 1). The fp32 peers are the yardsticks; OpenVINO also
runs at its own default precision (bf16 on CPUs with AMX), as a row of its
own with its accuracy on the MNIST test set, never a yardstick. Measured, per
architecture:

- throughput, digits/s, per batch size (1, 64, 1,024, 10,000): the runtimes
  take turns, `--rounds` times, and each reports the median of its rounds;
  also digits per CPU-second of the process, which a shared machine's load
  does not change the way it changes wall-clock time;
- batch-1 latency of the network's outputs (`forward`) and of class
  probabilities (`predict_proba`; the peers compute the softmax in their own
  graphs): the median of many single-digit calls; each peer gets the best of
  1 and `--threads` threads (and for ONNX Runtime, spinning on or off), and
  the table says which won;
- hardware efficiency at N = 10,000: multiply-accumulates per digit as in
  LENET5.md (the network's, computed directly: the Cython pass's Winograd C3
  does 0.6x of C3's), against this machine's fp32 FMA peak at the x86-64 level the
  engine's Cython kernels use (cores x 2 FMA units x lanes x clock; 4, 8 or
  16 lanes for baseline, v3, v4; the clock timed on the cores while all are
  busy, turbo included, not /proc/cpuinfo's nominal figure);
- accuracy on the 10,000 MNIST test digits, where the test set is on disk;
- cold start, fresh process to first prediction, and memory growth while
  predicting 10,000 digits: each in new processes (fresh_process.py);
- with --train: seconds per 60,000-digit epoch of modern, Adam, batch 128,
  each runtime in fresh processes.

Then the ratio of each engine number to the fastest fp32 peer's, a verdict
per target ("met", "not met" and by how much, or "not measured" and why; a
verdict that needs a peer this run could not time is "not measured", never
judged against the next-best peer) and, under the table, why each target not
met is not: this run's own numbers where they tell, else the cause analysed
earlier (KNOWN_SHORTFALLS). The header names the machine's x86-64 level and
the kernel level and build the engine chose; the JSON results record them.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fresh_process
import int8_peers
import numpy as np
import peers

import lenet_engine as le
from lenet_engine.architectures import get_architecture
from lenet_engine.cli import load_samples
from lenet_engine.network import predicted_labels

# Largest max |a - b| / max(1, |b|) between a peer's outputs and the engine's before it is timed.
AGREEMENT = 1e-4
MEMORY_DIGITS = 10_000
# Multiply-accumulates per digit, the "Work per image" table of LENET5.md.
MACS_PER_DIGIT = {
    "classic": 117_600 + 150_000 + 48_000 + 10_080 + 840,
    "modern": 117_600 + 240_000 + 48_000 + 10_080 + 840,
}
# The fp32 FMA peak per core is FMA units x lanes x clock. Two FMA units per core, as most x86
# cores since Haswell and Zen 2 have; some AVX-512 Xeons (Silver, Bronze) have one 512-bit unit.
FMA_UNITS = 2
# fp32 lanes of each x86-64 level's widest vectors; a native build's level is the CPU's own.
LEVEL_LANES = {"baseline": 4, "v3": 8, "v4": 16}
CPU_LEVEL_LANES = {1: 4, 2: 4, 3: 8, 4: 16}

# The targets: cython backend at TARGET_THREADS threads, fp32 against fp32 peers.
TARGET_THREADS = 2
THROUGHPUT_SIZES = (1024, 10000)
THROUGHPUT_LIMIT = {"lenet_engine[cython]": 2.5, "lenet_engine[numba]": 2.0}  # x the fastest peer
LATENCY_LIMIT = 0.5        # x the fastest peer's batch-1 latency, forward and predict_proba
TRAINING_LIMIT = 0.5       # x PyTorch's seconds per epoch
EFFICIENCY_LIMIT = 0.60    # of the FMA peak at the level in use, modern, N = 10,000
NATIVE_LIMIT = 0.95        # of a -march=native build's throughput, same machine
# int8 (--int8): the engine's int8 against its own fp32 (2x with VNNI, 1.5x without) and against
# the fastest peer at any precision (4x throughput with VNNI; 0.4x batch-1 latency).
INT8_OWN_LIMIT = {True: 2.0, False: 1.5}
INT8_PEER_LIMIT = 4.0
INT8_LATENCY_LIMIT = 0.4
INT8_N = 10000
INT8_WHY = ("the integer sums run near their instruction's peak: on a Zen 5 (perf, one core, modern) C1's and "
            "C3's vpdpbusd with the input's quads and S4's gathers took 32% of the samples at about two "
            "vpdpbusd a cycle, the squashing (by steps: two vpermi2b and a vpopcntb a 64 values) 17%, C5 and "
            "F6 11%, S2's pooling 4% (benchmarks/RESULTS.md, Zen 5). Against the engine's own fp32: that "
            "pass computes C3 by Winograd's F(2, 5), 0.6x the multiply-adds, which the int8 pass cannot: the "
            "weights' transform has fractions (1/6, 1/30), so its products would not be the reference's "
            "exact integers. On the Zen 5 the ratio was 1.97x-2.18x over three runs (modern 1.97x-1.98x)")
CYTHON = "lenet_engine[cython]"


# --- the machine ----------------------------------------------------------------------


def _cpuinfo():
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def isa_info():
    """The x86-64 level of this CPU, the Cython kernel levels it runs, and the one the engine chose."""
    info = le.info()
    return {"cpu_level": info["cpu_level"], "isa_available": info["isa_available"], "isa": info["isa"],
            "build": info["builds"].get("cython"), "builds": info["builds"],
            "forced": os.environ.get("LENET_ENGINE_ISA") or None}


def datapath_lanes(cpuinfo, lanes):
    """fp32 lanes one FMA unit completes per cycle at vectors of `lanes`: AMD's Zen 3 and Zen 4
    (family 25) run a 512-bit FMA as two halves on 256-bit units, so their peak is 8 lanes a unit."""
    if cpuinfo.get("vendor_id") == "AuthenticAMD" and cpuinfo.get("cpu family") == "25":
        return min(lanes, 8)
    return lanes


def _peak_lanes(machine):
    """The lanes the peak counts, as the tables say it: '16', or '8 (16-lane vectors on 8-lane units)'."""
    lanes, unit = machine["vector_lanes_fp32"], machine.get("fma_datapath_lanes", machine["vector_lanes_fp32"])
    return f"{unit}" if unit == lanes else f"{unit} ({lanes}-lane vectors on {unit}-lane units)"


def level_lanes(isa, cpu_level):
    """fp32 lanes of the kernel level `isa`: its own width, or the CPU's widest for a native build."""
    return LEVEL_LANES.get(isa) or CPU_LEVEL_LANES.get(cpu_level, 4)


def _add_xor_chain(n, k):
    # Each step's add waits for the xor before it, and each xor for its add: two one-cycle
    # operations in a chain on every x86-64 core, which no compiler can shorten or vectorise.
    x = 0
    for i in range(n):
        x = (x + i) ^ k
    return x


def running_clock_ghz(cores, steps=100_000_000, repeats=3):
    """The clock the cores run at while all `cores` of them are busy (turbo included, which
    /proc/cpuinfo's figure leaves out), timed on a chain of two one-cycle operations a step in
    Numba, one thread per core at once; the best of `repeats` runs per thread, median over
    threads. None without Numba."""
    try:
        import numba
    except ImportError:
        return None
    chain = numba.njit(nogil=True)(_add_xor_chain)
    chain(10, 3)

    def rate():
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            chain(steps, 12345)
            best = max(best, 2 * steps / (time.perf_counter() - start))
        return best

    with ThreadPoolExecutor(cores) as pool:
        rates = list(pool.map(lambda _: rate(), range(cores)))
    return float(np.median(rates)) / 1e9


def machine_info(threads):
    info = _cpuinfo()
    isa = isa_info()
    lanes = level_lanes(isa["isa"], isa["cpu_level"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        nominal_ghz = float(info["cpu MHz"]) / 1e3
    except (KeyError, ValueError):
        nominal_ghz = float("nan")
    clock_ghz = running_clock_ghz(min(cores, threads))
    if clock_ghz is not None:
        clock_source = (f"timed: a chain of one-cycle integer operations on {min(cores, threads)} core(s) at once "
                        f"(/proc/cpuinfo says {nominal_ghz:.3f} GHz, the nominal clock under a hypervisor)")
    elif nominal_ghz == nominal_ghz:
        clock_ghz, clock_source = nominal_ghz, ("/proc/cpuinfo 'cpu MHz' of the first core (no Numba to time it; "
                                                "under a hypervisor, the nominal clock, below the turbo clock)")
    else:
        clock_ghz, clock_source = float("nan"), "unknown: no Numba to time it and /proc/cpuinfo has no 'cpu MHz'"
    versions = {"lenet_engine": le.__version__, "numpy": np.__version__}
    for module in ("torch", "onnxruntime", "openvino", "numba"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "host": platform.node(),
        "cores_usable": cores, "threads": threads, "python": sys.version.split()[0],
        "clock_ghz": clock_ghz, "clock_source": clock_source, "clock_nominal_ghz": nominal_ghz,
        "isa": isa,
        # The peak of the cores the runtimes are given, min(threads, cores), at the engine's level.
        "vector_lanes_fp32": lanes,
        "fma_datapath_lanes": datapath_lanes(info, lanes),
        "cpu_vector_lanes_fp32": CPU_LEVEL_LANES.get(isa["cpu_level"], 4),
        "peak_cores": min(cores, threads),
        "peak_gmacs": min(cores, threads) * FMA_UNITS * datapath_lanes(info, lanes) * clock_ghz,
        "versions": versions, "load_average_at_start": os.getloadavg(), "niceness": os.nice(0),
        # Linux shares the CPU between autogroups (sessions) before threads: a group's nice
        # sets how much of the machine this process can get against other sessions' jobs.
        "autogroup": _read("/proc/self/autogroup"),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "thread_environment": {k: v for k, v in os.environ.items()
                               if k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "NUMBA_"))
                               or k in ("LENET_ENGINE_NUM_THREADS", "LENET_ENGINE_ISA")},
    }


def print_machine(machine):
    isa = machine["isa"]
    print(f"machine: {machine['cpu']}, {machine['cores_usable']} usable cores, {machine['threads']} threads, "
          f"Python {machine['python']}; load average {machine['load_average_at_start']}, "
          f"niceness {machine['niceness']}, autogroup {machine['autogroup']}")
    forced = f"forced by LENET_ENGINE_ISA={isa['forced']}" if isa["forced"] else "chosen at import"
    print(f"ISA: this CPU is x86-64 level {isa['cpu_level']} and runs the kernel levels "
          f"{', '.join(isa['isa_available']) or 'none'}; the engine uses {isa['isa']} ({forced}), "
          f"build: {isa['build']}")
    print(f"clock {machine['clock_ghz']:.3f} GHz from {machine['clock_source']}")
    print(f"fp32 FMA peak of {machine['peak_cores']} core(s) at the engine's level: {machine['peak_gmacs']:.1f} "
          f"GMAC/s (cores x {FMA_UNITS} FMA units x {_peak_lanes(machine)} lanes x clock)")
    print(f"versions: {machine['versions']}; builds: {isa['builds']}")
    print(f"cpu affinity {machine['cpu_affinity']}; thread settings in the environment: "
          f"{machine['thread_environment'] or 'none'}")


# --- timing ---------------------------------------------------------------------------


def agreement(outputs, reference):
    """max |a - b| / max(1, |b|) over every output: relative where outputs are large, absolute below 1."""
    a = np.asarray(outputs, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    return float((np.abs(a - b) / np.maximum(1.0, np.abs(b))).max())


def label(name, precision):
    """How a runtime is named in the tables: the reduced-precision row says which precision."""
    if name == peers.OPENVINO_DEFAULT:
        return f"OpenVINO (default precision: {precision})"
    return name


def median_seconds(run, digits, min_time, min_repeats):
    """(median wall seconds, median CPU seconds of the whole process) per call of run(digits).

    CPU time counts every thread of the process (spin-waiting included) and not the time the
    process waited for a core: on a shared machine it shows the work a runtime does, where
    wall time also shows how much of the machine it got.
    """
    wall, cpu = [], []
    started = time.perf_counter()
    while len(wall) < min_repeats or time.perf_counter() - started < min_time:
        t, c = time.perf_counter(), time.process_time()
        run(digits)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def latency_variants(runners, arch, workdir, threads, output):
    """{(peer, variant label): run}: each peer with 1 and `threads` threads (ONNX Runtime also without spinning)."""
    variants = {}
    for name in runners:
        if name.startswith("lenet_engine"):
            variants[name, None] = runners[name]  # a lone digit already runs on the calling thread
            continue
        for t in sorted({1, threads}):
            setting = f"{t} thread{'s' * (t > 1)}"
            variants[name, setting] = peers.runner(name, arch, workdir, t, output=output)
            if name == "onnxruntime":
                variants[name, setting + ", no spinning"] = peers.runner(name, arch, workdir, t, spinning=False,
                                                                        output=output)
    return variants


def measure_latency(result, runners, arch, workdir, threads, rounds, one, output):
    """Batch-1 latency: every call timed alone, the runtimes (and each peer's variants) taking turns."""
    candidates = latency_variants(runners, arch, workdir, threads, output)
    calls = {key: [] for key in candidates}
    for run in candidates.values():
        run(one)
    for _ in range(rounds):
        for key, run in candidates.items():
            started = time.perf_counter()
            while time.perf_counter() - started < 0.3:
                t = time.perf_counter()
                run(one)
                calls[key].append(time.perf_counter() - t)
    prefix = "" if output == "forward" else "proba_"
    for name in runners:
        options = {setting: float(np.median(c)) for (n, setting), c in calls.items() if n == name}
        best = min(options, key=lambda setting: options[setting])
        entry = result["runtimes"][name]
        entry[prefix + "latency_ms"] = 1e3 * options[best]
        entry[prefix + "latency_setting"] = best
        entry[prefix + "latency_ms_per_setting"] = {str(k): 1e3 * v for k, v in options.items()}


def load_runners(result, arch, threads, workdir, missing, images, reference):
    """({name: run} timed, {name: run} loaded): every runtime that loads, checked against `reference`,
    the engine's NumPy-reference outputs for `images`.

    A runtime that is not installed goes into `missing`. An fp32 runtime whose outputs differ
    from the engine's by more than AGREEMENT is recorded with an error and not timed; OpenVINO at
    its default precision is timed whatever it gives (its row shows how far it is off), and left
    out where that default is f32 (the openvino row is then the same thing).
    """
    timed, loaded = {}, {}
    for name in peers.RUNTIMES:
        if name in missing:
            continue
        try:
            run = peers.runner(name, arch, workdir, threads)
        except ImportError as exc:
            missing[name] = f"not installed ({exc})"
            continue
        if name == peers.OPENVINO_DEFAULT and run.precision == "f32":
            missing[name] = "its default precision on this CPU is f32: the openvino row is that run"
            continue
        diff = agreement(run(images), reference)
        entry = result["runtimes"][name] = {"label": label(name, run.precision), "precision": run.precision,
                                            "agreement": diff}
        loaded[name] = run
        if name != peers.OPENVINO_DEFAULT and diff > AGREEMENT:
            entry["error"] = (f"outputs differ from the engine's by {diff:.1e} of max(1, |y|), over "
                              f"{AGREEMENT:.0e}: not timed")
            continue
        timed[name] = run
    return timed, loaded


def proba_runners(result, runners, arch, threads, workdir, images, reference):
    """{name: run} of predict_proba's twins for the fp32 runtimes timed, checked against `reference`,
    the engine's NumPy-reference probabilities for `images`."""
    out = {}
    for name in runners:
        if name == peers.OPENVINO_DEFAULT:
            continue  # not a yardstick: its forward row says what it does
        run = peers.runner(name, arch, workdir, threads, output="proba")
        diff = agreement(run(images), reference)
        entry = result["runtimes"][name]
        entry["proba_agreement"] = diff
        if diff > AGREEMENT:
            entry["proba_error"] = (f"probabilities differ from the engine's by {diff:.1e}, over "
                                    f"{AGREEMENT:.0e}: not timed")
            continue
        out[name] = run
    return out


def measure_inference(arch, threads, batches, workdir, rounds, missing, test_set=None):
    images, _ = load_samples()
    reference = le.load(arch, backend="numpy")
    result = {"runtimes": {}}
    runners, loaded = load_runners(result, arch, threads, workdir, missing, images, reference.forward(images))
    probas = proba_runners(result, runners, arch, threads, workdir, images, reference.predict_proba(images))

    one = images[:1]
    measure_latency(result, runners, arch, workdir, threads, rounds, one, "forward")
    measure_latency(result, probas, arch, workdir, threads, rounds, one, "proba")

    for n in batches:
        batch = np.ascontiguousarray(np.resize(images, (n, 28, 28)))
        per_round = {name: [] for name in runners}
        per_cpu = {name: [] for name in runners}
        for run in runners.values():
            run(batch)  # warm-up: allocations, arena growth, caches
        for _ in range(rounds):
            for name, run in runners.items():
                wall, cpu = median_seconds(run, batch, min_time=0.25, min_repeats=3 if n >= 1024 else 10)
                per_round[name].append(n / wall)
                per_cpu[name].append(n / cpu if cpu > 0 else float("nan"))
        for name, rates in per_round.items():
            entry = result["runtimes"][name]
            entry.setdefault("digits_per_second", {})[n] = float(np.median(rates))
            entry.setdefault("digits_per_second_rounds", {})[n] = rates
            entry.setdefault("digits_per_cpu_second", {})[n] = float(np.median(per_cpu[name]))

    if test_set is not None:
        digits, labels = test_set
        a = get_architecture(arch)
        for name, run in loaded.items():
            predicted = predicted_labels(a, np.asarray(run(digits)))
            result["runtimes"][name]["test_accuracy"] = float(np.mean(predicted == labels))
    return result


def measure_int8(arch, threads, workdir, rounds, res, test_set, calibration):
    """{int8 runtime: {digits_per_second, latency_ms, test_accuracy, labels_as_fp32}} and {runtime: why not},
    the runtimes taking turns as in measure_inference; res is the arch's fp32 result (for its labels)."""
    missing = int8_peers.prepare(arch, workdir, calibration)
    runners = {}
    for name in int8_peers.RUNTIMES:
        if name in missing:
            continue
        try:
            runners[name] = int8_peers.runner(name, arch, workdir, threads)
        except ImportError as exc:
            missing[name] = f"not installed ({exc})"
        except Exception as exc:  # noqa: BLE001 - a peer that cannot load the model is not measured
            missing[name] = f"could not load the QDQ model ({str(exc).strip().splitlines()[-1][:200]})"
    images, _ = load_samples()
    batch = np.ascontiguousarray(np.resize(images, (INT8_N, 28, 28)))
    out = {name: {"label": name, "rates": [], "calls": []} for name in runners}
    for run in runners.values():
        run(batch)
        run(batch[:1])
    for _ in range(rounds):
        for name, run in runners.items():
            out[name]["rates"].append(INT8_N / median_seconds(run, batch, 0.25, 3)[0])
            started = time.perf_counter()
            while time.perf_counter() - started < 0.3:
                t = time.perf_counter()
                run(batch[:1])
                out[name]["calls"].append(time.perf_counter() - t)
    fp32 = le.load(arch)
    for name, entry in out.items():
        entry["digits_per_second"] = float(np.median(entry.pop("rates")))
        entry["latency_ms"] = 1e3 * float(np.median(entry.pop("calls")))
        if test_set is not None:
            digits, labels = test_set
            predicted = int8_peers.labels(arch, runners[name](digits))
            entry["test_accuracy"] = float(np.mean(predicted == labels))
            entry["labels_as_fp32"] = float(np.mean(predicted == fp32.predict(digits)))
    return out, missing


def int8_targets(arch, int8, missing, res):
    """Verdict rows of the int8 targets for one architecture."""
    vnni = "VNNI" in (le.info().get("int8") or "")
    mine = int8.get(int8_peers.ENGINE, {})
    rows = []
    # The fp32 pass timed in the int8 rounds, else (an older results file) the fp32 table's.
    own_name, own = int8_peers.OWN_FP32, int8.get(int8_peers.OWN_FP32, {}).get("digits_per_second")
    if not own:
        own_name, own = CYTHON, res["runtimes"].get(CYTHON, {}).get("digits_per_second", {}).get(INT8_N)
    rate = mine.get("digits_per_second")
    limit = INT8_OWN_LIMIT[vnni]
    ratio = rate / own if rate and own else None
    rows.append(_row("int8 own", "int8", f"int8 throughput N={INT8_N:,} >= {limit:g}x the engine's fp32"
                     f" ({'with' if vnni else 'without'} VNNI)", arch, int8_peers.ENGINE, rate, own_name, own,
                     ratio, _verdict(ratio, limit, True) if ratio else "not measured: no fp32 or int8 rate"))
    # The fastest peer at any precision: the fp32 peers, OpenVINO's default precision, the int8 peers.
    candidates = {n: e for n, e in res["runtimes"].items() if n in peers.PEERS and "error" not in e}
    candidates.update({n: e for n, e in int8.items() if n not in int8_peers.OWN})
    # Every peer must have been timed for a verdict, but OpenVINO's default where that is f32 (its
    # openvino row is then the same run).
    gone = {n: why for n, why in {**res.get("missing", {}), **missing}.items()
            if (n in peers.PEERS or n in int8_peers.RUNTIMES and n not in int8_peers.OWN)
            and not why.startswith("its default precision")}
    for key, target, value, limit, higher in (
            ("int8 throughput", (f"int8 throughput N={INT8_N:,} >= {INT8_PEER_LIMIT:g}x the fastest peer at any "
                                 "precision"), lambda e: e.get("digits_per_second") if isinstance(e.get("digits_per_second"), float)
             else e.get("digits_per_second", {}).get(INT8_N), INT8_PEER_LIMIT, True),
            ("int8 latency", f"int8 batch-1 latency <= {INT8_LATENCY_LIMIT:g}x the fastest peer's at any precision",
             lambda e: e.get("latency_ms"), INT8_LATENCY_LIMIT, False)):
        found = {n: value(e) for n, e in candidates.items() if value(e) is not None}
        mine_value = value(mine) if mine else None
        if not found or mine_value is None:
            rows.append(_row(key, "int8", target, arch, int8_peers.ENGINE, mine_value))
            continue
        peer = (max if higher else min)(found, key=found.get)
        ratio = mine_value / found[peer]
        verdict = _verdict(ratio, limit, higher)
        if gone:
            verdict = "not measured: " + "; ".join(f"{p} {why}" for p, why in gone.items())
        if key == "int8 throughput" and not vnni:
            verdict = "not a target without VNNI"
        rows.append(_row(key, "int8", target, arch, int8_peers.ENGINE, mine_value, peer, found[peer], ratio, verdict))
    return rows


def print_int8(arch, int8, missing):
    print(f"\n### int8, {arch} (2 threads unless stated; N={INT8_N:,}; batch-1 latency over single-digit calls)\n")
    print("| runtime | digits/s | batch-1 ms | MNIST test accuracy | labels as the engine's fp32 |")
    print("| --- | --- | --- | --- | --- |")
    for name, e in int8.items():
        print(f"| {name} | {e['digits_per_second']:,.0f} | {e['latency_ms']:.3f} | "
              f"{_num(100 * e['test_accuracy'] if 'test_accuracy' in e else None, '.2f')} | "
              f"{_num(100 * e['labels_as_fp32'] if 'labels_as_fp32' in e else None, '.2f')}% |")
    for name, why in missing.items():
        print(f"{name}: not measured: {why}")


def load_test_set():
    """(MNIST test digits, labels), or (None, why not): read from disk, never downloaded here."""
    try:
        return le.datasets.load_mnist("test", download=False), None
    except le.LenetEngineError as exc:
        return None, str(exc)


def measure_fresh(arch, names, threads, workdir, cold_runs):
    """Cold start and memory, each runtime in its own new processes."""
    out = {name: {} for name in names}
    if cold_runs:
        for name, times in fresh_process.cold_start(names, arch, workdir, threads, cold_runs).items():
            out[name]["cold_start_s"] = float(np.median(times))
            out[name]["cold_start_runs_s"] = times
    for name in names:
        out[name]["memory"] = fresh_process.memory(name, arch, workdir, threads, MEMORY_DIGITS)
    return out


def training_seconds_per_epoch(threads, rounds, digits=6000):
    """Seconds per 60,000-digit epoch of modern with Adam, batch 128: engine backends and PyTorch eager.

    Each round is a fresh process per runtime making passes over the first `digits` MNIST
    training digits (fresh_process.py); the runtimes take turns `rounds` times, and the median
    pass is scaled to 60,000 digits. PyTorch runs the loop its users write (peers.training_epoch).
    Returns (medians, every pass, {runtime: why not timed}).
    """
    names = list(peers.TRAINING_RUNTIMES)
    missing = {}
    if "numba" not in le.backends():
        names.remove("lenet_engine[numba]")
        missing["lenet_engine[numba]"] = "not installed"
    try:
        import torch  # noqa: F401  (only whether it is installed)
    except ImportError as exc:
        names.remove("pytorch eager")
        missing["pytorch eager"] = f"not installed ({exc})"
    seconds = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            seconds[name] += [s * 60000 / digits for s in fresh_process.training_seconds(name, threads, digits)]
    return {name: float(np.median(s)) for name, s in seconds.items()}, seconds, missing


# --- ratios and targets ---------------------------------------------------------------


def _best_peer(runtimes, value, lower_is_better=False, error_keys=("error",)):
    """(name, value) of the best fp32 peer for value(entry), or (None, None)."""
    found = [(name, value(e)) for name, e in runtimes.items()
             if name in peers.FP32_PEERS and not any(k in e for k in error_keys) and value(e) is not None]
    if not found:
        return None, None
    return (min if lower_is_better else max)(found, key=lambda kv: kv[1])


def _untimed(runtimes, missing, value, error_keys):
    """{fp32 peer: why} for each yardstick this run could not time: a verdict needs all of them."""
    why = {}
    for peer in peers.FP32_PEERS:
        entry = runtimes.get(peer)
        if peer in missing:
            why[peer] = missing[peer]
        elif entry is None:
            why[peer] = "not run"
        elif any(k in entry for k in error_keys):
            why[peer] = next(entry[k] for k in error_keys if k in entry)
        elif value(entry) is None:
            why[peer] = "not measured in this run"
    return why


def _verdict(ratio, limit, higher_is_better):
    """'met (1.3x margin)' or 'not met: 2.4x short' for ratio against a target limit."""
    if ratio is None or not np.isfinite(ratio):
        return "not measured"
    factor = ratio / limit if higher_is_better else limit / ratio
    if factor >= 1.0:
        return f"met ({factor:.2f}x margin)"
    return f"not met: {1 / factor:.2f}x short"


def _row(key, kind, target, arch, runtime, engine, peer=None, peer_value=None, ratio=None, verdict=None):
    return {"key": key, "kind": kind, "target": target, "arch": arch, "runtime": runtime, "engine": engine,
            "peer": peer, "peer_value": peer_value, "ratio": ratio, "verdict": verdict or "not measured"}


def _against_peers(key, kind, target, arch, name, entry, runtimes, missing, value, limit, higher,
                   error_keys=("error",)):
    """A target row judged against the fastest fp32 peer: 'not measured' while any of them is untimed."""
    mine = value(entry)
    peer, best = _best_peer(runtimes, value, not higher, error_keys)
    ratio = mine / best if mine is not None and best else None
    row = _row(key, kind, target, arch, name, mine, peer, best, ratio)
    untimed = _untimed(runtimes, missing, value, error_keys)
    if mine is None:
        row["verdict"] = f"not measured: this run has no {key} of {name} (see --batches)"
    elif untimed:
        row["verdict"] = "not measured: " + "; ".join(f"{p} {why}" for p, why in untimed.items())
    else:
        row["verdict"] = _verdict(ratio, limit, higher)
    return row


def _throughput(n):
    return lambda e: e.get("digits_per_second", {}).get(n)


def _native_rows(arch, entry, machine, native):
    """The portable build's throughput against a -march=native build's, from --native-results."""
    rows = []
    for n in THROUGHPUT_SIZES:
        mine = _throughput(n)(entry)
        row = _row(f"native build N={n:,}", "native",
                   f"throughput N={n:,} within {1 - NATIVE_LIMIT:.0%} of a -march=native build's", arch, CYTHON,
                   mine, peer="native build")
        if machine["isa"]["isa"] == "native":
            row["verdict"] = ("not measured: this run is the native build; pass its JSON to a run of the "
                              "portable one with --native-results")
        elif native is None:
            row["verdict"] = ("not measured: no native build's results (run compare.py --json on a build "
                              "made with LENET_ENGINE_NATIVE=1, then pass that file with --native-results)")
        elif isinstance(native, str):
            row["verdict"] = f"not measured: {native}"
        elif (arch, n) not in native:
            row["verdict"] = f"not measured: the native results have no {arch} N={n:,}"
        elif mine is None:
            row["verdict"] = f"not measured: this run did not time N={n:,}"
        else:
            row["peer_value"] = native[arch, n]
            row["ratio"] = mine / native[arch, n]
            row["verdict"] = _verdict(row["ratio"], NATIVE_LIMIT, True)
        rows.append(row)
    return rows


def targets(arch_results, training, machine, native=None, training_missing=None):
    """One row per target, engine backend and architecture.

    training: {runtime: s per epoch} or None when not timed; native: {(arch, N): digits/s} of a
    native build's cython backend, a str saying why there is none usable, or None.
    """
    rows = []
    for arch, res in arch_results.items():
        runtimes, missing = res["runtimes"], res.get("missing", {})
        for name, limit in THROUGHPUT_LIMIT.items():
            entry = runtimes.get(name)
            why_not = missing.get(name) or (entry or {}).get("error") or (None if entry else "not run")
            for n in THROUGHPUT_SIZES:
                key, target = f"throughput N={n:,}", f"throughput N={n:,} >= {limit:g}x the fastest fp32 peer"
                if why_not:
                    rows.append(_row(key, "throughput", target, arch, name, None,
                                     verdict=f"not measured: {name} {why_not}"))
                    continue
                rows.append(_against_peers(key, "throughput", target, arch, name, entry, runtimes, missing,
                                           _throughput(n), limit, True))
            if name == CYTHON:
                rows += _cython_rows(arch, entry, runtimes, missing, machine, native, why_not)
    rows.append(_training_row(training, training_missing or {}))
    if machine["threads"] != TARGET_THREADS:
        for r in rows:
            if not r["verdict"].startswith("not measured"):
                r["verdict"] = (f"not measured: the targets are set for {TARGET_THREADS} threads, this run "
                                f"used {machine['threads']}")
    for r in rows:
        if r["verdict"].startswith("not met"):
            r["why"] = _why(r, arch_results.get(r["arch"], {}).get("runtimes", {}).get(r["runtime"], {}), machine)
    return rows


def _cython_rows(arch, entry, runtimes, missing, machine, native, why_not):
    """The targets set for the cython backend alone: latency, efficiency, the portable build."""
    latency_target = "batch-1 latency, {}, <= " + f"{LATENCY_LIMIT:g}x the fastest fp32 peer's"
    eff_target = f"efficiency at N=10,000 >= {EFFICIENCY_LIMIT:.0%} of the FMA peak at the level in use"
    if why_not:
        rows = [_row(f"latency {output}", "latency", latency_target.format(output), arch, CYTHON, None)
                for output in ("forward", "predict_proba")]
        if arch == "modern":
            rows.append(_row("efficiency", "efficiency", eff_target, arch, CYTHON, None))
        rows += _native_rows(arch, {}, machine, native)
        for r in rows:
            r["verdict"] = f"not measured: {CYTHON} {why_not}"
        return rows
    rows = []
    for output, prefix in (("forward", ""), ("predict_proba", "proba_")):
        rows.append(_against_peers(
            f"latency {output}", "latency", latency_target.format(output), arch, CYTHON, entry, runtimes, missing,
            lambda e, p=prefix: e.get(p + "latency_ms"), LATENCY_LIMIT, False,
            error_keys=("error", "proba_error") if prefix else ("error",)))
    if arch == "modern":
        eff = entry.get("efficiency")
        verdict = (_verdict(eff, EFFICIENCY_LIMIT, True) if eff is not None
                   else "not measured: this run has no N=10,000 (see --batches)")
        rows.append(_row("efficiency", "efficiency", eff_target, arch, CYTHON, eff, ratio=eff, verdict=verdict))
    return rows + _native_rows(arch, entry, machine, native)


def _training_row(training, missing):
    target = f"training s/epoch (modern, Adam, batch 128) <= {TRAINING_LIMIT:g}x PyTorch's"
    row = _row("training", "training", target, "modern", CYTHON, None, peer="pytorch eager")
    if training is None:
        row["verdict"] = "not measured: run with --train"
    elif CYTHON not in training:
        row["verdict"] = f"not measured: {CYTHON} {missing.get(CYTHON, 'not timed')}"
    elif "pytorch eager" not in training:
        row["verdict"] = f"not measured: pytorch eager {missing.get('pytorch eager', 'not timed')}"
    else:
        row.update(engine=training[CYTHON], peer_value=training["pytorch eager"],
                   ratio=training[CYTHON] / training["pytorch eager"])
        row["verdict"] = _verdict(row["ratio"], TRAINING_LIMIT, False)
    return row


# What keeps a target out of reach, where it has been analysed (benchmarks/RESULTS.md has the
# measurements). Keyed by the backend and the architecture; the throughput targets. Only what
# follows from the code and the network, not from one machine's numbers.
KNOWN_SHORTFALLS = {
    ("lenet_engine[cython]", "modern"): (
        "the fused pass's two convolutions run at the FMA peak (on a Zen 4, perf, one core, with C3 "
        "computed directly: C3 41% and C1 22% of the time, one 16-lane multiply-add a cycle), and C3 now "
        "takes 0.6x of its multiply-adds (Winograd's F(2, 5) down the columns: 11-13% more digits a "
        "second); the rest is modern's squashing (6,508 values a digit, a rational with a division: 14% "
        "before), the full layers (13% on the Zen 4; on a Zen 5 20%, 15% since they run in 16 lanes at v4: "
        "C5's 192 KB of weights stream from L2 for every 4 digits) and the "
        "pooling and input (5%). Fewer multiply-adds again would take Winograd in both directions of C3 "
        "(whose transforms weigh more against only 6 input maps) or in C1. ONNX Runtime's margin "
        "over OpenVINO is largest at N=10,000, where its own rate moves most between runs."),
    ("lenet_engine[numba]", "modern"): (
        "the numba pass runs at about half the FMA peak, the Cython twin's at three quarters. Its "
        "convolutions run at about three quarters of the peak (on a Zen 4, one core, a digit's 13.5 us: "
        "C3 41%, C1 20%): LLVM vectorises only innermost loops, so each pass of a kernel row over an "
        "output map loads and stores four maps' sums (the Cython twin keeps 16 maps' sums in registers "
        "through all 150 taps), and C3 takes 120 such passes a digit, each ending in a 4-position "
        "remainder on quarter-width vectors (computing 112 positions instead of 100, so none is left, "
        "gained nothing). The rest is what the twin does in wider or fewer instructions: the "
        "full layers (11%), the squashing (10%: no vrangeps clamps), the pooling (7%: stride-2 reads, "
        "scalar) and the input and its column-shifted copies (7%). Tried and slower: 8 maps a pass "
        "(registers spill), one pass of all 25 taps (one dependency chain; split in two or three chains, "
        "with the weights held as 50 or 100 scalars, 2.2-2.7x slower), channels-last sums."),
}
def _why(row, entry, machine):
    """Why a target was not met: this run's own numbers where they tell, or a shortfall analysed earlier."""
    kind = row["kind"]
    if kind == "efficiency":
        return (f"{entry['efficiency']:.0%} of this machine's fp32 FMA peak at the level in use "
                f"({machine['isa']['isa']}): {machine['peak_gmacs']:.1f} GMAC/s = {machine['peak_cores']} "
                f"core(s) x {FMA_UNITS} FMA units x {_peak_lanes(machine)} lanes x "
                f"{machine['clock_ghz']:.2f} GHz ({machine['clock_source']}). The work counted is the "
                "network's multiply-accumulates alone: the squashing (a rational function, a dozen "
                "multiply-adds and a division per unit), the pooling, loads and shuffles take the same "
                "units and issue slots uncounted.")
    known = KNOWN_SHORTFALLS.get((row["runtime"], row["arch"]))
    if known and kind == "throughput":
        return known
    notes = []
    isa = machine["isa"]
    if row["runtime"] == CYTHON and isa.get("isa_available") and isa["isa"] != isa["isa_available"][0]:
        notes.append(f"the kernels ran at {isa['isa']}, below {isa['isa_available'][0]}, the best level this "
                     f"CPU runs" + (f" (LENET_ENGINE_ISA={isa['forced']})" if isa.get("forced") else "") + ".")
    if row["key"] == "latency predict_proba" and entry.get("proba_latency_ms") and entry.get("latency_ms"):
        extra = entry["proba_latency_ms"] - entry["latency_ms"]
        if extra > 0:
            notes.append(f"{1e3 * extra:.1f} us of its {1e3 * entry['proba_latency_ms']:.1f} us are the step from "
                         "outputs to probabilities after the network (predict_proba's latency less forward's, "
                         "this run).")
    if notes:
        return " ".join(notes)
    return ("no cause on record: ratios on a shared machine move between runs (compare the rounds "
            "in the JSON results, and the per-run tables in benchmarks/RESULTS.md); run again "
            "before reading anything into it.")


def add_efficiency(arch, res, machine):
    for entry in res["runtimes"].values():
        rate = entry.get("digits_per_second", {}).get(10000)
        if rate is None:
            continue
        gmacs = rate * MACS_PER_DIGIT[arch] / 1e9
        entry["gmacs_at_10000"] = gmacs
        entry["efficiency"] = gmacs / machine["peak_gmacs"]


def read_native_results(path, machine):
    """{(arch, N): digits/s} of the cython backend in a previous run of a native build on this
    machine, or a str saying why that file cannot serve."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return f"cannot read {path}: {exc}"
    theirs = data.get("machine", {})
    isa = (theirs.get("isa") or {}).get("isa")
    if isa != "native":
        return f"{path} is a run of the {isa or 'unknown'} build, not a -march=native one"
    same = [(k, theirs.get(k), machine[k]) for k in ("cpu", "host", "cores_usable", "threads")
            if theirs.get(k) != machine[k]]
    if same:
        return f"{path} was measured elsewhere: " + ", ".join(f"{k} {a!r} here {b!r}" for k, a, b in same)
    rates = {}
    for arch, res in data.get("results", {}).items():
        for n, rate in res["runtimes"].get(CYTHON, {}).get("digits_per_second", {}).items():
            rates[arch, int(n)] = rate
    return rates or f"{path} has no throughput of {CYTHON}"


# --- report ---------------------------------------------------------------------------


def _num(value, fmt):
    return "-" if value is None else format(value, fmt)


def print_report(arch, res, batches, machine):
    rows = res["runtimes"]
    print(f"\n### {arch}\n")
    big = [n for n in batches if n >= 1024]
    print("| runtime | precision | agreement | MNIST test accuracy | batch-1 ms, forward (setting) "
          "| batch-1 ms, predict_proba (setting) | " + " | ".join(f"N={n:,} digits/s" for n in batches)
          + "".join(f" | N={n:,} digits per CPU-s" for n in big)
          + f" | GMAC/s at 10,000 | % of FMA peak ({_peak_lanes(machine)} lanes) | cold start s "
          "| memory growth MiB (tracemalloc) |")
    print("| --- " * (len(batches) + len(big) + 10) + "|")
    for name, e in rows.items():
        accuracy = _num(None if e.get("test_accuracy") is None else 100 * e["test_accuracy"], ".2f")
        head = f"| {e.get('label', name)} | {e.get('precision', '-')} | {_num(e.get('agreement'), '.1e')} | {accuracy}"
        if "error" in e:
            print(f"{head} | {e['error']} |")
            continue
        rates = " | ".join(_num(e.get("digits_per_second", {}).get(n), ",.0f") for n in batches)
        rates += "".join(" | " + _num(e.get("digits_per_cpu_second", {}).get(n), ",.0f") for n in big)
        latency = {}
        for prefix in ("", "proba_"):
            setting = f" ({e[prefix + 'latency_setting']})" if e.get(prefix + "latency_setting") else ""
            latency[prefix] = _num(e.get(prefix + "latency_ms"), ".3f") + setting
        if "proba_error" in e:
            latency["proba_"] = e["proba_error"]
        mem = e.get("memory")
        mem_text = "-" if not mem else (f"{mem['rss_growth_mib']:.1f} ({mem['tracemalloc_peak_mib']:.1f})"
                                        if name.startswith("lenet_engine") else f"{mem['rss_growth_mib']:.1f}")
        eff = e.get("efficiency")
        print(f"{head} | {latency['']} | {latency['proba_']} | {rates} | {_num(e.get('gmacs_at_10000'), '.1f')} "
              f"| {_num(None if eff is None else 100 * eff, '.1f')} "
              f"| {_num(e.get('cold_start_s'), '.2f')} | {mem_text} |")
    mem = next((e["memory"] for e in rows.values() if e.get("memory")), None)
    if mem:
        print(f"\nmemory: inputs {mem['input_mib']:.2f} MiB (uint8) + outputs {mem['output_mib']:.2f} MiB; "
              "peers convert the input to float32 (4x) inside their call")
    print(f"agreement: max |a - b| / max(1, |b|) against the engine's NumPy reference (fp32 rows over "
          f"{AGREEMENT:.0e} are not timed)")
    engines = {k: v for k, v in rows.items() if k.startswith("lenet_engine") and "error" not in v}
    if not engines:
        return
    untimed = _untimed(rows, res.get("missing", {}), lambda e: True, ("error",))
    print("\nratio engine / fastest fp32 peer (throughput: higher is better; latency, cold start, memory: "
          "lower is better)" + (f"; fp32 peers not timed: {', '.join(untimed)}" if untimed else "") + "\n")
    measures = [(f"N={n:,}", _throughput(n), False) for n in batches]
    measures += [(f"N={n:,} per CPU-second", lambda e, n=n: e.get("digits_per_cpu_second", {}).get(n), False)
                 for n in batches if n >= 1024]
    measures += [("batch-1 latency, forward", lambda e: e.get("latency_ms"), True),
                 ("batch-1 latency, predict_proba", lambda e: e.get("proba_latency_ms"), True),
                 ("cold start", lambda e: e.get("cold_start_s"), True),
                 ("memory growth", lambda e: (e.get("memory") or {}).get("rss_growth_mib"), True)]
    print("| measure | fastest fp32 peer | " + " | ".join(engines) + " |")
    print("| --- " * (len(engines) + 2) + "|")
    for label_, value, lower in measures:
        peer, best = _best_peer(rows, value, lower)
        if peer is None:
            continue
        cells = " | ".join(_num(value(e) / best if value(e) is not None else None, ".2f") + "x"
                           for e in engines.values())
        print(f"| {label_} | {peer} | {cells} |")


def print_targets(rows):
    print(f"\n### Targets ({CYTHON} unless stated; {TARGET_THREADS} threads; fp32 against the fp32 peers)\n")
    print("| target | arch | engine backend | engine | yardstick | its value | ratio | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['target']} | {r['arch']} | {r['runtime']} | {_num(r['engine'], ',.3g')} | {r['peer'] or '-'} "
              f"| {_num(r['peer_value'], ',.3g')} | {_num(r['ratio'], '.2f')} | {r['verdict']} |")
    reasons = {}  # why -> the rows it explains, each reason printed once
    for r in rows:
        if "why" in r:
            reasons.setdefault(r["why"], []).append(f"{r['key']} ({r['arch']}, {r['runtime']})")
    if reasons:
        print("\nWhy the targets not met are not:\n")
        for why, which in reasons.items():
            print(f"- {'; '.join(which)}: {why}")


def plot(arch_results, batches, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(arch_results), figsize=(6.2 * len(arch_results), 4.8), squeeze=False)
    for ax, (arch, res) in zip(axes[0], arch_results.items()):
        for name, e in res["runtimes"].items():
            rates = e.get("digits_per_second")
            if not rates:
                continue
            engine = name.startswith("lenet_engine")
            ax.plot(batches, [rates[n] for n in batches], marker="o", linewidth=2.4 if engine else 1.4,
                    linestyle="-" if engine else "--", label=e.get("label", name))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (digits per call)")
        ax.set_ylabel("digits per second")
        ax.set_title(f"LeNet-5 {arch}: inference throughput")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=TARGET_THREADS)
    parser.add_argument("--batches", default="1,64,1024,10000")
    parser.add_argument("--archs", default="classic,modern")
    parser.add_argument("--rounds", type=int, default=5,
                        help="turns each runtime takes per batch size (5: on a shared VM one slow round in three moved a median by 20%%)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per runtime (0: skip)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="also draw throughput against batch size into this PNG")
    parser.add_argument("--train", action="store_true", help="also time training epochs (needs MNIST)")
    parser.add_argument("--training-digits", type=int, default=6000,
                        help="MNIST training digits per timed pass, scaled to a 60,000-digit epoch")
    parser.add_argument("--int8", action="store_true",
                        help="also the int8 table: the engine's int8 against ONNX Runtime's and OpenVINO's "
                             "(quantize_static of the peer model; needs MNIST's training digits to calibrate)")
    parser.add_argument("--native-results", metavar="PATH",
                        help="the --json of a run, on this machine, of a build made with LENET_ENGINE_NATIVE=1: "
                             "its cython throughput is the yardstick of the portable-build target")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    machine = machine_info(args.threads)
    print_machine(machine)
    native = read_native_results(args.native_results, machine) if args.native_results else None
    test_set, no_test_set = load_test_set()
    if no_test_set:
        print(f"MNIST test set: {no_test_set}: accuracies not measured")
    arch_results, missing, int8_rows = {}, {}, []
    with tempfile.TemporaryDirectory() as workdir:
        for arch in args.archs.split(","):
            arch_missing = dict(missing)
            arch_missing.update(peers.prepare(arch, workdir))
            res = measure_inference(arch, args.threads, batches, workdir, args.rounds, arch_missing, test_set)
            timed = [n for n, e in res["runtimes"].items() if "error" not in e]
            for name, fresh in measure_fresh(arch, timed, args.threads, workdir, args.cold_runs).items():
                res["runtimes"][name].update(fresh)
            add_efficiency(arch, res, machine)
            res["missing"] = arch_missing
            res["load_average_after"] = os.getloadavg()
            arch_results[arch] = res
            print_report(arch, res, batches, machine)
            for name, why in arch_missing.items():
                print(f"{name}: not measured: {why}")
            if args.int8:
                calibration = le.datasets.load_mnist("train", download=False)[0][:int8_peers.CALIBRATION]
                int8, int8_missing = measure_int8(arch, args.threads, workdir, args.rounds, res, test_set,
                                                  calibration)
                res["int8"], res["int8_missing"] = int8, int8_missing
                print_int8(arch, int8, int8_missing)
                for row in int8_targets(arch, int8, int8_missing, res):
                    if row["verdict"].startswith("not met"):
                        row["why"] = INT8_WHY
                    int8_rows.append(row)
    training = training_rounds = training_missing = None
    if args.train:
        training, training_rounds, training_missing = training_seconds_per_epoch(
            args.threads, args.rounds, args.training_digits)
        print("\n### training: seconds per 60,000-digit epoch, modern, Adam, batch 128\n")
        for name, seconds in training.items():
            ratio = f" ({seconds / training['pytorch eager']:.2f}x PyTorch's)" if "pytorch eager" in training else ""
            print(f"{name:<22}{seconds:8.1f} s{ratio}")
        for name, why in training_missing.items():
            print(f"{name}: not measured: {why}")
    rows = targets(arch_results, training, machine, native, training_missing) + int8_rows
    print_targets(rows)
    machine["load_average_at_end"] = os.getloadavg()
    print(f"\nload average at the end: {machine['load_average_at_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine, "peer_settings": {**peers.SETTINGS, **int8_peers.SETTINGS}, "agreement_tolerance": AGREEMENT,
             "macs_per_digit": MACS_PER_DIGIT, "test_set": no_test_set or "MNIST test, 10,000 digits",
             "results": arch_results, "training_settings": peers.TRAINING_SETTINGS,
             "training_seconds_per_epoch": training, "training_rounds": training_rounds,
             "training_missing": training_missing, "native_results": args.native_results,
             "targets": rows}, indent=2))
    if args.plot:
        plot(arch_results, batches, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
