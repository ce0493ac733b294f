"""The error catalogue (edgeml.errors): every exception the library raises is defined there, with its exit code."""

from __future__ import annotations

import ast
from pathlib import Path

import edgeml.errors as errors

PACKAGE = Path(errors.__file__).parent
CATALOGUE = {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, BaseException)}


def test_every_exception_class_of_the_library_is_in_the_catalogue():
    # the board runner is self-contained (it runs on a board without edgeml), so it keeps its own
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("errors.py", "device_runner.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & (CATALOGUE | {"Exception", "BaseException"}):
                    outside.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not outside, f"define these in edgeml/errors.py: {outside}"


def test_catalogued_errors_keep_their_exit_codes():
    assert errors.UsageError.exit_code == 2
    for cls in (errors.BudgetError, errors.QATUsageError, errors.InventoryError):
        assert issubclass(cls, errors.UsageError) and cls.exit_code == 2
    assert errors.FidelityError.exit_code == errors.CheckFailed.exit_code == 1
    assert errors.QuantizationError.exit_code == errors.EdgeMLError.exit_code == 3


def test_old_import_paths_still_work():
    from edgeml.fleet import InventoryError
    from edgeml.quantize.tflite import QuantizationError

    assert InventoryError is errors.InventoryError and QuantizationError is errors.QuantizationError
