"""The `lenet-engine` command: demo, eval, train, quantize, predict, visualize, serve, info.

Each subcommand is a small function over the Python API; main() parses the
arguments and turns the engine's own errors into one-line messages.
"""

import argparse
import json
import os
import shlex
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

import lenet_engine as le
from lenet_engine._optional import import_optional
from lenet_engine.architectures import ARCHITECTURES
from lenet_engine.backends import THREADS_ENV, get_backend
from lenet_engine.digit_files import read_digits
from lenet_engine.distortions import as_distortions
from lenet_engine.errors import LenetEngineError
from lenet_engine.io.weights_file import SHIPPED
from lenet_engine.model import PRECISIONS
from lenet_engine.training import log as training_log
from lenet_engine.training.optimizers import CURVATURE_DIGITS, DEFAULT_MU, OPTIMIZERS

SAMPLE_FILE = "sample_digits.npz"
CALIBRATION_DIGITS = 1000
SHADES = " .:-=+*#%@"


def load_samples():
    """The shipped sample of MNIST test digits: (images uint8 (N, 28, 28), labels uint8 (N,))."""
    path = resources.files("lenet_engine").joinpath("data", SAMPLE_FILE)
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as data:
        return data["images"], data["labels"]


def digit_as_text(image):
    """28x28 uint8 -> 14 lines of text, two pixel rows per line, darker shade for more ink."""
    rows = []
    for r in range(0, 28, 2):
        pair = image[r:r + 2].astype(np.int32).max(axis=0)
        rows.append("".join(SHADES[v * (len(SHADES) - 1) // 255] for v in pair))
    return rows


def _timed_predict(model, images, repeats=3):
    """Labels and the best of `repeats` wall times (after one warm-up call)."""
    model.predict(images[:1])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        labels = model.predict(images)
        best = min(best, time.perf_counter() - start)
    return labels, best


def cmd_demo(args):
    images, labels = load_samples()
    model = le.load(args.model, backend=args.backend, precision=args.precision)
    # The best of 30 calls (about 30 ms): the rate of a running process, past the first tens of
    # milliseconds after NumPy's import, when its BLAS thread may still spin on a core the
    # kernels' helper threads then wait for (README, "Backends and threads").
    predicted, seconds = _timed_predict(model, images, repeats=30)
    shown = min(args.show, len(images))
    print(f"lenet_engine {le.__version__}: model {model.arch!r} ({model.precision}) on backend {model.backend!r}, "
          f"{le.get_num_threads()} threads\n")
    for start in range(0, shown, 4):
        group = range(start, min(start + 4, shown))
        blocks = [digit_as_text(images[i]) for i in group]
        for line in zip(*blocks):
            print("   ".join(line))
        print("   ".join(f"{f'true {labels[i]}  predicted {predicted[i]}':<28}" for i in group))
        print()
    batch1 = []
    for i in range(min(50, len(images))):
        start = time.perf_counter()
        model.predict(images[i])
        batch1.append(time.perf_counter() - start)
    accuracy = float(np.mean(predicted == labels))
    print(f"accuracy on {len(images)} shipped test digits: {accuracy:.2%}")
    print(f"latency, one digit at a time (median): {np.median(batch1) * 1e3:.3f} ms")
    print(f"throughput, batch of {len(images)}: {len(images) / seconds:,.0f} digits/s")
    return 0


def cmd_eval(args):
    if args.report is not None:  # found out before the evaluation, not after
        if not args.report:
            raise ValueError("--report names the folder to write the report into")
        if os.path.exists(args.report) and not os.path.isdir(args.report):
            raise ValueError(f"--report {args.report} is a file: name a folder")
        import_optional("matplotlib.figure", "plot", "eval --report's pictures")
    images, labels = le.datasets.load_mnist("test", root=args.data_root, download=not args.no_download)
    model = le.load(args.model, backend=args.backend, precision=args.precision)
    predicted, seconds = _timed_predict(model, images, repeats=1)
    accuracy = float(np.mean(predicted == labels))
    result = {"model": str(args.model), "arch": model.arch, "precision": model.precision, "backend": model.backend,
              "threads": le.get_num_threads(), "digits": len(images), "accuracy": accuracy,
              "errors": int(np.sum(predicted != labels)), "digits_per_second": len(images) / seconds}
    if args.report is not None:
        result["report"] = _write_eval_report(args.report, model, images, labels, result)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{model.arch} ({args.model}, {model.precision}) on backend {model.backend}: accuracy {accuracy:.2%} "
              f"on the {len(images):,} MNIST test digits ({result['errors']} errors), "
              f"{result['digits_per_second']:,.0f} digits/s")
        if args.report:
            print(f"report written to {args.report}: {', '.join(result['report'])}")
    return 0


def _write_eval_report(folder, model, images, labels, result):
    """eval --report: the report files in `folder`; returns their names."""
    from lenet_engine import report

    report.write_report(folder, model, images, labels, extra={"model_name": result["model"]},
                        evaluation={key: result[key] for key in ("threads", "digits_per_second")})
    return [report.CONFUSION_FILE, report.GALLERY_FILE, report.SUMMARY_FILE]


def cmd_train(args):
    if args.resume and not args.checkpoint:
        raise ValueError("--resume goes on from --checkpoint PATH: give both")
    # Found out now, not after an hour of training whose weights would then be lost.
    _check_writable(("--out", args.out), ("--log", args.log), ("--curves", args.curves),
                    ("--checkpoint", args.checkpoint))
    if args.curves:
        training_log.require_plotting(args.curves)
    x_train, y_train = le.datasets.load_mnist("train", root=args.data_root, download=not args.no_download)
    x_test, y_test = le.datasets.load_mnist("test", root=args.data_root, download=not args.no_download)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    model = le.LeNet5(args.arch, seed=args.seed, backend=args.backend,
                      trainable_prototypes=args.trainable_prototypes)
    started = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
              optimizer=args.optimizer, momentum=args.momentum, mu=args.mu, augment=args.augment,
              seed=args.seed, validation_data=(x_test, y_test), verbose=0 if args.quiet else 1,
              map_j=args.map_j, checkpoint=args.checkpoint, resume=args.resume,
              curvature_digits=args.curvature_digits)
    seconds = time.perf_counter() - started
    accuracy = model.score(x_test, y_test)
    model.metadata.update({
        "command": "lenet-engine " + shlex.join(args.argv),
        "train_seconds": round(seconds, 1),
        "threads": le.get_num_threads(),
        "test_accuracy": accuracy,
        "test_digits": len(x_test),
    })
    model.save(args.out)
    if args.log:
        training_log.write_json(args.log, model.metadata)
    if args.curves:
        training_log.plot_curves(args.curves, model.metadata)
    print(f"{args.arch}: test accuracy {accuracy:.2%} (error {1 - accuracy:.2%}) after {args.epochs} "
          f"epochs ({seconds:.0f} s); saved to {args.out}")
    return 0


def _check_writable(*options):
    """Refuse output paths whose folder is missing or read-only (each given as (option, path or None))."""
    for option, path in options:
        if path is None:
            continue
        folder = Path(path).absolute().parent
        if Path(path).is_dir():
            raise ValueError(f"{option} {path} is a folder: name the file to write")
        if not folder.is_dir():
            raise ValueError(f"{option} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {path}: cannot write in {folder}")


def cmd_predict(args):
    if args.out or args.scheduler:
        from lenet_engine.dask.command import predict_to_parquet

        return predict_to_parquet(args)
    if args.show_steps or args.number:
        from lenet_engine.photos import command as photo_command

        if args.show_steps:
            photo_command.write_steps(args)
        if args.number:
            return photo_command.predict_numbers(args)
    model = le.load(args.model, backend=args.backend, precision=args.precision)
    rows = []
    for name in args.files:
        digits = read_digits(name, invert=args.invert)
        try:
            probs = model.predict_proba(digits)
        except le.InvalidInputError as exc:
            raise le.InvalidInputError(f"{name}: {exc}") from None
        for i, p in enumerate(probs):
            rows.append({"file": name, "index": i, "label": int(p.argmax()),
                         "probability": float(p.max())})
    if args.json:
        print(json.dumps(rows))
    else:
        counts = {}
        for r in rows:
            counts[r["file"]] = counts.get(r["file"], 0) + 1
        for r in rows:
            where = r["file"] if counts[r["file"]] == 1 else f"{r['file']}[{r['index']}]"
            print(f"{where}\t{r['label']}\t{r['probability']:.4f}")
    return 0


def cmd_quantize(args):
    _check_writable(("--out", args.out))
    model = le.load(args.model, backend=args.backend, precision="fp32")
    x_train, _ = le.datasets.load_mnist("train", root=args.data_root, download=not args.no_download)
    x_test, y_test = le.datasets.load_mnist("test", root=args.data_root, download=not args.no_download)
    quantized = model.quantize(x_train[:args.calibration])
    float_labels = model.predict(x_test)
    labels = quantized.predict(x_test)
    accuracy = float(np.mean(labels == y_test))
    quantized.metadata.update({
        "command": "lenet-engine " + shlex.join(args.argv),
        "calibration": f"the first {min(args.calibration, len(x_train))} MNIST training digits",
        "test_accuracy": accuracy,
        "fp32_test_accuracy": float(np.mean(float_labels == y_test)),
        "labels_as_fp32": float(np.mean(labels == float_labels)),
        "test_digits": len(x_test),
    })
    quantized.save(args.out)
    meta = quantized.metadata
    print(f"{model.arch} ({args.model}) int8: test accuracy {accuracy:.2%} (fp32 "
          f"{meta['fp32_test_accuracy']:.2%}), labels as fp32's on {meta['labels_as_fp32']:.2%} of the "
          f"test digits; saved to {args.out}")
    return 0


def cmd_visualize(args):
    from lenet_engine.visualize import save_feature_maps

    model = le.load(args.model, backend=args.backend, precision=args.precision)
    digits = read_digits(args.file, invert=args.invert)
    if digits.ndim < 2:
        raise le.InvalidInputError(f"{args.file} holds an array of shape {digits.shape}, not digits")
    if digits.ndim == 2:
        digits = digits[None]
    if not len(digits):
        raise le.InvalidInputError(f"{args.file} holds no digits")
    if not 0 <= args.index < len(digits):
        raise le.InvalidInputError(f"{args.file} holds {len(digits)} digit(s): --index must be 0..{len(digits) - 1}")
    digit = np.asarray(digits[args.index])
    label = int(model.predict(digit)[0])
    name = args.file if len(digits) == 1 else f"{args.file}[{args.index}]"
    save_feature_maps(model, digit, args.out, source=Path(args.file).name + name[len(args.file):])
    print(f"{name}: predicted {label}; feature maps written to {args.out}")
    return 0


def cmd_serve(args):
    from lenet_engine import serve  # raises MissingDependencyError naming [serve] when it is not installed
    from lenet_engine.serve.models import load_models

    models = load_models(args.model or list(SHIPPED), backend=args.backend, precision=args.precision)
    print(f"lenet-engine serve: {', '.join(models)} on http://{args.host}:{args.port}/ "
          f"(the draw-a-digit page; the Open Inference Protocol under /v2), "
          f"batches of up to {args.max_batch} within {args.batch_window_ms:g} ms", flush=True)
    serve.run(models, host=args.host, port=args.port, max_batch=args.max_batch,
              batch_window=args.batch_window_ms / 1000, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
              drain_timeout=args.drain_timeout, access_log=args.access_log,
              pass_threads=getattr(args, "threads", None))
    return 0


def cmd_info(args):
    about = le.info()
    if args.json:
        print(json.dumps(about, indent=2))
        return 0
    print(f"lenet_engine {about['version']}")
    print(f"python {about['python']}, numpy {about['numpy']}")
    available = about["backends"]
    print(f"backends available: {', '.join(available)} (auto = {available[0]})")
    print(f"threads: {about['threads']} (set with ${THREADS_ENV} or lenet_engine.set_num_threads)")
    if about["isa"] is not None:
        print(f"cython kernel level: {about['isa']} (this CPU runs {', '.join(about['isa_available'])}; "
              f"x86-64 level {about['cpu_level']}; force one with $LENET_ENGINE_ISA)")
    if about["int8"] is not None:
        print(f"int8 sums (cython): {about['int8']}")
    for name in available:
        print(f"  {name}: {_backend_threads(name)}; build {about['builds'][name]}")
    for name in SHIPPED:
        try:
            meta = le.load(name, backend="numpy").metadata
            print(f"shipped model {name}: test accuracy {meta.get('test_accuracy', float('nan')):.2%}")
        except LenetEngineError as exc:
            print(f"shipped model {name}: unavailable ({exc})")
    return 0


def _backend_threads(name):
    """How backend `name` runs its kernels, in a few words."""
    kernels = get_backend(name)
    if name == "numpy":
        return "the calling thread (NumPy's own BLAS threads for matrix products)"
    if name == "cython":
        if not kernels.OPENMP:
            return "built without OpenMP: single-threaded"
        return (f"up to {kernels.MAX_THREADS} threads: the fused passes' own (pthreads), the layer "
                f"kernels' OpenMP")
    import numba

    return (f"Numba thread pool of {kernels.MAX_THREADS}, threading layer "
            f"{'/'.join(numba.config.THREADING_LAYER_PRIORITY)} (first that loads)")


def _numbers(text):
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}")
    return rates[0] if len(rates) == 1 else rates


