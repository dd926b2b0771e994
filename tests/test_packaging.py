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


def test_every_folder_of_the_package_is_listed():
    # setuptools warns, on every install, of a folder Python could import (a data folder such as
    # the served page's static/) that the packages do not list.
    spec = importlib.util.spec_from_file_location("lenet_engine_setup", ROOT / "setup.py")
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    installed = {Path(folder) for folder in setup.PACKAGE_DIR.values()}
    folders = {path.relative_to(ROOT) for path in (ROOT / "lenet_engine").rglob("*")
               if path.is_dir() and path.name != "__pycache__"} | {Path("lenet_engine")}
    assert folders <= installed, f"folders setup.py does not list: {sorted(map(str, folders - installed))}"
