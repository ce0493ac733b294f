"""edgeml estimate: labelled estimates from the graph and a target profile; refitting from bench results."""

from __future__ import annotations

import json
import tomllib

import pytest
from click.testing import CliRunner

from edgeml.bench.harness import bench
from edgeml.cli import cli
from edgeml.errors import EdgeMLError
from edgeml.targets import estimate as est
from edgeml.targets import load_profile


def test_estimate_is_labelled_and_grows_with_macs(tiny_onnx, digits_keras):
    small = est.estimate(tiny_onnx, target="rpi4")
    big = est.estimate(digits_keras, target="rpi4")
    assert small.to_dict()["kind"] == "estimated" and "profile rpi4" in small.basis
    assert 0 < small.ms < big.ms
    assert big.energy_mj == pytest.approx(big.ms * load_profile("rpi4").load_w)
    assert big.top_ops[0]["macs"] >= big.top_ops[-1]["macs"]
    one = est.estimate(digits_keras, target="rpi4", threads=1)
    assert one.ms > big.ms  # fewer threads, slower
    assert big.extrapolated and any("far smaller than every published model" in n for n in big.notes)


def test_gpu_int8_without_int8_fit_uses_fp16_and_says_so(tmp_path, digits_keras):
    from edgeml.quantize import quantize

    q = quantize(digits_keras, out=tmp_path / "q.tflite", calib="builtin:digits?split=train&samples=50")
    e = est.estimate(q.output, target="jetson-orin-nano")
    assert e.precision == "fp16" and any("upper bound" in n for n in e.notes)


def test_edge_tpu_reports_cache_and_cpu_fallback(digits_keras):
    e = est.estimate(digits_keras, target="coral-usb")
    assert e.precision == "int8" and any("parameter cache" in n for n in e.notes)
    with pytest.raises(EdgeMLError, match="int8 only"):
        est.estimate(digits_keras, target="coral-usb", precision="fp32")


def test_host_is_measured_not_estimated(tiny_onnx):
    with pytest.raises(EdgeMLError, match="measured, not estimated"):
        est.estimate(tiny_onnx, target="host")


def test_bench_without_board_is_an_estimate_never_host_timings(tiny_onnx):
    r = bench([tiny_onnx], target="rpi4").to_dict()
    assert r["measured"] is False and r["kind"] == "estimated" and r["where"] == "estimate"
    assert "latency_ms" not in r["models"][0] and r["models"][0]["estimate"]["ms"] > 0
    res = CliRunner().invoke(cli, ["bench", str(tiny_onnx), "--target", "rpi4"])
    assert res.exit_code == 0 and "ESTIMATE (not measured)" in res.stdout


def test_fit_from_bench_results_writes_a_usable_profile(tmp_path, tiny_onnx, digits_keras):
    from edgeml.convert import convert

    model = convert(digits_keras, to="onnx", out=tmp_path / "d.onnx", verify=0).output
    result = bench([tiny_onnx, model], runs=10).to_dict()
    (tmp_path / "r.json").write_text(json.dumps(result))
    out = tmp_path / "mine.toml"
    res = CliRunner().invoke(cli, ["estimate", "--fit", str(tmp_path / "r.json"), "--target", "rpi4", "-o", str(out),
                                   "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    assert "median |error|" in res.stdout
    data = tomllib.loads(out.read_text())
    assert len(data["estimate"]["coef_fp32"]) == 3 and "measured edgeml bench results" in data["estimate"]["basis_fp32"]
    mine = est.estimate(model, target=str(out), precision="fp32", threads=1)
    assert mine.ms == pytest.approx(result["models"][1]["latency_ms"]["p50"], rel=0.5)


def test_fit_refuses_results_that_are_not_measurements(tmp_path, tiny_onnx):
    (tmp_path / "e.json").write_text(json.dumps(bench([tiny_onnx], target="rpi4").to_dict()))
    with pytest.raises(EdgeMLError, match="not a measured"):
        est.fit_from_bench([tmp_path / "e.json"], "rpi4")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EdgeMLError, match="not a readable"):
        est.fit_from_bench([tmp_path / "bad.json"], "rpi4")
