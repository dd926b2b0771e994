"""Build script: maps the top-level folders into the package and compiles the Cython kernels.

Layout (see kernels/README.md for why):
    lenet_engine/   -> lenet_engine            the Python API (data/: the demo's sample digits)
    kernels/        -> lenet_engine.kernels    one subpackage per backend
    weights/        -> lenet_engine.weights    shipped .safetensors files

Cython kernels are every `kernels/cython/*.pyx`; adding a file there is all a
new compiled kernel needs. OpenMP is used where the compiler accepts it, else
the build goes on single-threaded with a warning; -march=native likewise,
unless LENET_ENGINE_PORTABLE=1.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
CYTHON_DIR = ROOT / "kernels" / "cython"

PACKAGE_DIR = {
    "lenet_engine": "lenet_engine",
    "lenet_engine.data": "lenet_engine/data",
    "lenet_engine.interop": "lenet_engine/interop",
    "lenet_engine.io": "lenet_engine/io",
    "lenet_engine.training": "lenet_engine/training",
    "lenet_engine.kernels": "kernels",
    "lenet_engine.kernels.numpy": "kernels/numpy",
    "lenet_engine.kernels.numba": "kernels/numba",
    "lenet_engine.weights": "weights",
}
if CYTHON_DIR.is_dir():
    PACKAGE_DIR["lenet_engine.kernels.cython"] = "kernels/cython"


def _compiles(flag, source):
    """Whether $CC (default cc; it may carry arguments, e.g. "ccache gcc") builds `source` with `flag`."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        cmd = cc + [flag, str(src), "-o", str(Path(tmp) / "probe")]
        try:
            ok = shutil.which(cc[0]) is not None and subprocess.run(
                cmd, capture_output=True, check=False
            ).returncode == 0
        except OSError:
            ok = False
    return ok, shlex.join(cmd)


def openmp_flags():
    """(compile, link) flags for OpenMP, or ([], []) when the compiler has none."""
    if sys.platform == "win32":
        return ["/openmp"], []
    probe = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    ok, cmd = _compiles("-fopenmp", probe)
    if not ok:
        warnings.warn(
            "lenet_engine: the C compiler does not support OpenMP (%s); the Cython "
            "kernels are built single-threaded." % cmd,
            stacklevel=1,
        )
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


def native_flags():
    """-march=native where the compiler takes it: the kernels then use this CPU's vector
    units (AVX2, FMA, ...), as Numba's do. Skipped when CFLAGS already choose a target
    (-march=...), and with LENET_ENGINE_PORTABLE=1, for binaries that move to other CPUs."""
    if sys.platform == "win32" or os.environ.get("LENET_ENGINE_PORTABLE") == "1":
        return []
    if "-march=" in os.environ.get("CFLAGS", ""):
        return []
    ok, _ = _compiles("-march=native", "int main(void) { return 0; }\n")
    return ["-march=native"] if ok else []


def build_target(compile_args):
    """The CPU the kernels are compiled for: the -march in effect, native resolved to the CPU's name
    where the compiler says it (gcc), so that a native build on a Zen 3 and a -march=znver3 build
    anywhere, which give the same bits, name the same target. The Cython backend reports it with
    the compiler's version, and trained weights record both."""
    march = next((a for a in reversed(shlex.split(os.environ.get("CFLAGS", "")) + compile_args)
                  if a.startswith("-march=")), "-march=default")
    if march == "-march=native":
        cc = shlex.split(os.environ.get("CC", "cc"))
        try:
            listing = subprocess.run(cc + ["-march=native", "-Q", "--help=target"], capture_output=True,
                                     text=True, check=False).stdout
        except OSError:
            listing = ""
        resolved = [line.split()[1] for line in listing.splitlines()
                    if line.split()[:1] == ["-march="] and len(line.split()) > 1]
        march = f"-march={resolved[0]}" if resolved else march
    return march


def cython_extensions():
    if not CYTHON_DIR.is_dir():
        return []
    sources = sorted(CYTHON_DIR.glob("*.pyx"))
    if not sources:
        # An sdist made without MANIFEST.in would land here: fail loudly rather
        # than install a package whose Cython backend is silently missing.
        raise RuntimeError(f"{CYTHON_DIR} holds no .pyx sources: the Cython kernels cannot be built")
    import numpy
    from Cython.Build import cythonize

    compile_flags, link_flags = openmp_flags()
    # -fno-trapping-math lets gcc vectorise loops with selects (the clamp in
    # tanh); the kernels never rely on floating-point traps.
    compile_args = ["-O3", "-fno-trapping-math"] + native_flags() + compile_flags
    target = build_target(compile_args)
    extensions = [
        Extension(
            "lenet_engine.kernels.cython." + src.stem,
            [str(src.relative_to(ROOT))],
            include_dirs=[numpy.get_include()],
            extra_compile_args=compile_args,
            extra_link_args=link_flags,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                           ("L5_BUILD_TARGET", '"%s"' % target.replace('"', "'"))],
        )
        for src in sources
    ]
    return cythonize(extensions, language_level=3)


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it for openmp_flags
    setup(
        packages=list(PACKAGE_DIR),
        package_dir=PACKAGE_DIR,
        package_data={
            "lenet_engine.data": ["*.npz", "README.md"],
            "lenet_engine.weights": ["*.safetensors"],
        },
        exclude_package_data={"lenet_engine.kernels.cython": ["*.c", "*.pyx", "*.pxi"]},
        ext_modules=cython_extensions(),
        zip_safe=False,
    )
