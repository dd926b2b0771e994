"""Prints digits per second and the speed-up over the NumPy reference after a benchmark run."""


def pytest_terminal_summary(terminalreporter):
    session = getattr(terminalreporter.config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
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
