"""Kernel backends, one subpackage each: numpy (reference), numba, cython.

This folder is installed as `lenet_engine.kernels` (see setup.py and
kernels/README.md); each backend exports the same kernel names.
"""
