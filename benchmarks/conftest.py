"""Prints digits per second (with the speed-up over the NumPy reference) and cold-start times after a benchmark run."""


def pytest_terminal_summary(terminalreporter):
    session = getattr(terminalreporter.config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    starts = {b.extra_info["backend"]: b.stats.median for b in session.benchmarks
              if b.group and b.group.startswith("cold start") and b.stats is not None}
    if starts:
        terminalreporter.section("cold start (median), new process to first prediction")
        for backend, seconds in sorted(starts.items(), key=lambda kv: kv[1]):
            terminalreporter.write_line(f"{backend:<8} {seconds * 1e3:8.0f} ms")
    rows = {}
    for bench in session.benchmarks:
        info = bench.extra_info
        if "digits" in info and bench.stats is not None:
            rows[(bench.group, info["backend"])] = info["digits"] / bench.stats.median
    if not rows:
        return
    terminalreporter.section("throughput (median), digits per second")
    for group in sorted({g for g, _ in rows}):
        base = rows.get((group, "numpy"))
        for (g, backend), rate in sorted(rows.items()):
            if g != group:
                continue
            ratio = f"  {rate / base:6.1f}x numpy" if base else ""
            terminalreporter.write_line(f"{group:<28} {backend:<8} {rate:12,.0f}{ratio}")
