"""Options set away from their defaults that the chosen quantize route would not apply are refused (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeml.cli import cli as main
from edgeml.errors import BudgetError, UsageError
from edgeml.options import QuantizeOptions
from edgeml.quantize import quantize


@pytest.mark.parametrize("kw, names", [
    ({"train": "builtin:digits"}, "`train`"),
    ({"epochs": 5}, "`epochs`"),
    ({"lr": 1e-3, "epochs": 2}, "`epochs`, `lr`"),
])
def test_quantize_options_refuse_training_options_when_not_qat(kw, names):
    with pytest.raises(UsageError, match=names):
        QuantizeOptions(out="q.tflite", calib="builtin:digits", **kw)


def test_quantize_options_keep_training_options_when_qat():
    o = QuantizeOptions(out="q.tflite", calib="builtin:digits", method="qat", train="builtin:digits", epochs=5)
    assert o.epochs == 5


def test_quantize_options_refuse_calib_samples_when_no_calib():
    with pytest.raises(UsageError, match="`calib_samples` 50: draws from `calib`"):
        QuantizeOptions(out="q.tflite", mode="float16", calib_samples=50)


@pytest.mark.parametrize("kw, name", [({"keep_best": True}, "`keep_best`"), ({"max_evals": 5}, "`max_evals`")])
def test_quantize_options_refuse_budget_options_when_no_budget(kw, name):
    with pytest.raises(BudgetError, match=f"{name} applies to a budget"):
        QuantizeOptions(out="q.tflite", calib="builtin:digits", **kw)


@pytest.mark.parametrize("mode", ["dynamic", "float16"])
def test_quantize_options_refuse_calibration_method_when_mode_calibrates_nothing(mode):
    with pytest.raises(UsageError, match=f"`method` entropy: `mode` {mode} calibrates no activation ranges"):
        QuantizeOptions(out="q.onnx", mode=mode, method="entropy")


def test_quantize_refuses_per_tensor_when_mode_float16(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="not available for `mode` float16: float16 weights have no scales"):
        quantize(tiny_onnx, out=tmp_path / "q.onnx", mode="float16", per_channel=False)
    assert not (tmp_path / "q.onnx").exists()


def test_quantize_refuses_per_tensor_when_mode_dynamic_to_tflite(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="not available for `mode` dynamic to TFLite: the quantizer keeps"):
        quantize(tiny_onnx, out=tmp_path / "q.tflite", format="tflite", mode="dynamic", per_channel=False,
                 calib="builtin:digits")


def test_quantize_cli_refuses_epochs_without_qat_exit_2(tiny_onnx, tmp_path):
    r = CliRunner().invoke(main, ["quantize", str(tiny_onnx), "-o", str(tmp_path / "q.onnx"), "--mode", "dynamic",
                                  "--epochs", "5"])
    assert r.exit_code == 2, r.output
    assert "error: --epochs: quantization-aware training options" in r.output
    assert "--method qat" in r.output


@pytest.mark.parametrize("per_channel, scales", [(True, 10), (False, 1)])
def test_quantize_onnx_dynamic_applies_per_channel(tiny_onnx, tmp_path, per_channel, scales):
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "q.onnx"
    r = quantize(tiny_onnx, out=out, mode="dynamic", per_channel=per_channel, debug_samples=2)
    model = onnx.load(str(out))
    fc = next(n for n in model.graph.node if n.op_type == "MatMulInteger")  # Conv stays per tensor in ORT (noted)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_point = inits[fc.input[3]]  # the weight zero point: one per output unit, or one for the tensor
    assert zero_point.size == scales and r.per_channel is per_channel and r.recipe["per_channel"] is per_channel
    assert any("Conv weights per tensor" in n for n in r.notes) is per_channel
