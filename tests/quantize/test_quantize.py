"""edgeml quantize: TFLite (converter, AI Edge Quantizer) and ONNX QDQ, with per-layer error."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import helpers
from edgeml.artifact import inspect_model
from edgeml.cli import cli as main
from edgeml.errors import DataError, EdgeMLError
from edgeml.quantize import quantize

TRAIN = "builtin:digits?split=train"
TEST = "builtin:digits?split=test"


def test_keras_to_full_int8_tflite_keeps_accuracy_and_shrinks(tmp_path, digits_keras):
    r = quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.tflite", eval=TEST)
    info = inspect_model(tmp_path / "q.tflite")
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert info.inputs[0].quantization is not None
    assert set(info.weight_dtypes) <= {"int8", "int32"}
    assert r.float_ops == []
    assert r.size_after_bytes < 0.4 * r.size_before_bytes
    assert r.calibration["samples"] == 200
    assert r.accuracy["quantized_top1"] >= r.accuracy["float_top1"] - 0.02
    assert r.metrics.argmax_agreement >= 0.9 and r.metrics.cosine > 0.99
    sqnr = [e.sqnr_db for e in r.layers]
    assert len(sqnr) >= 4 and sqnr == sorted(sqnr)  # worst first
    assert {e.op for e in r.layers} >= {"CONV_2D", "FULLY_CONNECTED"}


def test_io_float32_keeps_float_interface(tmp_path, digits_keras):
    quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.tflite", io="float32", calib_samples=60)
    info = inspect_model(tmp_path / "q.tflite")
    assert info.inputs[0].dtype == "float32" and "int8" in info.weight_dtypes


@pytest.mark.parametrize("mode, weight", [("dynamic", "int8"), ("float16", "float16")])
def test_weight_only_modes_need_no_calibration(tmp_path, digits_keras, mode, weight):
    r = quantize(digits_keras, out=tmp_path / "q.tflite", mode=mode)
    info = inspect_model(tmp_path / "q.tflite")
    assert r.io == "float32" and weight in info.weight_dtypes and r.calibration is None


def test_keras_to_onnx_qdq_uses_host_recipe_uint8_activations(tmp_path, digits_keras):
    r = quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.onnx", format="onnx", eval=TEST, calib_samples=100)
    model = onnx.load(str(tmp_path / "q.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    zp = {i.name: i for i in model.graph.initializer}
    act_zps = [zp[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert act_zps and all(z.data_type == onnx.TensorProto.UINT8 for z in act_zps)
    assert r.recipe["activation_type"] == "uint8" and r.recipe["per_channel"] is True
    assert r.accuracy["quantized_top1"] >= r.accuracy["float_top1"] - 0.02
    assert r.layers and r.layers[0].sqnr_db <= r.layers[-1].sqnr_db
    assert r.size_after_bytes < 0.5 * r.size_before_bytes


def test_jetson_recipe_is_symmetric_int8_for_tensorrt(tmp_path, digits_keras):
    r = quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.onnx", target="jetson-orin-nano", calib_samples=60)
    assert r.format == "onnx"  # Jetson prefers ONNX
    model = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zps = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_onnx_calibration_methods(tmp_path, tiny_onnx, method):
    r = quantize(tiny_onnx, calib="builtin:digits?split=train&layout=nchw", out=tmp_path / "q.onnx", method=method,
                 calib_samples=60)
    assert r.recipe["method"] == method and r.metrics.cosine > 0.9


def test_legacy_onnx_is_upgraded_and_constant_weights_quantized(tmp_path):
    src = helpers.onnx_legacy_constants(tmp_path / "legacy.onnx")
    r = quantize(src, calib="builtin:digits?split=train&layout=nchw", out=tmp_path / "q.onnx", calib_samples=60)
    model = onnx.load(str(tmp_path / "q.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert any("opset 11 -> 13" in n for n in r.notes)
    assert sum(1 for n in model.graph.node if n.op_type == "DequantizeLinear") >= 4  # weights too
    assert r.metrics.cosine > 0.99


def test_float_tflite_is_quantized_with_ai_edge_quantizer(tmp_path, tiny_tflite):
    r = quantize(tiny_tflite, calib=TRAIN, out=tmp_path / "q.tflite", calib_samples=60)
    info = inspect_model(tmp_path / "q.tflite")
    assert r.recipe["quantizer"] == "ai-edge-quantizer"
    assert info.inputs[0].dtype == "int8" and "int8" in info.weight_dtypes
    assert r.metrics.cosine > 0.9


def test_coral_refuses_ops_that_cannot_be_int8_and_names_them(tmp_path):
    src = helpers.keras_with_sin(tmp_path / "sin_sm")
    out = tmp_path / "q.tflite"
    with pytest.raises(EdgeMLError, match=r"coral-usb needs every op in int8.*SIN"):
        quantize(src, calib=TRAIN, out=out, target="coral-usb", calib_samples=60)
    assert not out.exists()
    r = quantize(src, calib=TRAIN, out=out, calib_samples=60)  # the host allows float fallback, and says so
    assert any(op.startswith("SIN") for op in r.float_ops) and r.warnings


def test_already_quantized_model_is_refused(tmp_path, digits_keras):
    quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.tflite", calib_samples=60)
    with pytest.raises(EdgeMLError, match="already quantized"):
        quantize(tmp_path / "q.tflite", calib=TRAIN, out=tmp_path / "qq.tflite")
    assert not (tmp_path / "qq.tflite").exists()


@pytest.mark.parametrize("kwargs, match", [
    ({}, "needs calibration data"),
    ({"calib": TRAIN, "method": "entropy"}, "min/max ranges only"),
    ({"calib": TRAIN, "target": "esp32"}, "unknown target"),
    ({"calib": TRAIN, "format": "onnx", "io": "uint8"}, "keep float32"),
    ({"calib": TRAIN, "mode": "int16x8", "io": "int8"}, "does not apply"),
    ({"calib": TRAIN, "target": "coral-usb", "mode": "float16"}, "full-int8 models only"),
    ({"calib": TRAIN, "target": "coral-usb", "format": "onnx"}, "does not run onnx"),
])
def test_bad_options_are_one_line_errors_without_output(tmp_path, digits_keras, kwargs, match):
    out = tmp_path / "q.tflite"
    with pytest.raises(EdgeMLError, match=match):
        quantize(digits_keras, out=out, **kwargs)
    assert not out.exists()


def test_calibration_data_that_does_not_fit_the_model(tmp_path, digits_keras):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((10, 16, 16, 1), np.float32))
    with pytest.raises(DataError, match=r"expects per-sample shape \[8, 8, 1\]"):
        quantize(digits_keras, calib=str(tmp_path / "wrong.npz"), out=tmp_path / "q.tflite")
    bad = np.zeros((10, 8, 8, 1), np.float32)
    bad[3, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad)
    with pytest.raises(DataError, match="NaN"):
        quantize(digits_keras, calib=str(tmp_path / "nan.npz"), out=tmp_path / "q.tflite")
    assert not (tmp_path / "q.tflite").exists()


def test_few_calibration_samples_warn(tmp_path, digits_keras):
    r = quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.tflite", calib_samples=10)
    assert any("only 10 calibration samples" in w for w in r.warnings)


def test_cli_prints_summary_and_writes_reports(tmp_path, digits_keras):
    runner = CliRunner()
    md = tmp_path / "report.md"
    res = runner.invoke(main, ["quantize", str(digits_keras), "--calib", TRAIN, "--calib-samples", "60",
                               "-o", str(tmp_path / "q.tflite"), "--report", str(md)])
    assert res.exit_code == 0, res.output
    assert "worst layers" in res.stdout and "SQNR" in res.stdout and "size" in res.stdout
    assert "| layer (worst first) | op | SQNR dB | MSE |" in md.read_text()
    res = runner.invoke(main, ["quantize", str(digits_keras), "--calib", TRAIN, "--calib-samples", "60",
                               "-o", str(tmp_path / "q2.onnx"), "--format", "onnx", "--json",
                               "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == "edgeml.quantize/1" and data["format"] == "onnx" and data["layers"]
    assert json.loads((tmp_path / "r.json").read_text())["schema"] == "edgeml.quantize/1"  # strict JSON


def test_cli_error_is_one_line_exit_3(tmp_path, digits_keras):
    res = CliRunner().invoke(main, ["quantize", str(digits_keras), "-o", str(tmp_path / "q.tflite")])
    assert res.exit_code == 3
    assert "error: --mode int8 needs calibration data" in res.output and "Traceback" not in res.output


# --- published .tflite files: no signature, hybrid weights (issue 24 item 6) ------------------------------

def _old_schema_without_signature(model, S) -> None:
    """As 2019 MediaPipe files are: no SignatureDef, ops only in deprecated_builtin_code (builtin_code 0)."""
    model.signatureDefs = []
    for oc in model.operatorCodes:
        oc.deprecatedBuiltinCode = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        oc.builtinCode = 0


@pytest.fixture(scope="module")
def nosig_tflite(tmp_path_factory, tiny_tflite):
    """The tiny float .tflite without a SignatureDef and with old-schema operator codes."""
    return helpers.edit_tflite(tiny_tflite, tmp_path_factory.mktemp("nosig") / "nosig.tflite",
                               _old_schema_without_signature)


@pytest.fixture(scope="module")
def hybrid_tflite(tmp_path_factory, tiny_keras_model):
    """Dynamic-range ("hybrid") .tflite: float activations, the Dense weights stored as int8."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        tiny_keras_model.export(d, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        path = tmp_path_factory.mktemp("hybrid") / "hybrid.tflite"
        path.write_bytes(conv.convert())
    return path


