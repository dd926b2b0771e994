"""predict_files: score image, .npy and IDX files on Dask into a Parquet dataset, streaming.

Two passes over the files, both as Dask tasks (so on the cluster's workers, which
must see the files, and the output folder, under the same paths):
1. the headers: each file's kind and digit count, a batch of files per task;
2. the parts: consecutive ranges of digits, `chunk` digits per task at most (small
   files share a part, large ones are split; a gzipped IDX file is one stream, so one
   part). Each task reads its range a chunk at a time, scores it and appends the rows
   to its own Parquet file. No process ever holds more than a chunk of digits.

The parts are written to a staging folder beside `out`, which becomes `out` once
every part is there: a failed job leaves no partial dataset. A part's file is
written whole then renamed, so a task rerun after its worker died writes it once.
"""

import glob
import os
import shutil
import uuid
from pathlib import Path

import dask
import numpy as np

from lenet_engine._optional import import_optional
from lenet_engine.dask.tasks import check_model, labels_and_probabilities, model_key
from lenet_engine.digit_ranges import STREAMED, inspect, read_chunks
from lenet_engine.errors import InvalidInputError, LenetEngineError, MissingDependencyError
from lenet_engine.inputs import check_int

DEFAULT_CHUNK = 16384     # digits per task: 12 MB of uint8 digits, about 0.15 s on one core
INSPECT_BATCH = 256       # files whose headers one task reads
ON_ERROR = ("record", "raise")
CANCELLED_RETRIES = 2     # times the parts run again when a lost worker leaves a future cancelled
PART_GLOB = "part-*.parquet"


def predict_files(model, files, out, *, chunk=DEFAULT_CHUNK, on_error="record", invert=None, overwrite=False):
    """Score every digit of `files` and write a Parquet dataset (a folder of part files) to `out`.

    files: a path, a glob pattern ("scans/**/*.png") or a list of them; PNG/JPEG/BMP
      images of one digit, .npy arrays of (N, 28, 28) or (28, 28) digits, IDX files
      (raw or gzipped), recognised by content.
    Columns: file (str, as given or matched), index (int64, the digit's place in its
      file), label (int64, model.predict's), probability (float32, of that label),
      error (str, null for a scored digit).
    on_error: "record" (default): a file that cannot be read gives a row with label -1,
      probability NaN and the error in `error` (index: the first digit not scored; a
      file that breaks part way keeps the rows before the break), and the job goes on;
      "raise": the first such file fails the job with the engine's error, naming the file,
      and nothing is written. Either way no digit is silently left out.
    chunk: digits per task, and per read. invert: for images, as in read_digits.
    overwrite: replace `out` if it is a dataset this function wrote.
    Runs on the current Dask scheduler: a distributed Client when one is active (see
    connect), else Dask's local threads. Returns {"out", "files", "parts", "digits", "errors"}.
    """
    import_optional("pyarrow", "dask", "predict_files")  # on the client, before any task runs
    check_model(model)
    chunk = check_int(chunk, "chunk", 1)
    if on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    paths = expand(files)
    out = Path(out)
    _check_out(out, overwrite)
    batches = [paths[i:i + INSPECT_BATCH] for i in range(0, len(paths), INSPECT_BATCH)]
    found = dask.compute(*[dask.delayed(_inspect_batch)(batch, on_error) for batch in batches])
    parts = plan_parts([entry for batch in found for entry in batch], chunk)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        model_node = model_key(model)
        write = dask.delayed(_write_part, pure=False)
        for attempt in range(CANCELLED_RETRIES + 1):
            try:
                counts = dask.compute(*[write(model_node, pieces, str(staging / f"part-{i:06d}.parquet"), chunk,
                                              on_error, invert) for i, pieces in enumerate(parts)])
                break
            except _cancelled_errors():
                # A worker that dies while the client gathers its part's result can leave that
                # future cancelled ("Couldn't gather keys ... rescheduling"). Each part is written
                # atomically, the same bytes every time: the parts run again, under new keys.
                if attempt == CANCELLED_RETRIES:
                    raise
        for leftover in staging.glob(".*.tmp"):  # from the workers that died writing
            leftover.unlink()
        if out.exists():  # overwrite=True, checked above to be a dataset of ours
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"out": str(out), "files": len(paths), "parts": len(parts),
            "digits": sum(c[0] for c in counts), "errors": sum(c[1] for c in counts)}


def _cancelled_errors():
    """The exception a distributed Client raises for a future lost with its worker (none without it)."""
    try:
        from distributed.client import FutureCancelledError
    except ImportError:
        return ()
    return (FutureCancelledError,)


