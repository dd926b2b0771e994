"""Build script: maps the top-level folders into the package and compiles the Cython kernels.

Layout (see kernels/README.md for why):
    lenet_engine/   -> lenet_engine            the Python API (data/: the demo's sample digits)
    kernels/        -> lenet_engine.kernels    one subpackage per backend
    weights/        -> lenet_engine.weights    shipped .safetensors files

Cython kernels are every `kernels/cython/*.pyx`; adding a file there is all a
new compiled kernel needs. Each is compiled once per x86-64 level (KERNEL_LEVELS:
baseline, v3, v4), as lenet_engine.kernels.cython.<name>_<level>, and the
backend picks the best level this CPU runs at import: one build runs on any
x86-64 CPU. LENET_ENGINE_NATIVE=1 builds one level for this CPU instead
(-march=native); CFLAGS naming a -march, or another processor, one portable
level. OpenMP is used where the compiler accepts it, else the build goes on
single-threaded with a warning.
"""

import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
CYTHON_DIR = ROOT / "kernels" / "cython"

PACKAGE_DIR = {
    "lenet_engine": "lenet_engine",
    "lenet_engine.dask": "lenet_engine/dask",
    "lenet_engine.data": "lenet_engine/data",
    "lenet_engine.interop": "lenet_engine/interop",
    "lenet_engine.io": "lenet_engine/io",
    "lenet_engine.photos": "lenet_engine/photos",
    "lenet_engine.serve": "lenet_engine/serve",
    "lenet_engine.serve.static": "lenet_engine/serve/static",  # the page's files (a data-only package)
    "lenet_engine.training": "lenet_engine/training",
    "lenet_engine.kernels": "kernels",
    "lenet_engine.kernels.numpy": "kernels/numpy",
    "lenet_engine.kernels.numba": "kernels/numba",
    "lenet_engine.weights": "weights",
}
if CYTHON_DIR.is_dir():
    PACKAGE_DIR["lenet_engine.kernels.cython"] = "kernels/cython"


def _compiles(flags, source):
    """Whether $CC (default cc; it may carry arguments, e.g. "ccache gcc") builds `source` with
    `flags` (one flag, or a list)."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        cmd = cc + ([flags] if isinstance(flags, str) else list(flags)) + [str(src), "-o", str(Path(tmp) / "probe")]
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


# The levels of the psABI, as gcc and clang name them. v3 is tuned as gcc tunes for a Zen 3, the
# machine the shipped models were trained on: the same bits, so their records reproduce exactly at
# this level on any CPU that runs it. v4 lets the compiler's own loops use 512-bit vectors.
KERNEL_LEVELS = {
    "baseline": ["-march=x86-64", "-mtune=generic"],
    "v3": ["-march=x86-64-v3", "-mtune=znver3"],
    "v4": ["-march=x86-64-v4", "-mtune=generic", "-mprefer-vector-width=512"],
}


def kernel_levels():
    """{level: compile flags} of the kernel builds to make.

    The x86-64 levels on x86-64, less those the compiler does not know (with a warning);
    {"native": [-march=native]} with LENET_ENGINE_NATIVE=1, for this CPU alone; {"portable": []}
    on other processors or when CFLAGS choose a -march (the user's target then applies).
    """
    probe = "int main(void) { return 0; }\n"
    if os.environ.get("LENET_ENGINE_NATIVE") == "1":
        if _compiles("-march=native", probe)[0]:
            return {"native": ["-march=native"]}
        warnings.warn("lenet_engine: LENET_ENGINE_NATIVE=1, but the compiler refuses -march=native; "
                      "building the portable levels", stacklevel=1)
    if "-march=" in os.environ.get("CFLAGS", "") or platform.machine().lower() not in ("x86_64", "amd64"):
        return {"portable": []}
    levels = {}
    for level, flags in KERNEL_LEVELS.items():
        ok, cmd = _compiles(flags, probe)
        if ok:
            levels[level] = flags
        else:
            warnings.warn(f"lenet_engine: the compiler cannot build the {level} kernels ({cmd}); "
                          "they are left out", stacklevel=1)
    return levels


def describe_flags(flags):
    """A level's flags as the backend reports them: -march=native resolved to the CPU's name where
    the compiler says it (gcc), so that a native build names the target it was compiled for."""
    if "-march=native" not in flags:
        return " ".join(flags)
    cc = shlex.split(os.environ.get("CC", "cc"))
    try:
        listing = subprocess.run(cc + ["-march=native", "-Q", "--help=target"], capture_output=True,
                                 text=True, check=False).stdout
    except OSError:
        listing = ""
    resolved = [line.split()[1] for line in listing.splitlines()
                if line.split()[:1] == ["-march="] and len(line.split()) > 1]
    return " ".join(f"-march={resolved[0]}" if f == "-march=native" and resolved else f for f in flags)


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
    if sys.platform != "win32":
        # The fused passes' threads (l5_runner.h) are pthreads, with or without OpenMP.
        compile_flags, link_flags = compile_flags + ["-pthread"], link_flags + ["-pthread"]
    levels = kernel_levels()
    # -fno-trapping-math lets gcc vectorise loops with selects (the clamp in
    # tanh); the kernels never rely on floating-point traps.
    common = ["-O3", "-fno-trapping-math"] + compile_flags
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]

    def extension(name, src, flags, extra_macros=()):
        return Extension(f"lenet_engine.kernels.cython.{name}", [str(src.relative_to(ROOT))],
                         include_dirs=[numpy.get_include(), str(CYTHON_DIR)], extra_compile_args=common + flags,
                         extra_link_args=link_flags, define_macros=macros + list(extra_macros))

    # The build module: once, at the lowest level, naming the levels it sits beside.
    built = ";".join(f"{level}:{describe_flags(flags)}" for level, flags in levels.items())
    lowest = next(iter(levels.values()))
    modules = cythonize([extension("_build", CYTHON_DIR / "_build.pyx", lowest,
                                   [("L5_LEVELS", '"%s"' % built.replace('"', "'"))])],
                        language_level=3)
    kernels = [src for src in sources if src.stem != "_build"]
    for level, flags in levels.items():
        # One C file per level: Cython writes each level's under its own build folder.
        modules += cythonize([extension(f"{src.stem}_{level}", src, flags) for src in kernels],
                             build_dir=str(Path("build") / f"cython-{level}"), language_level=3)
    return modules


class ParallelBuildExt(build_ext):
    """build_ext compiling the extensions on every core: each kernel module is built once per level."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it for openmp_flags
    setup(
        packages=list(PACKAGE_DIR),
        package_dir=PACKAGE_DIR,
        package_data={
            "lenet_engine.data": ["*.npz", "README.md"],
            "lenet_engine.serve.static": ["*.html", "*.css", "*.js"],
            "lenet_engine.weights": ["*.safetensors"],
        },
        exclude_package_data={"lenet_engine.kernels.cython": ["*.c", "*.h", "*.pyx", "*.pxi"]},
        ext_modules=cython_extensions(),
        cmdclass={"build_ext": ParallelBuildExt},
        zip_safe=False,
    )
