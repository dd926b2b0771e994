"""The build (setup.py): OpenMP on when the compiler has it, a warned fallback when not; the
vector kernels compile for any x86-64 and as plain C."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_module():
    spec = importlib.util.spec_from_file_location("lenet_engine_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: setup() itself does not run
    return module


def test_openmp_is_used_when_the_compiler_accepts_it(setup_module, monkeypatch):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build lenet_engine"
    monkeypatch.setenv("CC", cc)
    assert setup_module.openmp_flags() == (["-fopenmp"], ["-fopenmp"])


def test_a_compiler_without_openmp_builds_single_threaded_with_a_warning(setup_module, monkeypatch, tmp_path):
    fake = tmp_path / "cc-without-openmp"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && exit 1; done\nexec cc "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    with pytest.warns(UserWarning, match="does not support OpenMP"):
        assert setup_module.openmp_flags() == ([], [])


def test_every_pyx_becomes_a_module_of_the_cython_backend():
    import lenet_engine.kernels.cython as cython_backend

    for pyx in (ROOT / "kernels" / "cython").glob("*.pyx"):
        assert importlib.util.find_spec(f"lenet_engine.kernels.cython.{pyx.stem}"), pyx.name
    assert cython_backend.OPENMP and cython_backend.MAX_THREADS >= 1


def test_a_compiler_command_with_arguments_is_probed_whole(setup_module, monkeypatch):
    monkeypatch.setenv("CC", "gcc -m64")
    assert setup_module.openmp_flags() == (["-fopenmp"], ["-fopenmp"])


def test_native_code_unless_portable_or_chosen_by_cflags(setup_module, monkeypatch):
    monkeypatch.setenv("CC", "gcc")
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.delenv("LENET_ENGINE_PORTABLE", raising=False)
    assert setup_module.native_flags() == ["-march=native"]
    monkeypatch.setenv("LENET_ENGINE_PORTABLE", "1")
    assert setup_module.native_flags() == []
    monkeypatch.delenv("LENET_ENGINE_PORTABLE")
    monkeypatch.setenv("CFLAGS", "-O2 -march=x86-64-v2")
    assert setup_module.native_flags() == []


# The modules whose C is written over _simd.pxi's vector type (the others are plain loops).
VECTOR_MODULES = ("conv", "linear", "lenet5")


@pytest.fixture(scope="module")
def vector_module_sources(tmp_path_factory):
    """The C that Cython makes of each vector module (once for the tests below)."""
    out = tmp_path_factory.mktemp("vector_c")
    sources = []
    for name in VECTOR_MODULES:
        c_file = out / f"{name}.c"
        subprocess.run([sys.executable, "-m", "cython", "-3", "-o", str(c_file),
                        str(ROOT / "kernels" / "cython" / f"{name}.pyx")], check=True, capture_output=True)
        sources.append(c_file)
    return sources


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["-march=x86-64"], ["-march=native", "-DL5_SCALAR"]],
                         ids=["x86-64 without AVX (LENET_ENGINE_PORTABLE=1)", "plain-C vectors (-DL5_SCALAR)"])
def test_the_vector_kernels_compile_without_avx_and_as_plain_c(vector_module_sources, flags):
    # The machines that build the tests have AVX2; these are the builds they would not try.
    import numpy

    include = [f"-I{sysconfig.get_paths()['include']}", f"-I{numpy.get_include()}"]
    for c_file in vector_module_sources:
        done = subprocess.run(["gcc", "-S", "-O1", "-fopenmp", *flags, *include, "-o", os.devnull, str(c_file)],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{c_file.name} with {flags}:\n{done.stderr[-3000:]}"
