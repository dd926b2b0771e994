"""setup.py lists its packages by hand (package_dir maps kernels/ and weights/ into lenet_engine): none may be left out."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed():
    spec = importlib.util.spec_from_file_location("lenet_engine_setup", ROOT / "setup.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)  # not __main__: setup() itself does not run
    installed = {Path(folder) for folder in setup.PACKAGE_DIR.values()}
    packages = {init.parent.relative_to(ROOT) for init in (ROOT / "lenet_engine").rglob("__init__.py")}
    assert packages <= installed, f"missing from setup.py's PACKAGE_DIR: {sorted(map(str, packages - installed))}"
