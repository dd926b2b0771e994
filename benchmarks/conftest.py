"""Terminal summary of a `pytest benchmarks/` run: one line per group, the backends side by side.

Each group times one call (a kernel at one site, a fused forward pass, a
training step, a prediction) on every backend; the summary prints each
backend's median, its speed-up over the NumPy reference and cython's over
numba, all measured in the same run. Groups that count digits also print
digits per second. Cold starts are listed on their own.
"""

BACKENDS = ("numpy", "numba", "cython")


def _duration(seconds):
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def pytest_terminal_summary(terminalreporter):
    session = getattr(terminalreporter.config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    done = [b for b in session.benchmarks if b.stats is not None]
    starts = {b.extra_info["backend"]: b.stats.median for b in done
              if b.group and b.group.startswith("cold start")}
    if starts:
        terminalreporter.section("cold start (median), new process to first prediction")
        for backend, seconds in sorted(starts.items(), key=lambda kv: kv[1]):
            terminalreporter.write_line(f"{backend:<8} {seconds * 1e3:8.0f} ms")

    groups = {}
    for bench in done:
        if bench.group and not bench.group.startswith("cold start"):
            groups.setdefault(bench.group, {})[bench.extra_info["backend"]] = bench
    if not groups:
        return
    terminalreporter.section("median per call; (x) = speed-up over numpy; last column: cython over numba")
    width = max(len(g) for g in groups) + 2
    terminalreporter.write_line(f"{'':<{width}}" + "".join(f"{b:>22}" for b in BACKENDS) + f"{'cy/nb':>8}")
    for group in sorted(groups):
        runs = groups[group]
        base = runs["numpy"].stats.median if "numpy" in runs else None
        cells = []
        for backend in BACKENDS:
            if backend not in runs:
                cells.append(f"{'-':>22}")
                continue
            median = runs[backend].stats.median
            ratio = f" ({base / median:.1f}x)" if base and backend != "numpy" else ""
            cells.append(f"{_duration(median) + ratio:>22}")
        vs = ""
        if "numba" in runs and "cython" in runs:
            vs = f"{runs['numba'].stats.median / runs['cython'].stats.median:7.2f}x"
        terminalreporter.write_line(f"{group:<{width}}" + "".join(cells) + f"{vs:>8}")
    rates = {g: runs for g, runs in groups.items()
             if any("digits" in b.extra_info for b in runs.values())}
    if rates:
        terminalreporter.section("digits per second (median)")
        for group in sorted(rates):
            line = "".join(
                f"{b:>8} {rates[group][b].extra_info['digits'] / rates[group][b].stats.median:>10,.0f}"
                for b in BACKENDS if b in rates[group])
            terminalreporter.write_line(f"{group:<{width}}{line}")
