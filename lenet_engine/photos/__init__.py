"""Digits from photos and scans: what lenet_engine.images.to_mnist and split_digits run on.

prep (the paper's light flattened, the ink thresholded, the digit's parts kept), rows (a
row's parts grouped into digits, left to right), steps (each stage as a picture),
reading (a row read as a number, unsure digits flagged), pages (synthetic photo pages
from MNIST digits, for tests and benchmarks) and command (the CLI's --number and
--show-steps). Needs the [images] extra (Pillow, SciPy).
"""
