"""Training checkpoint files: the weights, the optimizer's state and where training stands, in one file.

A .safetensors file (written atomically, like weights) whose tensors are
"param/<name>" and "optimizer/<slot>/<name>", and whose metadata holds the
epoch reached, the history so far, the recipe (with fingerprints of the
training and validation data) and, as in weights files, a SHA-256 of it all,
so a damaged checkpoint is refused rather than resumed. The training loop
(lenet_engine.training) writes one after every epoch and resumes from it.
"""

import json

from lenet_engine._version import __version__
from lenet_engine.errors import CorruptWeightsError, ForeignWeightsError
from lenet_engine.io import json_records, safetensors_file, weights_file

FORMAT = "lenet_engine.checkpoint/2"
# Before checksums and the validation fingerprint; not resumable by this version.
OLD_FORMATS = ("lenet_engine.checkpoint/1",)


def save(path, state, optimizer_arrays, record):
    """Write a checkpoint; record is a JSON-able dict (epoch, history, recipe, ...)."""
    tensors = {f"param/{k}": v for k, v in state.items()}
    tensors.update({f"optimizer/{k}": v for k, v in optimizer_arrays.items()})
    metadata = {"format": FORMAT, "engine_version": __version__,
                "record": json_records.dumps(record, sort_keys=True)}
    metadata[weights_file.CHECKSUM_KEY] = weights_file.checksum(tensors, metadata)
    safetensors_file.save_file(tensors, path, metadata=metadata)


def load(path):
    """Read a checkpoint -> (state, optimizer arrays, record)."""
    tensors, meta = safetensors_file.load_file(path)
    if meta.get("format") in OLD_FORMATS:
        raise ForeignWeightsError(f"{path} is a checkpoint of an older lenet_engine (format {meta['format']!r}): "
                                  "resume it with that version, or train again without it")
    if meta.get("format") != FORMAT:
        raise ForeignWeightsError(f"{path} is not a lenet_engine checkpoint "
                                  f"(metadata format {meta.get('format')!r}, expected {FORMAT!r})")
    weights_file.verify_checksum(path, tensors, meta)
    try:
        record = json.loads(meta.get("record", ""))
    except json.JSONDecodeError as exc:
        raise CorruptWeightsError(f"{path}: the checkpoint record is not valid JSON ({exc})") from None
    epoch = record.get("epoch") if isinstance(record, dict) else None
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CorruptWeightsError(f"{path}: the checkpoint record lacks the epoch reached")
    state = {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    optimizer = {k[len("optimizer/"):]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    if len(state) + len(optimizer) != len(tensors):
        raise CorruptWeightsError(f"{path}: unexpected tensor names in a checkpoint")
    return state, optimizer, record

