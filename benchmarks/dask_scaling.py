"""Scoring digits on a LocalCluster of 2 single-threaded worker processes, against one process.

    python benchmarks/dask_scaling.py [--digits 1000000] [--chunk 16384]

Prints (and writes to benchmarks/dask_scaling.json) the rates in digits/s of: one
process with 1 thread, with 2 threads, one single-threaded worker, and 2 workers;
the time per chunk (from the task stream), the scheduler's share of the 2-worker
wall time (1 - busy worker time / (wall time x workers)), and each worker's peak RSS.
Run it on a quiet machine with at least 2 free cores.
"""

import argparse
import json
import time
from pathlib import Path

import dask.array as da
import distributed
import numpy as np

import lenet_engine as le
from lenet_engine import dask as le_dask


def _peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def _in_process(model, digits, threads):
    le.set_num_threads(threads)
    model.predict(digits[:1000])
    start = time.perf_counter()
    model.predict(digits)
    return len(digits) / (time.perf_counter() - start)


def _on_cluster(model, digits, workers, chunk):
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        x = da.from_array(digits, chunks=(chunk, 28, 28))
        x = client.persist(x)  # the digits on the workers first: what is timed is the scoring
        distributed.wait(x)
        le_dask.predict(model, x[:chunk]).compute()  # warm-up: imports, first kernel call
        client.get_task_stream(start=time.time())
        with distributed.get_task_stream(client) as stream:
            start = time.perf_counter()
            le_dask.predict(model, x).compute()
            wall = time.perf_counter() - start
        compute = [sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
                   for t in stream.data if str(t["key"]).startswith("('score_block")]
        return {"digits_per_s": len(digits) / wall, "wall_s": wall, "chunks": len(compute),
                "seconds_per_chunk": float(np.median(compute)),
                "scheduler_share": 1 - sum(compute) / (wall * workers),
                "peak_rss_mib": [v / 2**20 for v in client.run(_peak_rss).values()]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=16384)  # predict_files's and the CLI's default
    args = parser.parse_args()
    digits = np.random.default_rng(0).integers(0, 256, size=(args.digits, 28, 28), dtype=np.uint8)
    model = le.load("modern")
    result = {"digits": args.digits, "chunk": args.chunk, "backend": model.backend,
              "in_process_1_thread": _in_process(model, digits, 1),
              "in_process_2_threads": _in_process(model, digits, 2)}
    for workers in (1, 2):
        result[f"workers_{workers}"] = _on_cluster(model, digits, workers, args.chunk)
    result["speedup_2_workers_over_1"] = (result["workers_2"]["digits_per_s"]
                                          / result["workers_1"]["digits_per_s"])
    result["2_workers_over_2_threads"] = result["workers_2"]["digits_per_s"] / result["in_process_2_threads"]
    print(json.dumps(result, indent=2))
    Path(__file__).with_name("dask_scaling.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
