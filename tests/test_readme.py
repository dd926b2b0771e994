"""README.md against the code: the Errors table and the names its Python examples use.

Nothing here loads MNIST or runs a kernel: the examples are read, not executed.
"""

import importlib
import re
from pathlib import Path

import pytest

import lenet_engine as le
from lenet_engine import errors

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme():
    return README.read_text(encoding="utf-8")


def _section(title):
    """The text of README's `## title` section, up to the next `## ` heading."""
    text = _readme()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def _python_blocks():
    return re.findall(r"^```python\n(.*?)^```", _readme(), re.M | re.S)


# --- the Errors table ----------------------------------------------------------


def _errors_table():
    """{class name: base name} from the rows of README's Errors table."""
    rows = {}
    for line in _section("Errors").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue  # prose, the header row or the --- row
        name, base = cells[0].strip("`"), cells[1].strip("`")
        assert name not in rows, f"{name} is listed twice in README's Errors table"
        rows[name] = base
    assert rows, "README's Errors table has no rows"
    return rows


def _exported_error_classes():
    """The exception classes errors.py defines that lenet_engine exports as le.<Name>."""
    return {name: obj for name, obj in vars(errors).items()
            if isinstance(obj, type) and issubclass(obj, BaseException)
            and obj.__module__ == errors.__name__ and getattr(le, name, None) is obj}


def _listed_base(cls):
    """The base README's table gives a class: its direct base other than LenetEngineError.

    errors.py declares each family's root as `class X(LenetEngineError, <builtin>)`
    (e.g. InvalidInputError(LenetEngineError, ValueError)): the table lists the
    built-in, the class a caller would catch anyway. Every other class has one base
    (its family's root, or Exception for LenetEngineError itself), and that is listed.
    """
    bases = [base for base in cls.__bases__ if base is not le.LenetEngineError]
    assert len(bases) == 1, f"{cls.__name__} has bases {cls.__bases__}: the table's rule does not say which to list"
    return bases[0].__name__


def test_errors_table_lists_every_exported_error_class_and_nothing_else():
    listed = set(_errors_table())
    defined = set(_exported_error_classes())
    assert listed - defined == set(), "in README's Errors table but not an error class of le"
    assert defined - listed == set(), "error classes of le missing from README's Errors table"


def test_errors_table_names_each_class_direct_base():
    table = _errors_table()
    wrong = {name: (table[name], _listed_base(cls))
             for name, cls in _exported_error_classes().items()
             if name in table and table[name] != _listed_base(cls)}
    assert not wrong, f"README base column (listed, actual): {wrong}"


# --- the Python examples ---------------------------------------------------------


def test_readme_has_the_quick_start_commands():
    text = _readme()
    for command in ('pip install . && lenet-engine demo', 'pip install -e ".[test]" && pytest'):
        assert f"\n{command}\n" in text, f"README.md lost the quick-start line {command!r}"


def test_python_examples_use_only_names_lenet_engine_has():
    """Every `le.a.b` chain resolves on lenet_engine."""
    chains = {match for block in _python_blocks()
              for match in re.findall(r"(?<![\w.])le((?:\.[A-Za-z_]\w*)+)", block)}
    assert chains
    missing = []
    for chain in sorted(chains):
        obj = le
        for attribute in chain.strip(".").split("."):
            if not hasattr(obj, attribute):
                missing.append(f"le{chain}")
                break
            obj = getattr(obj, attribute)
    assert not missing, f"README uses names lenet_engine does not have: {missing}"


@pytest.fixture(scope="module")
def model():
    return le.LeNet5("classic", backend="numpy")  # no weights file, no compiled kernels


def test_python_examples_use_only_model_attributes_that_exist(model):
    """Every `m.name` in the examples is an attribute of a LeNet5 (m is always one there)."""
    names = {name for block in _python_blocks() for name in re.findall(r"(?<![\w.])m\.([A-Za-z_]\w*)", block)}
    assert {"predict", "fit", "save"} <= names
    missing = sorted(name for name in names if not hasattr(model, name))
    assert not missing, f"README uses LeNet5 attributes that do not exist: {missing}"


def test_python_examples_import_only_what_exists():
    """Every `from lenet_engine.x import a, b` in the examples imports (optional packages are
    imported on first use, so this needs none of them)."""
    imports = [match for block in _python_blocks()
               for match in re.findall(r"^\s*from (lenet_engine[\w.]*) import ([\w, ]+)", block, re.M)]
    assert imports
    missing = []
    for module_name, names in imports:
        module = importlib.import_module(module_name)
        missing += [f"{module_name}.{name.strip()}" for name in names.split(",")
                    if not hasattr(module, name.strip())]
    assert not missing, f"README imports names that do not exist: {missing}"