def _distortions(text):
    """--augment's value, "k=v,..." -> a Distortions ("" gives the defaults)."""
    fields = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        try:
            fields[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected key=number pairs, got {item!r}") from None
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=number pairs, got {item!r}")
    try:
        return as_distortions(fields)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text, minimum=0):
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
    return value


def _positive_count(text):
    return _count(text, minimum=1)


def _port(text):
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return value


def _non_negative(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="lenet-engine", description="LeNet-5 on the CPU.")
    parser.add_argument("--threads", type=int, help="threads for the compiled kernels")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p):
        p.add_argument("--model", default="classic", help="classic, modern or a .safetensors path")
        p.add_argument("--backend", default="auto", help="auto, numpy, numba or cython")
        precision_arg(p)

    def precision_arg(p):
        p.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="fp32, or int8: a shipped model's int8 weights (default: what the file holds)")

    def data_args(p):
        p.add_argument("--data-root", help="folder holding the MNIST IDX files "
                       "(default: $LENET_ENGINE_DATA/mnist, else a user cache folder)")
        p.add_argument("--no-download", action="store_true", help="never download MNIST")

    p = sub.add_parser("demo", help="classify the shipped sample digits")
    model_args(p)
    p.add_argument("--show", type=_count, default=8, help="digits to draw as text")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="accuracy and throughput on the MNIST test set")
    model_args(p)
    data_args(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--report", metavar="DIR", help="also write a confusion matrix and a gallery of the "
                   "misclassified digits (PNG, needs matplotlib) and a JSON summary into DIR")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train on MNIST and save the weights")
    p.add_argument("--arch", choices=ARCHITECTURES, required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="adam, sgd (with momentum) or sdlm (the paper's second-order method)")
    p.add_argument("--lr", type=_numbers, default=None,
                   help="learning rate, or comma-separated rates per epoch (the last repeats); "
                   "for sdlm the per-digit eta (default: the paper's schedule)")
    p.add_argument("--momentum", type=float, default=None, help="for sgd, default 0.9")
    p.add_argument("--mu", type=_numbers, default=None,
                   help=f"for sdlm: step = eta / (mu + h), default {DEFAULT_MU}; "
                   "a number or comma-separated values per epoch")
    p.add_argument("--curvature-digits", type=_positive_count, default=None,
                   help=f"for sdlm: training digits h is re-estimated on before each epoch, default "
                   f"{CURVATURE_DIGITS} (the paper's)")
    p.add_argument("--augment", nargs="?", const="", default=None, type=_distortions, metavar="K=V,...",
                   help="distort every training digit at random; optionally override Distortions "
                   "fields, e.g. --augment shear=0.3,elastic_alpha=8")
    p.add_argument("--trainable-prototypes", action="store_true",
                   help="classic: train the RBF prototypes too (they start from the bitmaps)")
    p.add_argument("--map-j", type=float, default=None, help="the constant j of classic's MAP loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=_count, default=0, help="train on the first N digits only (0: all)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="where to write the .safetensors weights")
    p.add_argument("--checkpoint", help="write a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="go on from --checkpoint if it exists")
    p.add_argument("--log", help="write the training record and per-epoch history as JSON here")
    p.add_argument("--curves", help="plot the training curves to this PNG (needs matplotlib)")
    data_args(p)
    p.set_defaults(func=cmd_train)

    def invert_arg(p):
        p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                       help="images: take dark pixels as ink (--invert) or light ones (--no-invert); "
                       "default: decided from the image's border")

    p = sub.add_parser("predict", help="classify digits in image, .npy or IDX files")
    model_args(p)
    p.add_argument("files", nargs="+", help="PNG/JPEG/BMP images of one digit (any size; needs Pillow), "
                   ".npy arrays of (28, 28) or (N, 28, 28) digits, IDX files (raw or gzipped)")
    invert_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON list of {file, index, label, probability}")
    p.add_argument("--number", action="store_true", help="each image is a row of digits: print the number "
                   "read (a ? for each unsure digit; exit status 1 if any); with --json, per digit its "
                   "label, probabilities and box")
    p.add_argument("--unsure-below", type=float, default=0.9, metavar="P",
                   help="with --number: a digit whose top probability is under P is unsure (default 0.9)")
    p.add_argument("--show-steps", metavar="DIR", help="also draw each preparation stage of every image "
                   "into DIR/<name>-steps.png (needs matplotlib)")
    p.add_argument("--out", metavar="PATH", help="write a Parquet dataset of (file, index, label, probability, "
                   "error) to PATH instead, scored with Dask (needs the [dask] extra); exit status 1 if a "
                   "file could not be read (its error is a row)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="with --out: a Dask scheduler's address "
                   "(tcp://host:8786), or local:N for N local worker processes (default: threads here)")
    p.add_argument("--chunk", type=_positive_count, help="with --out: digits per task (default 16384)")
    p.add_argument("--on-error", choices=("record", "raise"), default="record",
                   help="with --out: a bad file is a row with its error (record) or fails the job (raise)")
    p.add_argument("--overwrite", action="store_true", help="with --out: replace a dataset written before")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("visualize", help="draw a digit's feature maps, F6 code and outputs (needs matplotlib)")
    model_args(p)
    p.add_argument("file", help="an image, .npy or IDX file, as for predict")
    p.add_argument("-o", "--out", required=True, help="the picture to write (PNG)")
    p.add_argument("--index", type=_count, default=0, help="which digit of a file holding several")
    invert_arg(p)
    p.set_defaults(func=cmd_visualize)

    p = sub.add_parser("serve", help="serve models over HTTP (Open Inference Protocol v2) with a "
                       "draw-a-digit page (needs the [serve] extra)")
    p.add_argument("--model", action="append", metavar="NAME_OR_PATH",
                   help="a shipped model, a .safetensors path (served under its file name) or NAME=PATH; "
                   "repeat to serve several (default: every shipped model)")
    p.add_argument("--backend", default="auto", help="auto, numpy, numba or cython")
    precision_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=_port, default=8000)
    # SUPPRESS keeps `lenet-engine --threads N serve` working: main() applies args.threads either way.
    p.add_argument("--threads", type=_positive_count, default=argparse.SUPPRESS,
                   help="kernel threads per forward pass (default: the cores but one, at least 1: the event "
                   "loop keeps a core)")
    p.add_argument("--max-batch", type=_positive_count, default=64,
                   help="digits per dynamic batch (1: no batching)")
    p.add_argument("--batch-window-ms", type=_non_negative, default=1.0,
                   help="how long a small request waits for others to batch with")
    p.add_argument("--max-body-mb", type=_non_negative, default=4.0, help="larger request bodies answer 413")
    p.add_argument("--drain-timeout", type=_count, default=30,
                   help="seconds SIGTERM waits for the requests in flight")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("quantize", help="int8 weights of a model, calibrated on MNIST training digits")
    p.add_argument("--model", default="classic", help="classic, modern or a float .safetensors path")
    p.add_argument("--backend", default="auto", help="auto, numpy, numba or cython")
    p.add_argument("--out", required=True, help="where to write the int8 .safetensors weights")
    p.add_argument("--calibration", type=_positive_count, default=CALIBRATION_DIGITS,
                   help=f"calibrate on the first N training digits (default {CALIBRATION_DIGITS})")
    data_args(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("info", help="version, backends, threads and the kernel level in use")
    p.add_argument("--json", action="store_true", help="print it as JSON (the dict le.info() returns)")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.threads is not None:
            le.set_num_threads(args.threads)
        return args.func(args)
    except KeyboardInterrupt:
        hint = ""
        if getattr(args, "checkpoint", None):
            hint = f"; {args.checkpoint} holds the last finished epoch, and --resume goes on from it"
        print(f"lenet-engine {args.command}: interrupted{hint}", file=sys.stderr)
        return 130  # 128 + SIGINT (2)
    except BrokenPipeError:
        # The reader went away (`lenet-engine predict ... | head`): stop quietly, as a command
        # killed by SIGPIPE would, with its status; stdout goes nowhere so the exit's flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE (13)
    except (LenetEngineError, ValueError, OSError, ArithmeticError) as exc:
        print(f"lenet-engine {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
