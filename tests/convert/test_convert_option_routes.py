"""Convert options set away from their defaults that the chosen route would not apply are refused (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import helpers
from edgeml.cli import cli as main
from edgeml.convert import convert
from edgeml.errors import OnnxToTFLiteError, UsageError


@pytest.mark.parametrize("to", ["onnx", "tflite"])
def test_convert_refuses_opset_when_onnx_source_keeps_its_own(tiny_onnx, tmp_path, to):
    with pytest.raises(UsageError, match="`opset` 13: "):
        convert(tiny_onnx, to=to, out=tmp_path / f"m.{to}", opset=13)
    assert not (tmp_path / f"m.{to}").exists()


def test_convert_reports_source_opset_when_onnx_to_onnx(tmp_path):
    src = helpers.onnx_legacy_constants(tmp_path / "legacy.onnx")  # opset 11
    r = convert(src, to="onnx", out=tmp_path / "out.onnx")
    assert r.opset == 11


def test_convert_refuses_no_simplify_when_onnx_to_tflite(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="`simplify=False`: ONNX -> TFLite always simplifies"):
        convert(tiny_onnx, to="tflite", out=tmp_path / "m.tflite", simplify=False)


@pytest.mark.parametrize("kw, names", [({"atol": 0.1}, "`atol`"), ({"calib": "builtin:digits"}, "`calib`"),
                                       ({"input_shapes": "image=1,1,8,8"}, "`input_shapes`")])
def test_convert_refuses_verification_options_when_verify_0(tiny_onnx, tmp_path, kw, names):
    with pytest.raises(UsageError, match=f"{names}: used to verify the conversion, but `verify` is 0"):
        convert(tiny_onnx, to="onnx", out=tmp_path / "m.onnx", verify=0, **kw)


def test_convert_strict_fails_when_onnx_to_tflite_simplification_fails(tiny_onnx, tmp_path, monkeypatch):
    import onnx

    from edgeml.convert import onnx_tflite

    def failing_prepare(path, input_shapes=None, *, integer_ids=False):
        return onnx.load(str(path)), {"applied": False, "nodes_before": 4, "nodes_after": None,
                                      "warning": "onnxsim failed (RuntimeError: boom)"}

    monkeypatch.setattr(onnx_tflite, "prepare", failing_prepare)
    monkeypatch.setattr(onnx_tflite, "require_onnx2tf", lambda: None)
    with pytest.raises(OnnxToTFLiteError, match="ONNX simplification failed: onnxsim failed"):
        convert(tiny_onnx, to="tflite", out=tmp_path / "m.tflite", strict=True, input_shapes="image=1,1,8,8")
    assert not (tmp_path / "m.tflite").exists()


def test_convert_cli_refuses_opset_when_to_tflite_exit_2(tiny_onnx, tmp_path):
    r = CliRunner().invoke(main, ["convert", str(tiny_onnx), "--to", "tflite", "-o", str(tmp_path / "m.tflite"),
                                  "--opset", "13"])
    assert r.exit_code == 2, r.output
    assert "error: --opset 13: a TFLite model has no ONNX opset" in r.output
