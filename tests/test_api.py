"""The public Python API (edgeml.api, re-exported lazily by edgeml/__init__.py)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import pytest

import edgeml
from edgeml import api

PUBLIC = ["inspect", "convert", "quantize", "prune", "bench", "estimate", "check", "run_pipeline"]


def test_import_edgeml_does_not_import_tensorflow_or_the_stages():
    code = ("import sys, edgeml; edgeml.quantize; edgeml.DataSpec; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'onnx', "
            "'onnxruntime') or m in ('edgeml.quantize', 'edgeml.convert', 'edgeml.bench.harness')); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", PUBLIC)
def test_api_function_is_exported_and_documented(name):
    fn = getattr(edgeml, name)
    assert fn is getattr(api, name)
    doc = fn.__doc__ or ""
    for section in ("Args:", "Returns:", "Raises:"):
        assert section in doc, f"edgeml.{name}: no {section} section"


@pytest.mark.parametrize("name", PUBLIC)
def test_api_signature_has_no_any(name):
    fn = getattr(api, name)
    hints = typing.get_type_hints(fn, globalns={**vars(api), **_result_types()})
    assert set(hints) == {*inspect.signature(fn).parameters, "return"}  # every parameter annotated
    assert all("Any" not in str(h) for h in hints.values()), hints


def _result_types() -> dict[str, object]:
    return {n: getattr(edgeml, n) for n in ("BenchResult", "DataSpec", "Budget", "CheckResult", "ConvertResult",
                                            "Inspection", "Recipe", "RunResult", "PruneResult", "QuantizeResult",
                                            "Estimate")} | {"SSHTarget": _ssh_target()}


def _ssh_target() -> object:
    from edgeml.targets.remote import SSHTarget

    return SSHTarget


def test_api_function_survives_subpackage_import():
    import edgeml.check
    import edgeml.convert.verify
    import edgeml.quantize.tflite  # noqa: F401
    from edgeml.quantize import QuantizeResult

    assert callable(edgeml.quantize) and callable(edgeml.convert) and callable(edgeml.check)
    assert QuantizeResult.__module__ == "edgeml.quantize.result"  # the subpackage, not the API function
    assert sys.modules["edgeml.quantize"].quantize is not edgeml.quantize  # the stage, wrapped by the API


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgeml.nope  # noqa: B018


def test_inspect_returns_inspection(tiny_onnx):
    info = edgeml.inspect(tiny_onnx)
    assert isinstance(info, edgeml.Inspection)
    assert info.format == "onnx" and info.macs > 0


def test_check_accepts_budget_objects(tiny_onnx):
    result = edgeml.check([edgeml.Budget(model=str(tiny_onnx), max_size=10_000_000)])
    assert result.passed and result.items[0].budget == "max_size"


def test_check_refuses_malformed_budget_as_usage_error(tiny_onnx):
    from edgeml.check import BudgetError

    with pytest.raises(BudgetError) as exc:
        edgeml.check([edgeml.Budget(model=str(tiny_onnx), percentile="p42")])
    assert exc.value.exit_code == 2


def test_py_typed_marker_is_shipped():
    from pathlib import Path

    assert (Path(edgeml.__file__).parent / "py.typed").is_file()
