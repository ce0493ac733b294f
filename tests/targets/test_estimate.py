"""edgeml estimate: labelled estimates from the graph and a target profile; refitting from bench results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeml._compat import tomllib
from edgeml.bench.harness import bench
from edgeml.cli import cli
from edgeml.errors import EdgeMLError
from edgeml.targets import estimate as est
from edgeml.targets import estimate_fit as est_fit
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
    import os
    import platform

    from edgeml.convert import convert

    model = convert(digits_keras, to="onnx", out=tmp_path / "d.onnx", verify=0).output
    result = bench([tiny_onnx, model], runs=10).to_dict()
    (tmp_path / "r.json").write_text(json.dumps(result))
    mine = tmp_path / "this-box.toml"  # a profile describing the machine the results come from
    mine.write_text(f'name = "this-box"\ndescription = "the test machine"\narch = "{platform.machine()}"\n'
                    f'cores = {os.cpu_count()}\nruntimes = ["litert", "onnxruntime"]\n[peak_gops]\nfp32 = 100.0\n')
    out = tmp_path / "mine.toml"
    res = CliRunner().invoke(cli, ["estimate", "--fit", str(tmp_path / "r.json"), "--target", str(mine), "-o",
                                   str(out), "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    assert "leave-one-out" in res.stdout
    data = tomllib.loads(out.read_text())
    assert len(data["estimate"]["coef_fp32"]) == 3 and "measured edgeml bench results" in data["estimate"]["basis_fp32"]
    assert "1 coefficient" in data["estimate"]["basis_fp32"]  # 2 points: never 3 coefficients
    e = est.estimate(model, target=str(out), precision="fp32", threads=1)
    assert e.ms == pytest.approx(result["models"][1]["latency_ms"]["p50"], rel=0.9)


def test_fit_refuses_results_that_are_not_measurements(tmp_path, tiny_onnx):
    (tmp_path / "e.json").write_text(json.dumps(bench([tiny_onnx], target="rpi4").to_dict()))
    with pytest.raises(EdgeMLError, match="not a measured"):
        est_fit.fit_from_bench([tmp_path / "e.json"], "rpi4")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EdgeMLError, match="not a readable"):
        est_fit.fit_from_bench([tmp_path / "bad.json"], "rpi4")


# -- Edge TPU plan, floors, honest refits (issue 19) ---------------------------------------------------------
def _tflite(path, tensors, ops, inputs, outputs):
    """A .tflite from {name: (shape, dtype, data|None)} and [(OP, ins, outs, options)]: no TensorFlow needed."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as S

    types = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32, "float32": S.TensorType.FLOAT32}
    m = S.ModelT()
    m.version, m.buffers, m.operatorCodes = 3, [S.BufferT()], []
    sg = S.SubGraphT()
    sg.tensors, sg.operators = [], []
    index = {}
    for name, (shape, dtype, data) in tensors.items():
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), types[dtype], 0
        if dtype != "float32":
            q = S.QuantizationParametersT()
            q.scale, q.zeroPoint = [0.05], [0]
            t.quantization = q
        if data is not None:
            b = S.BufferT()
            b.data = np.asarray(data, dtype=dtype).tobytes()
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        index[name] = len(sg.tensors)
        sg.tensors.append(t)
    codes = {}
    for op, ins, outs, opts in ops:
        if op not in codes:
            c = S.OperatorCodeT()
            custom = op.islower()
            c.builtinCode = S.BuiltinOperator.CUSTOM if custom else getattr(S.BuiltinOperator, op)
            c.deprecatedBuiltinCode = min(c.builtinCode, 127)
            c.customCode, c.version = (op.encode() if custom else None), 1
            codes[op] = len(m.operatorCodes)
            m.operatorCodes.append(c)
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes[op], [index[i] for i in ins], [index[i] for i in outs]
        if op == "CONV_2D":
            opts = S.Conv2DOptionsT()
            opts.strideH = opts.strideW = 1
            o.builtinOptionsType, o.builtinOptions = S.BuiltinOptions.Conv2DOptions, opts
        elif opts is not None:
            o.builtinOptionsType, o.builtinOptions = opts
        if op.islower():
            o.customOptions = list(b"\x01" * 4096)  # stands in for the compiled code + parameters
        sg.operators.append(o)
    sg.inputs, sg.outputs = [index[i] for i in inputs], [index[i] for i in outputs]
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(b.Output())
    return path


