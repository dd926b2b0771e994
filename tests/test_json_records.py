"""Every JSON record lenet_engine writes holds numpy values as the plain numbers and lists they are."""

import json

import numpy as np
import pytest

from lenet_engine import report
from lenet_engine.io import checkpoint_file, json_records, safetensors_file, weights_file
from lenet_engine.training import log

NUMPY_RECORD = {"seed": np.int64(3), "lr": np.float32(0.5), "mu": np.array([0.5, 0.02]), "ok": np.bool_(True)}
PLAIN_RECORD = {"seed": 3, "lr": 0.5, "mu": [0.5, 0.02], "ok": True}


def test_dumps_writes_numpy_values_as_plain_ones():
    assert json.loads(json_records.dumps(NUMPY_RECORD)) == PLAIN_RECORD


def test_dumps_names_what_it_cannot_write():
    with pytest.raises(TypeError, match="of type object"):
        json_records.dumps({"x": object()})
    assert json.loads(json_records.dumps({"x": {1, 2}}, fallback=str)) == {"x": "{1, 2}"}


def _stored_record(path):
    return json.loads(safetensors_file.load_file(path)[1]["record"])


def test_weights_checkpoints_and_logs_agree_on_numpy_values(tmp_path):
    state = {"w": np.zeros(2, np.float32)}
    weights_file.save(tmp_path / "w.safetensors", state, "classic", NUMPY_RECORD)
    checkpoint_file.save(tmp_path / "c.ckpt", state, {}, {**NUMPY_RECORD, "epoch": np.int64(1)})
    log.write_json(tmp_path / "log.json", NUMPY_RECORD)
    assert _stored_record(tmp_path / "w.safetensors") == PLAIN_RECORD
    assert checkpoint_file.load(tmp_path / "c.ckpt")[2] == {**PLAIN_RECORD, "epoch": 1}
    assert json.loads((tmp_path / "log.json").read_text()) == PLAIN_RECORD
    # The report keeps numbers as numbers too, and writes anything else as text rather than failing.
    assert report._json_safe({**NUMPY_RECORD, "path": tmp_path}) == {**PLAIN_RECORD, "path": str(tmp_path)}
