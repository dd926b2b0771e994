"""forward() on a host whose cores are busy: the cython (fp32, int8) and numba passes, 1 and 2
threads, beside `--busy` other processes that each spin one core.

    python benchmarks/busy_host.py --busy 2 --digits 200 --calls 30

Prints the median and 90th percentile of a call, in ms. Run it once with --busy 0 for the quiet
baseline (benchmarks/RESULTS.md, "Busy hosts").
"""

import argparse
import subprocess
import sys
import time

import numpy as np

import lenet_engine as le
from lenet_engine.backends import thread_limit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=2, help="processes spinning a core each")
    parser.add_argument("--digits", type=int, default=200, help="digits a call")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per pass and thread count")
    parser.add_argument("--arch", default="modern")
    args = parser.parse_args()
    digits = (np.random.default_rng(0).random((args.digits, 28, 28)) * 255).astype(np.uint8)
    models = {"cython fp32": le.load(args.arch, backend="cython"),
              "cython int8": le.load(args.arch, backend="cython", precision="int8"),
              "numba fp32": le.load(args.arch, backend="numba")}
    for model in models.values():
        model.forward(digits)  # compiled, bound and warm before the busy processes start
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        time.sleep(0.5)
        for name, model in models.items():
            for threads in (1, 2):
                with thread_limit(threads):
                    times = []
                    for _ in range(args.calls):
                        start = time.perf_counter()
                        model.forward(digits)
                        times.append((time.perf_counter() - start) * 1e3)
                print(f"{args.busy} busy, N={args.digits}, {name}, {threads} thread(s): "
                      f"median {np.median(times):.2f} ms, 90th percentile {np.percentile(times, 90):.2f} ms")
    finally:
        for process in busy:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
