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


def test_every_pyx_becomes_a_module_of_every_level():
    import lenet_engine.kernels.cython as cython_backend

    assert importlib.util.find_spec("lenet_engine.kernels.cython._build")
    for pyx in (ROOT / "kernels" / "cython").glob("*.pyx"):
        if pyx.stem != "_build":
            assert pyx.stem in cython_backend.MODULES, pyx.name
            for level in cython_backend.LEVELS_BUILT:
                assert importlib.util.find_spec(f"lenet_engine.kernels.cython.{pyx.stem}_{level}"), (pyx.name, level)
    assert cython_backend.OPENMP and cython_backend.MAX_THREADS >= 1


def test_a_compiler_command_with_arguments_is_probed_whole(setup_module, monkeypatch):
    monkeypatch.setenv("CC", "gcc -m64")
    assert setup_module.openmp_flags() == (["-fopenmp"], ["-fopenmp"])


def test_one_build_has_every_x86_64_level_unless_told_otherwise(setup_module, monkeypatch):
    monkeypatch.setenv("CC", "gcc")
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.delenv("LENET_ENGINE_NATIVE", raising=False)
    monkeypatch.setattr(setup_module.platform, "machine", lambda: "x86_64")
    assert setup_module.kernel_levels() == setup_module.KERNEL_LEVELS
    assert list(setup_module.KERNEL_LEVELS) == ["baseline", "v3", "v4"]
    monkeypatch.setenv("LENET_ENGINE_NATIVE", "1")
    assert setup_module.kernel_levels() == {"native": ["-march=native"]}
    monkeypatch.delenv("LENET_ENGINE_NATIVE")
    monkeypatch.setenv("CFLAGS", "-O2 -march=x86-64-v2")   # the user's target: one portable level
    assert setup_module.kernel_levels() == {"portable": []}
    monkeypatch.delenv("CFLAGS")
    monkeypatch.setattr(setup_module.platform, "machine", lambda: "aarch64")
    assert setup_module.kernel_levels() == {"portable": []}


def test_a_level_the_compiler_does_not_know_is_left_out_with_a_warning(setup_module, monkeypatch, tmp_path):
    fake = tmp_path / "cc-without-v4"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -march=x86-64-v4 ] && exit 1; done\nexec cc "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.delenv("LENET_ENGINE_NATIVE", raising=False)
    monkeypatch.setattr(setup_module.platform, "machine", lambda: "x86_64")
    with pytest.warns(UserWarning, match="cannot build the v4 kernels"):
        assert list(setup_module.kernel_levels()) == ["baseline", "v3"]


def test_a_native_build_names_the_cpu_it_was_built_for(setup_module, monkeypatch):
    monkeypatch.setenv("CC", "gcc")
    described = setup_module.describe_flags(["-march=native"])
    assert described.startswith("-march=") and described != "-march=native"
    assert setup_module.describe_flags(["-march=x86-64-v3", "-mtune=znver3"]) == "-march=x86-64-v3 -mtune=znver3"


# The modules whose C (l5_*.h) is written over l5_simd.h's vector type (the others are plain loops).
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
                         ids=["x86-64 without AVX (the baseline level)", "plain-C vectors (-DL5_SCALAR)"])
def test_the_vector_kernels_compile_without_avx_and_as_plain_c(vector_module_sources, flags):
    # From the C Cython makes, as a compiler with these flags sees it: plain C is a build the
    # levels never make.
    import numpy

    include = [f"-I{sysconfig.get_paths()['include']}", f"-I{numpy.get_include()}", f"-I{ROOT / 'kernels' / 'cython'}"]
    for c_file in vector_module_sources:
        done = subprocess.run(["gcc", "-S", "-O1", "-fopenmp", *flags, *include, "-o", os.devnull, str(c_file)],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{c_file.name} with {flags}:\n{done.stderr[-3000:]}"
