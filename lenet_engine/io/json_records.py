"""JSON text of every record lenet_engine writes: weights and checkpoint metadata, training logs, reports.

One encoder, so a numpy scalar or array (a seed given as np.int64, a rate as np.float32) is
written the same way everywhere: as the plain number or list it holds.
"""

import json

import numpy as np


def dumps(record, fallback=None, **options):
    """json.dumps(record, **options) with numpy values as plain numbers and lists.

    Anything else JSON cannot hold goes to fallback(value) (str, say) or raises TypeError naming it.
    """
    def plain(value):
        if isinstance(value, (np.generic, np.ndarray)):
            return value.tolist()
        if fallback is not None:
            return fallback(value)
        raise TypeError(f"{value!r} of type {type(value).__name__} cannot be written as JSON")

    return json.dumps(record, default=plain, **options)
