"""kernels/cython/l5_runner.h, the fused passes' threads, compiled alone and run under load.

The Python-level tests (test_backends_agree.py) check the passes' bits on threads; these check
the runner itself: every chunk of every batch run once, with callers racing for the helpers,
under ThreadSanitizer too, and the fallback without pthreads (MSVC builds) compiled and run.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "c" / "runner_stress.c"


def _build_and_run(tmp_path, flags, batches):
    gcc = shutil.which("gcc")
    assert gcc, "the tests compile the runner with gcc, which builds the Cython kernels too"
    exe = tmp_path / "runner_stress"
    built = subprocess.run([gcc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", *flags,
                            f"-I{ROOT / 'kernels' / 'cython'}", str(HARNESS), "-o", str(exe)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    done = subprocess.run([str(exe), str(batches)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr[-3000:]


def test_the_runner_runs_every_chunk_once_with_callers_racing(tmp_path):
    _build_and_run(tmp_path, ["-O2", "-pthread"], 20000)


@pytest.mark.slow
def test_the_runner_has_no_data_race_under_thread_sanitizer(tmp_path):
    _build_and_run(tmp_path, ["-O1", "-g", "-pthread", "-fsanitize=thread"], 2000)


@pytest.mark.parametrize("flags", [["-fopenmp"], []], ids=["OpenMP team", "calling thread"])
def test_the_runner_without_pthreads_runs_every_chunk_once(tmp_path, flags):
    # What an MSVC build compiles (it has no pthreads): _WIN32 defined by hand here.
    _build_and_run(tmp_path, ["-O2", "-D_WIN32", *flags], 2000)