def test_float_tflite_without_signature_is_quantized_and_stays_without_one(tmp_path, nosig_tflite):
    from edgeml.runtimes.litert import load_interpreter

    assert load_interpreter(nosig_tflite, allocate=False).get_signature_list() == {}
    r = quantize(nosig_tflite, calib=TRAIN, out=tmp_path / "q.tflite", calib_samples=60)
    assert load_interpreter(tmp_path / "q.tflite", allocate=False).get_signature_list() == {}
    info = inspect_model(tmp_path / "q.tflite")
    assert info.inputs[0].dtype == "int8" and "int8" in info.weight_dtypes
    assert any("no SignatureDef" in n for n in r.notes) and any("operator code(s)" in n for n in r.notes)
    assert r.metrics.cosine > 0.98 and r.fidelity["status"] == "ok"
    assert r.metrics.argmax_agreement is not None  # FULLY_CONNECTED head: a classifier output


def test_hybrid_tflite_is_dequantized_and_quantized_fully_with_a_note(tmp_path, hybrid_tflite):
    from edgeml.formats.tflite_edit import dequantize_weights, hybrid_weights
    from edgeml.runtimes.session import open_session

    data = hybrid_tflite.read_bytes()
    assert hybrid_weights(data)  # int8 weights, float activations
    float_path = tmp_path / "deq.tflite"
    float_path.write_bytes(dequantize_weights(data)[0])
    assert dequantize_weights(data)[1] == len(hybrid_weights(data))
    assert hybrid_weights(float_path.read_bytes()) is None
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    a = open_session(hybrid_tflite).run({"image": x})["output_0"]
    b = open_session(float_path).run({"image": x})["output_0"]
    assert np.abs(a - b).max() < 0.05 * np.abs(b).max()  # same weights; only the hybrid's dynamic activations differ
    res = CliRunner().invoke(main, ["quantize", str(hybrid_tflite), "--calib", TRAIN, "--calib-samples", "60",
                                    "-o", str(tmp_path / "q.tflite")])
    assert res.exit_code == 0, res.output
    assert "hybrid (dynamic-range) model" in res.output and "dequantized" in res.output
    assert inspect_model(tmp_path / "q.tflite").inputs[0].dtype == "int8"


