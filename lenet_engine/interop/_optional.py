"""Lazy imports of the optional packages behind the interoperability functions.

h5py (from_keras), torch (from_torch on .pt files and tensors) and onnx (to_onnx)
are extras, not dependencies: each is imported inside the function that needs
it, through `require`, so `import lenet_engine` never pays for them and a
missing one is reported with the extra that installs it.
"""

import importlib

from lenet_engine.errors import MissingDependencyError


def require(module, extra, feature):
    """Import and return `module`, or raise MissingDependencyError naming `pip install lenet-engine[extra]`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the {module!r} package, which is not installed ({exc}); "
            f"install it with: pip install \"lenet-engine[{extra}]\""
        ) from exc
