"""Importing the optional packages some features need (Pillow, matplotlib, h5py, torch, onnx), with a clear error when missing.

Called by lenet_engine.images, .visualize, .report, .training_log and .interop
on first use, so that `import lenet_engine` never needs them.
"""

import importlib

from lenet_engine.errors import MissingDependencyError


def import_optional(module, extra, feature):
    """Import `module`, or raise MissingDependencyError saying `feature` needs `pip install lenet-engine[extra]`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the optional package {module.split('.')[0]!r}, which is not installed: "
            f"pip install 'lenet-engine[{extra}]'"
        ) from exc
