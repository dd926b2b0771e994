"""How error messages name what a reader was given: a path, or bytes in memory.

Called by the IDX reader (lenet_engine.datasets) and the image reader (lenet_engine.images).
"""

import os


def describe_source(source, kind):
    """How error messages name a file given as a path or as bytes of `kind` ("IDX data", "image data")."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes of {kind}>"
    return os.fspath(source)
