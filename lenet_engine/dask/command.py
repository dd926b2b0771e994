"""`lenet-engine predict --out results.parquet [--scheduler ADDRESS]`: predict_files from the command line."""

import contextlib
import sys
import time

import lenet_engine as le


def predict_to_parquet(args):
    """Score args.files into the dataset args.out; exit status 0, or 1 when some file gave an error row."""
    if not args.out:
        raise ValueError("--scheduler scores into a Parquet dataset: give --out PATH")
    if args.json:
        raise ValueError("--json prints the rows; with --out they go to the Parquet dataset")
    from lenet_engine.dask import connect, predict_files
    from lenet_engine.dask.files import DEFAULT_CHUNK

    model = le.load(args.model, backend=args.backend, precision=args.precision)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.scheduler:
            stack.enter_context(connect(args.scheduler))
        summary = predict_files(model, args.files, args.out, chunk=args.chunk or DEFAULT_CHUNK, on_error=args.on_error,
                                invert=args.invert, overwrite=args.overwrite)
    seconds = time.perf_counter() - started
    print(f"{summary['digits']:,} digits from {summary['files']:,} files scored in {seconds:.1f} s; "
          f"written to {summary['out']} ({summary['parts']} parts)")
    if summary["errors"]:
        print(f"lenet-engine predict: {summary['errors']} file(s) or ranges could not be scored: "
              f"see the rows whose `error` is set", file=sys.stderr)
        return 1
    return 0