def test_float16_weights_behind_dequantize_are_folded_then_quantized(tmp_path, tiny_keras_model):
    """MediaPipe stores weights as float16 + DEQUANTIZE; AI Edge Quantizer needs them as constants."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        tiny_keras_model.export(d, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
        (tmp_path / "fp16.tflite").write_bytes(conv.convert())
    assert "DEQUANTIZE" in inspect_model(tmp_path / "fp16.tflite").ops
    r = quantize(tmp_path / "fp16.tflite", calib=TRAIN, out=tmp_path / "q.tflite", calib_samples=60)
    assert any("DEQUANTIZE op(s) of stored" in n for n in r.notes)
    assert r.fidelity["status"] == "ok" and "int8" in inspect_model(tmp_path / "q.tflite").weight_dtypes


def test_full_int8_tflite_is_still_refused_as_already_quantized(tmp_path, digits_keras):
    from edgeml.formats.tflite_edit import hybrid_weights

    quantize(digits_keras, calib=TRAIN, out=tmp_path / "q.tflite", calib_samples=60)
    assert hybrid_weights((tmp_path / "q.tflite").read_bytes()) is None


# --- the fidelity gate (issue 24 item 8) --------------------------------------------------------------------

def _onnx_one_huge_channel(path):
    """Grouped Conv on [N, 2, 8, 8]: output channel 0 reads input channel 0 (always 0 in the data) with weights
    ~1000x the others. Per-tensor weight scales round every other channel's weights to 0: the classifier
    output collapses to its bias. Per-channel scales are unaffected."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    w[0] *= 3000.0
    fw = rng.normal(0, 0.3, (144, 10)).astype(np.float32)
    fw[:36] = 0.0  # channel 0 does not reach the output
    inits = [numpy_helper.from_array(w, "conv_w"), numpy_helper.from_array(np.full(4, 0.05, np.float32), "conv_b"),
             numpy_helper.from_array(fw, "fc_w"),
             numpy_helper.from_array(rng.normal(0, 0.01, 10).astype(np.float32), "fc_b")]
    nodes = [helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], group=2),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"])]
    graph = helper.make_graph(nodes, "huge_channel", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                     ["N", 2, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    x = np.zeros((80, 2, 8, 8), np.float32)
    x[:, 1] = np.random.default_rng(1).random((80, 8, 8))
    np.savez(path.with_suffix(".npz"), x=x)
    return path, str(path.with_suffix(".npz"))


def test_per_tensor_collapse_fails_the_fidelity_gate_exit_1_nothing_written(tmp_path):
    src, calib = _onnx_one_huge_channel(tmp_path / "huge.onnx")
    good = quantize(src, calib=calib, out=tmp_path / "pc.onnx", calib_samples=64)  # per-channel copes
    assert good.fidelity["status"] == "ok" and good.metrics.argmax_agreement >= 0.9
    out = tmp_path / "pt.onnx"
    res = CliRunner().invoke(main, ["quantize", str(src), "--calib", calib, "--calib-samples", "64",
                                    "--per-tensor", "-o", str(out)])
    assert res.exit_code == 1, res.output
    assert "fails its fidelity check" in res.output and "nothing was written" in res.output
    assert "hint: try --per-channel" in res.output
    assert not out.exists() and not list(tmp_path.glob(".pt.onnx*"))
    res = CliRunner().invoke(main, ["quantize", str(src), "--calib", calib, "--calib-samples", "64",
                                    "--per-tensor", "-o", str(out), "--keep-degraded"])
    assert res.exit_code == 1 and out.exists()
    assert "fidelity  BROKEN" in res.output and "kept at the output" in res.output


def _onnx_constant_of_shape_weights(path, value: float = 0.0):
    """A ~400-byte ONNX whose 1024x2048 Gemm weight is built at run time by ConstantOfShape (placeholder export)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ConstantOfShape", ["w_shape"], ["w"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [value])),
             helper.make_node("Gemm", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "placeholder",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2048])],
                              [numpy_helper.from_array(np.array([1024, 2048], np.int64), "w_shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_constant_of_shape_weights_growing_the_model_are_refused_with_the_reason(tmp_path):
    src = _onnx_constant_of_shape_weights(tmp_path / "ph.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((20, 1024), dtype=np.float32))
    calib, out = str(tmp_path / "x.npz"), tmp_path / "q.onnx"
    with pytest.raises(EdgeMLError, match=r"the source builds tensors at run time \(ConstantOfShape x1\)") as e:
        quantize(src, calib=calib, out=out)
    assert e.value.exit_code == 1 and not out.exists()
    r = quantize(src, calib=calib, out=out, keep_degraded=True)
    assert r.fidelity["status"] == "broken" and r.size_after_bytes > 100 * r.source_size_bytes
    assert r.metrics.degenerate and r.metrics.argmax_agreement is None  # all-zero outputs: no argmax claimed
    from edgeml.quantize import summary_lines

    text = "\n".join(summary_lines(r))
    assert "constant in the float model" in text and "argmax agreement" not in text


def test_ort_internal_error_is_named_not_blamed_on_the_data(tmp_path, tiny_onnx, monkeypatch):
    import onnxruntime.quantization as oq

    def broken(*a, **k):
        raise KeyError("quant_param_of_Conv")

    monkeypatch.setattr(oq, "quantize_static", broken)
    with pytest.raises(EdgeMLError, match=r"quantizer failed internally.*KeyError") as e:
        quantize(tiny_onnx, calib="builtin:digits?split=train&layout=nchw", out=tmp_path / "q.onnx",
                 calib_samples=20)
    assert "calibration data" not in str(e.value) and "not a data problem" in e.value.hint


def test_argmax_is_judged_on_classifier_heads_only(tmp_path, tiny_onnx, tiny_tflite):
    """A [N, K] output made by a convolution (landmarks, as MediaPipe's) has no meaningful argmax."""
    from onnx import TensorProto, helper, numpy_helper

    from edgeml.quantize.heads import classifier_outputs

    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 144], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
                               helper.make_node("Reshape", ["c", "shape"], ["landmarks"])], "lm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 144])], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "lm.onnx"))
    assert classifier_outputs(tmp_path / "lm.onnx", "onnx", ["landmarks"]) == set()
    assert classifier_outputs(tiny_onnx, "onnx", ["logits"]) == {"logits"}
    assert classifier_outputs(tiny_tflite, "tflite", ["output_0"]) == {"output_0"}
    r = quantize(tmp_path / "lm.onnx", calib="builtin:digits?split=train&layout=nchw", out=tmp_path / "q.onnx",
                 calib_samples=60)
    assert r.metrics.argmax_agreement is None and "argmax" not in " ".join(r.fidelity["broken"])


def test_coral_quantize_fixes_batch_1_so_flatten_maps_to_the_edge_tpu(tmp_path, tiny_keras):
    """A dynamic batch turned Flatten into SHAPE/STRIDED_SLICE/PACK/RESHAPE: the plan put 6 of 8 ops on the CPU."""
    from edgeml.artifact import inspect_model
    from edgeml.targets.edgetpu_plan import plan

    out = tmp_path / "coral.tflite"
    r = quantize(tiny_keras, calib=TRAIN, out=out, target="coral-usb", calib_samples=40)
    info = inspect_model(out)
    assert info.inputs[0].shape[0] == 1
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(info.ops)
    p = plan(out, target="coral-usb")
    assert p.ops_on_cpu == 0 and p.ops_on_edgetpu == sum(info.ops.values())
    assert any("batch fixed to 1" in n for n in r.notes)


def test_dynamic_mode_is_timed_against_float_like_int8(tmp_path, tiny_onnx):
    """The speed comparison used to run for int8/int16x8 only: a dynamic model (often slower on a CPU host)
    got no speed line; without data to feed, it now says why it is not timed."""
    from edgeml.quantize import quantize

    np.savez(tmp_path / "d.npz", image=np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32))
    r = quantize(tiny_onnx, mode="dynamic", calib=str(tmp_path / "d.npz"), out=tmp_path / "d.onnx",
                 speed_seconds=0.2)
    assert r.speed is not None and set(r.speed["p50_ms"]) == {"float", "dynamic"}
    assert not [w for w in r.warnings if "calibration samples" in w]  # dynamic fixes no ranges from data
    r2 = quantize(tiny_onnx, mode="dynamic", out=tmp_path / "d2.onnx", speed_seconds=0.2)
    assert r2.speed is None and any("speed not measured" in w and "`calib`" in w for w in r2.warnings)