def _conv_chain(tmp_path, middle="LEAKY_RELU", act="int8"):
    import numpy as np

    rng = np.random.default_rng(0)
    t = {"x": ((1, 8, 8, 1), act, None), "w": ((4, 3, 3, 1), "int8", rng.integers(-5, 5, (4, 3, 3, 1))),
         "b": ((4,), "int32", np.zeros(4)), "c": ((1, 6, 6, 4), act, None), "m": ((1, 6, 6, 4), act, None),
         "w2": ((4, 3, 3, 4), "int8", rng.integers(-5, 5, (4, 3, 3, 4))), "y": ((1, 4, 4, 4), act, None)}
    ops = [("CONV_2D", ["x", "w", "b"], ["c"], None), (middle, ["c"], ["m"], None),
           ("CONV_2D", ["m", "w2", "b"], ["y"], None)]
    return _tflite(tmp_path / f"chain_{middle}_{act}.tflite", t, ops, ["x"], ["y"])


def test_plan_stops_mapping_after_the_first_unsupported_op(tmp_path):
    from edgeml.targets.edgetpu_plan import plan

    p = plan(_conv_chain(tmp_path), target="coral-usb").to_dict()
    assert (p["ops_on_edgetpu"], p["ops_on_cpu"]) == (1, 2) and p["compiles"]
    first, second = p["cpu_ops"]
    assert first["op"] == "LEAKY_RELU" and "not supported" in first["reason"] and "#597" in first["reason"]
    assert second["op"] == "CONV_2D" and "More than one subgraph" in second["reason"]
    ok = plan(_conv_chain(tmp_path, "RELU"), target="coral-usb")
    assert ok.ops_on_edgetpu == 3 and ok.ops_on_cpu == 0 and ok.cached_weight_bytes == 36 + 144 + 16


def test_plan_names_an_unknown_op_and_treats_it_as_cpu(tmp_path):
    from edgeml.targets.edgetpu_plan import plan

    p = plan(_conv_chain(tmp_path, "GELU"), target="coral-usb")
    assert p.ops[1].where == "cpu" and "not in edgeml's Edge TPU op table" in p.ops[1].reason


def test_plan_float_activations_are_an_unsupported_data_type(tmp_path):
    from edgeml.targets.edgetpu_plan import plan

    p = plan(_conv_chain(tmp_path, "RELU", act="float32"), target="coral-usb")
    assert p.ops_on_edgetpu == 0 and "unsupported data type (float32)" in p.ops[0].reason
    assert not p.compiles and "no op can run on the Edge TPU" in p.blockers[0]


def test_plan_checks_documented_constraints(tmp_path):
    import numpy as np

    from edgeml.targets.edgetpu_plan import plan

    t = {"x": ((1, 4, 4, 8), "int8", None), "ax": ((1,), "int32", np.array([3])), "m": ((1, 4, 4), "int8", None),
         "ax2": ((2,), "int32", np.array([1, 2])), "g": ((1, 8), "int8", None)}
    p = plan(_tflite(tmp_path / "mean.tflite", t, [("MEAN", ["x", "ax"], ["m"], None),
                                                   ("MEAN", ["x", "ax2"], ["g"], None)], ["x"], ["m", "g"]))
    assert p.ops[0].where == "cpu" and "x/y only" in p.ops[0].reason
    assert p.ops[1].where == "edgetpu"  # a parallel path is not blocked by the CPU op
    t = {"x": ((1, 2, 3, 4, 5), "int8", None), "y": ((1, 2, 3, 4, 5), "int8", None)}
    p = plan(_tflite(tmp_path / "rank5.tflite", t, [("RELU", ["x"], ["y"], None)], ["x"], ["y"]))
    assert "more than 3 dimensions larger than 1" in p.ops[0].reason


def test_plan_streams_weights_beyond_the_parameter_cache(tmp_path):
    from edgeml.targets.edgetpu_plan import plan

    prof = tmp_path / "tiny-cache.toml"
    text = (Path(est.__file__).parent / "profiles" / "coral-usb.toml").read_text()
    prof.write_text(text.replace('name = "coral-usb"', 'name = "tiny-cache"').replace(
        "param_cache_mib = 8.0", "param_cache_mib = 0.0001"))
    p = plan(_conv_chain(tmp_path, "RELU"), target=str(prof))
    assert p.cache_bytes == 104 and p.cached_weight_bytes == 104 and p.streamed_weight_bytes == 196 - 104


def test_plan_refuses_a_file_it_cannot_parse(tmp_path):
    from edgeml.errors import ModelLoadError
    from edgeml.targets.edgetpu_plan import plan

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="cannot parse"):
        plan(bad)


