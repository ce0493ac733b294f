"""edgeml demo runs the real pipeline end to end (short training)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgeml.cli import cli


def test_demo_trains_converts_and_evaluates_every_format(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path / "d"), "--epochs", "4", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert set(s["variants"]) == {"keras", "tflite", "onnx"}
    assert s["training"]["flops"] == 3 * 2 * s["training"]["forward_macs"] * s["training"]["samples"] * 4
    acc = {k: v["accuracy"] for k, v in s["variants"].items()}
    assert acc["keras"] > 0.5  # 4 epochs already learn digits
    assert abs(acc["tflite"] - acc["keras"]) <= 1 / 360 and abs(acc["onnx"] - acc["keras"]) <= 1 / 360
    for fmt in ("tflite", "onnx"):
        assert s["variants"][fmt]["verification"]["passed"]
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["schema"] == "edgeml.demo/1"