def expand(files):
    """The list of paths `files` names: glob patterns expanded (sorted), other paths kept as given."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = []
    for item in files:
        text = os.fspath(item)
        if any(c in text for c in "*?["):
            matches = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not matches:
                raise FileNotFoundError(f"no file matches {text!r}")
            paths.extend(matches)
        else:
            paths.append(text)
    if not paths:
        raise InvalidInputError("no files to score")
    return paths


def plan_parts(entries, chunk):
    """Pieces (path, kind, start, stop, error) grouped into parts of at most `chunk` digits, in file order.

    entries: (path, kind, count, error) per file; an error piece (a file whose header could
    not be read) is one row. A gzipped IDX file is a part of its own, whatever its size.
    """
    parts, current, size = [], [], 0

    def close():
        nonlocal current, size
        if current:
            parts.append(current)
        current, size = [], 0

    for path, kind, count, error in entries:
        if error is not None:
            current.append((path, kind, 0, 0, error))
            continue
        if kind == STREAMED:
            close()
            parts.append([(path, kind, 0, count, None)])
            continue
        start = 0
        while start < count:
            take = min(count - start, chunk - size)
            current.append((path, kind, start, start + take, None))
            size += take
            start += take
            if size == chunk:
                close()
    close()
    return parts or [[]]  # an empty part still holds the schema, so the dataset reads as empty


def _check_out(out, overwrite):
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out {out}: the folder {out.parent} does not exist")
    if not out.exists():
        return
    if not overwrite:
        raise FileExistsError(f"out {out} exists: remove it, or overwrite it (overwrite=True, --overwrite)")
    ours = out.is_dir() and all(p.match(PART_GLOB) for p in out.iterdir())
    if not ours:
        raise FileExistsError(f"out {out} exists and is not a dataset predict_files wrote: not overwriting it")


def _bad_file(exc):
    """Whether exc says a file cannot be scored (as opposed to a missing package, a bug, no memory)."""
    return isinstance(exc, (LenetEngineError, OSError)) and not isinstance(exc, MissingDependencyError)


def _naming(path, exc):
    """exc again, with its message naming the file."""
    message = str(exc)
    if os.fspath(path) not in message:
        message = f"{os.fspath(path)}: {message}"
    return type(exc)(message)


def _describe(exc):
    return f"{type(exc).__name__}: {exc}"


def _inspect_batch(paths, on_error):
    """(path, kind, digit count, error message or None) per file."""
    entries = []
    for path in paths:
        try:
            kind, count = inspect(path)
        except Exception as exc:
            if not _bad_file(exc):
                raise
            if on_error == "raise":
                raise _naming(path, exc) from exc
            entries.append((path, None, 0, _describe(_naming(path, exc))))
        else:
            entries.append((path, kind, count, None))
    return entries


def _write_part(model, pieces, path, chunk, on_error, invert):
    """Score a part's pieces into the Parquet file `path`; returns (digits scored, error rows)."""
    import pyarrow.parquet as pq

    scored = errors = 0
    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    with pq.ParquetWriter(partial, _schema()) as writer:
        for piece in pieces:
            for table, n_scored, n_errors in _score_piece(model, piece, chunk, on_error, invert):
                writer.write_table(table)
                scored += n_scored
                errors += n_errors
    os.replace(partial, path)
    return scored, errors


def _score_piece(model, piece, chunk, on_error, invert):
    """Yield (rows as an Arrow table, digits scored, error rows) for one piece, a chunk at a time."""
    path, kind, start, stop, error = piece
    if error is not None:
        yield _error_row(path, start, error), 0, 1
        return
    next_digit = start
    try:
        for first, digits in read_chunks(path, kind, start, stop, chunk, invert):
            next_digit = first
            labels, probs = labels_and_probabilities(model, digits)
            yield _rows(path, first, labels, probs[np.arange(len(labels)), labels]), len(labels), 0
            next_digit = first + len(labels)
    except Exception as exc:
        if not _bad_file(exc):
            raise
        if on_error == "raise":
            raise _naming(path, exc) from exc
        yield _error_row(path, next_digit, _describe(_naming(path, exc))), 0, 1


def _schema():
    import pyarrow as pa

    return pa.schema([("file", pa.string()), ("index", pa.int64()), ("label", pa.int64()),
                      ("probability", pa.float32()), ("error", pa.string())])


def _rows(path, first, labels, probability):
    import pyarrow as pa

    n = len(labels)
    return pa.table({"file": pa.array([os.fspath(path)] * n, pa.string()),
                     "index": pa.array(np.arange(first, first + n, dtype=np.int64)),
                     "label": pa.array(labels), "probability": pa.array(probability.astype(np.float32)),
                     "error": pa.nulls(n, pa.string())}, schema=_schema())


def _error_row(path, index, message):
    import pyarrow as pa

    return pa.table({"file": [os.fspath(path)], "index": [index], "label": [-1],
                     "probability": pa.array([np.nan], pa.float32()), "error": [message]}, schema=_schema())