def test_compile_plan_cli_json_and_text(tmp_path):
    model = _conv_chain(tmp_path)
    res = CliRunner().invoke(cli, ["compile", str(model), "--target", "coral-usb", "--plan", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["schema"] == "edgeml.edgetpu_plan/1" and d["ops_on_cpu"] == 2 and "streamed_weight_bytes" in d
    res = CliRunner().invoke(cli, ["compile", str(model), "--plan"])
    assert res.exit_code == 0 and "LEAKY_RELU" in res.stdout and "edgetpu_compiler decides" in res.stdout


# edgetpu_compiler 16 output as posted in google-coral/edgetpu#342 (summary) and #147 (memory lines)
RECORDED_LOG = """Edge TPU Compiler version 16.0.384591198
Input size: 5.58MiB
On-chip memory used for caching model parameters: 21.75KiB
On-chip memory remaining for caching model parameters: 7.45MiB
Off-chip memory used for streaming uncached model parameters: 3.00KiB
Number of Edge TPU subgraphs: 1
Total number of operations: 3
Number of operations that will run on Edge TPU: 1
Number of operations that will run on CPU: 2

Operator                       Count      Status

LEAKY_RELU                     1          Operation not supported
CONV_2D                        1          More than one subgraph is not supported
CONV_2D                        1          Mapped to Edge TPU
"""


def test_compiler_log_is_parsed_and_compared_with_the_plan(tmp_path):
    from edgeml.targets.edgetpu_log import compare, parse_log
    from edgeml.targets.edgetpu_plan import plan

    log = parse_log(RECORDED_LOG)
    assert log["compiler_major"] == 16 and log["on_chip_used"] == 22272 and log["off_chip_streamed"] == 3072
    assert ("CONV_2D", 1, "Mapped to Edge TPU") in log["rows"]
    p = plan(_conv_chain(tmp_path)).to_dict()
    assert compare(p, log)["agree"]
    other = compare(plan(_conv_chain(tmp_path, "RELU")).to_dict(), log)
    assert not other["agree"] and {d["op"] for d in other["by_op"]} == {"CONV_2D", "LEAKY_RELU", "RELU"}


def test_compiled_edgetpu_model_is_estimated_as_a_labelled_lower_bound(tmp_path):
    t = {"x": ((1, 8, 8, 1), "int8", None), "c": ((1, 6, 6, 4), "int8", None), "m": ((1, 6, 6, 4), "int8", None)}
    m = _tflite(tmp_path / "m_edgetpu.tflite", t, [("edgetpu-custom-op", ["x"], ["c"], None),
                                                   ("LEAKY_RELU", ["c"], ["m"], None)], ["x"], ["m"])
    e = est.estimate(m, target="coral-usb")
    assert e.lower_bound and e.plan["compiled"] and e.plan["ops_on_cpu"] == 1
    assert e.ms >= e.floor_ms > 0 and any("LOWER BOUND" in n for n in e.notes)
    assert e.breakdown["cpu_fallback_ms"] > 0
    with pytest.raises(EdgeMLError, match="runs only on Coral"):
        est.estimate(m, target="rpi4")


def test_coral_estimate_uses_the_plan_and_costs_cpu_ops_on_the_host(tmp_path):
    full = est.estimate(_conv_chain(tmp_path, "RELU"), target="coral-usb")
    split = est.estimate(_conv_chain(tmp_path), target="coral-usb")
    assert full.plan["ops_on_cpu"] == 0 and full.breakdown["cpu_fallback_ms"] == 0
    assert split.plan["ops_on_cpu"] == 2 and split.breakdown["cpu_fallback_ms"] > 0
    res = CliRunner().invoke(cli, ["bench", str(_conv_chain(tmp_path)), "--target", "coral-usb"])
    assert res.exit_code == 0 and "Edge TPU plan" in res.stdout


def test_tiny_model_rests_on_the_runtime_floor_not_a_fitted_constant(tiny_onnx):
    for target in ("rpi4", "rpi5", "jetson-nano", "jetson-orin-nano"):
        e = est.estimate(tiny_onnx, target=target)
        profile = load_profile(target)
        floor = profile.overhead["invoke_ms"] + 2 * profile.overhead["per_op_ms"]  # 2 compute layers
        assert e.floor_ms == pytest.approx(floor) and e.ms >= floor
    assert est.estimate(tiny_onnx, target="rpi4").ms < 0.2  # microseconds on a Pi, not milliseconds
    assert est.estimate(tiny_onnx, target="jetson-orin-nano").ms >= 0.05  # never under the launch overhead


def test_estimate_refuses_unknown_dims_and_uncounted_recurrent_ops():
    from types import SimpleNamespace

    from edgeml.formats.common import LayerInfo, TensorSpec

    dyn = SimpleNamespace(inputs=[TensorSpec("img", (None, 3, None, None), "float32")], layers=[])
    with pytest.raises(EdgeMLError, match=r"unknown dims \[2, 3\]"):
        est.refuse_unknown_cost(dyn, "det.onnx")
    rnn = SimpleNamespace(inputs=[], layers=[LayerInfo("lstm", "UNIDIRECTIONAL_SEQUENCE_LSTM", 0)])
    with pytest.raises(EdgeMLError, match="recurrent op UNIDIRECTIONAL_SEQUENCE_LSTM"):
        est.refuse_unknown_cost(rnn, "kws.tflite")
    with pytest.raises(EdgeMLError, match="partial"):
        est.refuse_unknown_cost(SimpleNamespace(macs_partial=True, inputs=[], layers=[]), "m.onnx")


def test_fit_refuses_results_from_another_machine(tmp_path, tiny_onnx):
    import platform

    r = bench([tiny_onnx], runs=5).to_dict()
    (tmp_path / "host.json").write_text(json.dumps(r))
    if platform.machine() != "aarch64":
        with pytest.raises(EdgeMLError, match="coefficients would describe another machine"):
            est_fit.fit_from_bench([tmp_path / "host.json"], "rpi4")
    r["environment"] = None
    (tmp_path / "noenv.json").write_text(json.dumps(r))
    with pytest.raises(EdgeMLError, match="records no environment"):
        est_fit.fit_from_bench([tmp_path / "noenv.json"], "rpi4")


def test_fit_needs_fields_and_names_the_file(tmp_path):
    bad = {"schema": "edgeml.bench/1", "measured": True, "environment": {"arch": "aarch64"},
           "models": [{"name": "m", "path": "m.tflite"}]}
    (tmp_path / "r.json").write_text(json.dumps(bad))
    with pytest.raises(EdgeMLError, match=r"r\.json: model entry 0 lacks latency_ms"):
        est_fit.fit_from_bench([tmp_path / "r.json"], "rpi4")


def test_fit_never_fits_more_coefficients_than_independent_points(tiny_onnx):
    from edgeml.artifact import ModelArtifact

    info = ModelArtifact.open(tiny_onnx).inspect()
    profile = load_profile("rpi4")
    one = est_fit.fit([("a", info, 0.05, 4)], profile, "fp32")
    assert one.n_coefficients == 1 and one.median_abs_error is None and "no held-out error" in one.basis("x")
    same = est_fit.fit([("a", info, 0.05, 4), ("b", info, 0.06, 4), ("c", info, 0.07, 4)], profile, "fp32")
    assert same.independent_points == 1 and same.n_coefficients == 1 and same.median_abs_error is not None


def test_compile_compares_the_compiler_log_with_the_plan(tmp_path, monkeypatch):
    import os
    import stat

    fake = tmp_path / "bin" / "edgetpu_compiler"  # prints a recorded compiler log (format of edgetpu#342)
    fake.parent.mkdir()
    (tmp_path / "bin" / "log.txt").write_text(RECORDED_LOG)
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'bin' / 'log.txt'}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    res = CliRunner().invoke(cli, ["compile", str(_conv_chain(tmp_path)), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "1 op(s) on the Edge TPU, 2 on the CPU" in res.stdout and "plan vs compiler: agree" in res.stdout
    res = CliRunner().invoke(cli, ["compile", str(_conv_chain(tmp_path, "RELU")), "--json"])
    d = json.loads(res.stdout)
    assert d["plan_comparison"]["agree"] is False and d["plan_comparison"]["by_op"]


def test_edge_tpu_fit_reads_the_source_of_a_compiled_model(tmp_path):
    src = _conv_chain(tmp_path)
    compiled = tmp_path / (src.stem + "_edgetpu.tflite")
    t = {"x": ((1, 8, 8, 1), "int8", None), "c": ((1, 6, 6, 4), "int8", None)}
    _tflite(compiled, t, [("edgetpu-custom-op", ["x"], ["c"], None)], ["x"], ["c"])
    result = {"schema": "edgeml.bench/1", "measured": True,
              "environment": {"arch": "aarch64", "cores": 4, "board": "Raspberry Pi 4 Model B Rev 1.4"},
              "models": [{"path": str(compiled), "latency_ms": {"p50": 2.0}, "runtime": "ai_edge_litert"}]}
    (tmp_path / "r.json").write_text(json.dumps(result))
    r = est_fit.fit_from_bench([tmp_path / "r.json"], "coral-usb")
    assert r.n_coefficients == 1 and r.points == 1 and r.errors[0]["estimated_ms"] == pytest.approx(2.0, rel=1e-3)
    src.unlink()
    with pytest.raises(EdgeMLError, match="is compiled; its MACs are not visible"):
        est_fit.fit_from_bench([tmp_path / "r.json"], "coral-usb")


def test_plan_keeps_float_io_conversions_on_the_cpu_without_splitting_the_graph(tmp_path):
    import numpy as np

    from edgeml.targets.edgetpu_plan import plan

    rng = np.random.default_rng(0)
    t = {"f": ((1, 8, 8, 1), "float32", None), "x": ((1, 8, 8, 1), "int8", None),
         "w": ((4, 3, 3, 1), "int8", rng.integers(-5, 5, (4, 3, 3, 1))), "b": ((4,), "int32", np.zeros(4)),
         "c": ((1, 6, 6, 4), "int8", None), "o": ((1, 6, 6, 4), "float32", None)}
    ops = [("QUANTIZE", ["f"], ["x"], None), ("CONV_2D", ["x", "w", "b"], ["c"], None),
           ("DEQUANTIZE", ["c"], ["o"], None)]
    p = plan(_tflite(tmp_path / "float_io.tflite", t, ops, ["f"], ["o"]))
    assert [o.where for o in p.ops] == ["cpu", "edgetpu", "cpu"] and all(p.ops[i].boundary for i in (0, 2))
    assert p.compiles and "first CPU op" not in p.summary()


def test_estimate_refuses_threads_beyond_the_cores_or_on_a_non_cpu_target(tiny_onnx):
    # rpi4 has 4 cores: 8 threads used to be estimated at 4 and reported as 8
    with pytest.raises(EdgeMLError, match=r"`threads` 8: target rpi4 has 4 cores") as exc:
        est.estimate(tiny_onnx, target="rpi4", threads=8)
    assert type(exc.value).__name__ == "UsageError"
    with pytest.raises(EdgeMLError, match=r"`threads` 2: target coral-usb is edgetpu, not a CPU"):
        est.estimate(tiny_onnx, target="coral-usb", threads=2)
    assert est.estimate(tiny_onnx, target="rpi4", threads=4).threads == 4
    res = CliRunner().invoke(cli, ["estimate", str(tiny_onnx), "--target", "jetson-orin-nano", "--threads", "2"])
    assert res.exit_code == 2 and "--threads 2: target jetson-orin-nano is gpu" in res.output


def test_bench_estimate_names_what_it_does_not_use_and_refuses_a_reference(tiny_onnx):
    r = bench([tiny_onnx], target="rpi4", runs=200, min_time=1.0)
    assert any("`runs`, `min_time` not used" in n for n in r.notes)
    assert not any("not used" in n for n in bench([tiny_onnx], target="rpi4").notes)
    with pytest.raises(EdgeMLError, match=r"`reference` .* nothing is compared"):
        bench([tiny_onnx], target="rpi4", reference=tiny_onnx)
    with pytest.raises(EdgeMLError, match=r"`threads` 16: target rpi4 has 4 cores"):
        bench([tiny_onnx, tiny_onnx], target="rpi4", threads=16)
    res = CliRunner().invoke(cli, ["bench", str(tiny_onnx), "--target", "rpi4", "--runs", "200"])
    assert res.exit_code == 0 and "note: --runs not used: nothing was run to time" in res.stdout


def test_profile_refuses_an_unknown_key_in_its_tables(tmp_path, tiny_onnx):
    # `in8` used to be ignored: int8 then estimated at the fp32 peak, silently
    text = (Path(est.__file__).parent / "profiles" / "rpi4.toml").read_text().replace("int8 = 96.0", "in8 = 96.0")
    p = tmp_path / "my-rpi4.toml"
    p.write_text(text)
    with pytest.raises(EdgeMLError, match=r"unknown key 'in8' in \[peak_gops\]") as exc:
        est.estimate(tiny_onnx, target=str(p))
    assert "did you mean 'int8'?" in (exc.value.hint or "")


def test_precision_without_published_figures_names_the_fitted_ones(tiny_onnx):
    """rpi4 has fp32 and int8 fits only: fp16 is refused saying so (it used to speak of a missing [estimate]
    coef key), in parameters for Python and in flags on the command line."""
    with pytest.raises(EdgeMLError) as err:
        est.estimate(tiny_onnx, target="rpi4", precision="fp16")
    assert "no published figures for fp16" in err.value.message and "fitted: fp32, int8" in err.value.message
    assert "`precision='fp32'`" in err.value.hint
    res = CliRunner().invoke(cli, ["estimate", str(tiny_onnx), "--target", "rpi4", "--precision", "fp16"])
    assert res.exit_code == 3 and "--precision fp32 or --precision int8" in res.output
