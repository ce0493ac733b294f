"""quantize with an accuracy budget (issue 18): ranking, greedy fallback, bad input, honest speed."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgeml.cli import cli as main
from edgeml.errors import BudgetNotMet
from edgeml.quantize import quantize


def _outlier_onnx(folder, seed: int = 0):
    """x [N, 2, 8, 8] in [0, 1]. conv_a (1x1): output channel 0 = 500 * x0, channels 1-3 small mixes. conv_b
    (3x3) nearly ignores channel 0. The per-tensor activation range of 'a' is set by channel 0, so int8 rounds
    channels 1-3 to nothing and the logits collapse; keeping tensor 'a' in float fixes it. Labels: the float
    model's own argmax (float top-1 is 100 %)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    wa = rng.normal(0, 0.3, (4, 2, 1, 1)).astype(np.float32)
    wa[0] = 0
    wa[0, 0] = 500.0
    wb = rng.normal(0, 0.5, (4, 4, 3, 3)).astype(np.float32)
    wb[:, 0] *= 1e-4
    inits = [numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(np.zeros(4, np.float32), "ba"),
             numpy_helper.from_array(wb, "wb"), numpy_helper.from_array(np.zeros(4, np.float32), "bb"),
             numpy_helper.from_array(rng.normal(0, 0.3, (144, 10)).astype(np.float32), "fw"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "wb", "bb"], ["b"], name="conv_b", kernel_shape=[3, 3]),
             helper.make_node("Relu", ["b"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "outlier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "outlier.onnx"
    onnx.save(model, str(path))
    import onnxruntime as ort

    x = np.random.default_rng(1).random((80, 2, 8, 8)).astype(np.float32)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].argmax(1)
    np.savez(folder / "labelled.npz", x=x, y=y)
    np.savez(folder / "unlabelled.npz", x=x)
    return path, str(folder / "labelled.npz"), str(folder / "unlabelled.npz")


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    return _outlier_onnx(tmp_path_factory.mktemp("outlier"))


def test_min_fidelity_falls_back_the_outlier_tensor_and_meets_the_budget(tmp_path, outlier):
    src, _, calib = outlier
    r = quantize(src, calib=calib, out=tmp_path / "q.onnx", min_fidelity=0.99, report=tmp_path / "r.md")
    b = r.budget
    assert b["met"] and b["kind"] == "fidelity"
    assert b["plain"]["value"] < 0.5 <= 0.99 <= b["reached"]["value"]
    assert b["fallback"] == ["a"] and set(b["layers_in_float"]) == {"conv_a", "conv_b"}
    assert "calibration samples" in b["data"] and "in-sample" in b["data"]
    assert r.fidelity["status"] == "ok" and r.metrics.cosine > 0.99  # the written model is the budgeted one
    # the written file has no QDQ on 'a'
    qdq_in = {n.input[0] for n in onnx.load(str(tmp_path / "q.onnx")).graph.node if n.op_type == "QuantizeLinear"}
    assert "a" not in qdq_in
    md = (tmp_path / "r.md").read_text()
    assert "## Accuracy budget: output cosine >= 0.99 (worst output) (met)" in md
    assert "| 1 | `a` | Conv |" in md and "Decisions:" in md and "plain quantization: cosine" in md


def test_max_accuracy_drop_on_labelled_eval_meets_the_budget_with_the_fewest_layers(tmp_path, outlier):
    src, labelled, calib = outlier
    r = quantize(src, calib=calib, eval=labelled, out=tmp_path / "q.onnx", max_accuracy_drop=0.02)
    b = r.budget
    assert b["met"] and b["kind"] == "accuracy" and "`eval`" in b["data"]
    assert b["plain"]["value"] > 0.02 and b["reached"]["value"] <= 0.02
    assert b["fallback"] == ["a"]  # one tensor is enough: no more fall back
    assert r.accuracy["drop"] <= 0.02 + 1e-9
    ranked = {x["tensor"]: x for x in b["ranking"]}
    assert ranked["a"]["gain"] > 0.5 and b["ranking"][0]["tensor"] == "a"  # measured gain outranks SQNR
    assert b["evaluations"] >= 2 and b["plain_size_bytes"] > 0 and b["size_bytes"] > 0


def test_a_budget_that_plain_int8_meets_falls_back_nothing(tmp_path, tiny_onnx):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32))
    r = quantize(tiny_onnx, calib=str(tmp_path / "x.npz"), out=tmp_path / "q.onnx", min_fidelity=0.95)
    assert r.budget["met"] and r.budget["fallback"] == [] and r.budget["evaluations"] == 1
    assert r.budget["ranking"] == []


def test_unmet_budget_raises_names_the_layers_and_writes_nothing(tmp_path, outlier):
    src, _, calib = outlier
    out = tmp_path / "q.onnx"
    with pytest.raises(BudgetNotMet) as err:  # too few evaluations allowed to find the fix
        quantize(src, calib=calib, out=out, min_fidelity=0.99, max_evals=1)
    assert err.value.exit_code == 1
    assert "cannot be met" in err.value.message and "nothing was written" in err.value.message
    assert "best reached cosine" in err.value.message and "layers responsible" in err.value.message
    assert not out.exists() and not list(tmp_path.glob(".q.onnx*"))
    r = quantize(src, calib=calib, out=out, min_fidelity=0.99, max_evals=1, keep_best=True)
    assert out.exists() and not r.budget["met"]
    from edgeml.quantize import budget_unmet_error

    assert "`keep_best`" in budget_unmet_error(r).message


def _cli(*args):
    return CliRunner().invoke(main, ["quantize", *map(str, args)])


def test_max_accuracy_drop_without_eval_is_a_usage_error_naming_min_fidelity(tmp_path, outlier):
    src, _, calib = outlier
    res = _cli(src, "--calib", calib, "-o", tmp_path / "q.onnx", "--max-accuracy-drop", "0.01")
    assert res.exit_code == 2, res.output
    assert "--max-accuracy-drop needs labelled data" in res.output and "--min-fidelity" in res.output
    assert not (tmp_path / "q.onnx").exists()


def test_max_accuracy_drop_with_unlabelled_eval_is_a_usage_error_naming_min_fidelity(tmp_path, outlier):
    src, _, calib = outlier
    res = _cli(src, "--calib", calib, "--eval", calib, "-o", tmp_path / "q.onnx", "--max-accuracy-drop", "0.01")
    assert res.exit_code == 2, res.output
    assert "has no labels" in res.output and "--min-fidelity" in res.output
    assert "calibration" not in res.output  # refused before any work
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("args, match", [
    (["--max-accuracy-drop", "0.01", "--min-fidelity", "0.9"], "give one budget"),
    (["--max-accuracy-drop", "1.5"], "a top-1 drop as a fraction"),
    (["--max-accuracy-drop", "-0.1"], "a top-1 drop as a fraction"),
    (["--min-fidelity", "nan"], "not a finite number"),
    (["--min-fidelity", "2"], "a cosine similarity in [-1, 1]"),
    (["--min-fidelity", "0.9", "--mode", "dynamic"], "calibrated int8/int16x8"),
])
def test_bad_budgets_are_usage_errors_exit_2_nothing_written(tmp_path, outlier, args, match):
    src, labelled, _ = outlier
    res = _cli(src, "--calib", labelled, "--eval", labelled, "-o", tmp_path / "q.onnx", *args)
    assert res.exit_code == 2, res.output
    assert match in res.output and "Traceback" not in res.output
    assert not (tmp_path / "q.onnx").exists()


def test_cli_budget_prints_outcome_price_speed_and_json(tmp_path, outlier):
    src, labelled, calib = outlier
    res = _cli(src, "--calib", calib, "--eval", labelled, "-o", tmp_path / "q.onnx", "--max-accuracy-drop", "0.02",
               "--speed-seconds", "0.2", "--report", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert "budget    top-1 drop <= 2.00 pt: MET; plain top-1 drop" in res.output
    assert "price     size" in res.output and "speed     float" in res.output
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["budget"]["met"] and d["budget"]["decisions"][0].startswith("plain quantization")
    assert set(d["speed"]["p50_ms"]) == {"float", "int8", "plain"} and d["speed"]["rounds"] >= 10
    assert "latency_p50_ms" in d["budget"]


def test_cli_unmet_budget_with_keep_best_writes_and_exits_1(tmp_path, outlier, monkeypatch):
    from edgeml.quantize import budget

    monkeypatch.setattr(budget, "MAX_EVALS", 1)  # too few evaluations to find the fix
    src, _, calib = outlier
    out = tmp_path / "q.onnx"
    res = _cli(src, "--calib", calib, "-o", out, "--min-fidelity", "0.99", "--speed-seconds", "0")
    assert res.exit_code == 1 and "nothing was written" in res.output and not out.exists()
    res = _cli(src, "--calib", calib, "-o", out, "--min-fidelity", "0.99", "--speed-seconds", "0", "--keep-best")
    assert res.exit_code == 1 and out.exists()
    assert "budget    output cosine >= 0.99 (worst output): NOT MET" in res.output
    assert "the best reached was written (--keep-best)" in res.output


def test_speed_verdict_says_slower_plainly_and_claims_no_speedup():
    from edgeml.quantize.speed import verdict

    slow = {"p50_ms": {"float": 1.0, "int8": 2.0}, "speedup_vs_float": {"int8": 0.5}, "rounds": 50}
    line, advice = verdict(slow, "onnx")
    assert "int8 2.00x slower" in line and "faster" not in line
    assert "SLOWER than float on this host (measured)" in advice and "keep the float model" in advice
    fast = {"p50_ms": {"float": 2.0, "int8": 1.0}, "speedup_vs_float": {"int8": 2.0}, "rounds": 50}
    line, advice = verdict(fast, "tflite")
    assert advice is None and "2.00x faster" in line
    same = {"p50_ms": {"float": 1.0, "int8": 0.99}, "speedup_vs_float": {"int8": 1.01}, "rounds": 50}
    assert "no measurable difference" in verdict(same, "onnx")[0]


def test_compare_speed_interleaves_and_bounds_rounds(tiny_onnx):
    from edgeml.quantize.speed import compare_speed

    feed = {"image": np.zeros((1, 1, 8, 8), np.float32)}
    s = compare_speed({"float": tiny_onnx, "int8": tiny_onnx}, feed, seconds=0.0, max_rounds=25)
    assert s["rounds"] == 10 and set(s["p50_ms"]) == {"float", "int8"}  # MIN_ROUNDS when the time is up at once
    s = compare_speed({"float": tiny_onnx, "int8": tiny_onnx}, feed, seconds=60.0, max_rounds=25)
    assert s["rounds"] == 25 and "int8" in s["speedup_vs_float"]


def test_recipe_takes_the_budget_keys(tmp_path):
    from edgeml.pipeline import load_recipe

    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "r.toml").write_text('model = "m.onnx"\nout = "run"\ncalib = "builtin:digits"\nmin_fidelity = 0.99\n'
                                     'max_accuracy_drop = 0.01\n')
    r = load_recipe(tmp_path / "r.toml")
    assert r.min_fidelity == 0.99 and r.max_accuracy_drop == 0.01
    assert "min_fidelity = 0.99" in r.to_toml()


# --- TFLite: the converter's denylist, AI Edge Quantizer's per-op int16x8, full-int8 targets ------------------

@pytest.fixture(scope="module")
def outlier_keras(tmp_path_factory):
    """The same outlier network in Keras (NHWC), saved as .keras and as a float .tflite, with its data."""
    import keras

    folder = tmp_path_factory.mktemp("outlier_keras")
    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 2), name="x")
    a = keras.layers.Conv2D(4, 1, name="conv_a")(inp)
    b = keras.layers.Conv2D(4, 3, activation="relu", name="conv_b")(a)
    model = keras.Model(inp, keras.layers.Dense(10, name="fc")(keras.layers.Flatten()(b)))
    wa = rng.normal(0, 0.3, (1, 1, 2, 4)).astype(np.float32)
    wa[..., 0] = 0
    wa[0, 0, 0, 0] = 500.0
    wb = rng.normal(0, 0.5, (3, 3, 4, 4)).astype(np.float32)
    wb[:, :, 0] *= 1e-4
    model.get_layer("conv_a").set_weights([wa, np.zeros(4, np.float32)])
    model.get_layer("conv_b").set_weights([wb, np.zeros(4, np.float32)])
    model.get_layer("fc").set_weights([rng.normal(0, 0.3, (144, 10)).astype(np.float32), np.zeros(10, np.float32)])
    model.save(folder / "outlier.keras")
    import helpers

    helpers.keras_to_tflite(model, folder / "outlier.tflite")
    x = np.random.default_rng(1).random((60, 8, 8, 2)).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=model.predict(x, verbose=0).argmax(1))
    return folder / "outlier.keras", folder / "outlier.tflite", str(folder / "data.npz")


def test_keras_to_tflite_falls_back_with_the_converter_denylist(tmp_path, outlier_keras):
    src, _, data = outlier_keras
    r = quantize(src, calib=data, eval=data, out=tmp_path / "q.tflite", max_accuracy_drop=0.05)
    b = r.budget
    assert b["met"] and b["fallback_scheme"] == "float" and len(b["fallback"]) == 1
    assert "conv_a" in b["fallback"][0] and r.accuracy["drop"] <= 0.05
    assert any("CONV_2D" in op for op in r.float_ops)  # the fallen-back convolutions compute in float


def test_float_tflite_falls_back_to_int16x8_with_ai_edge_quantizer(tmp_path, outlier_keras):
    _, src, data = outlier_keras
    r = quantize(src, calib=data, out=tmp_path / "q.tflite", min_fidelity=0.98)
    b = r.budget
    assert b["met"] and b["fallback_scheme"] == "int16x8" and b["plain"]["value"] < 0.5
    assert any("conv_a" in k for k in b["fallback"])


def test_full_int8_target_allows_no_fallback_names_layers_and_suggests_qat(tmp_path, outlier_keras):
    src, _, data = outlier_keras
    out = tmp_path / "q.tflite"
    res = _cli(src, "--calib", data, "--target", "coral-usb", "-o", out, "--min-fidelity", "0.98")
    assert res.exit_code == 1, res.output
    assert "runs full-int8 models only, so no layer may stay float" in res.output
    assert "conv_a" in res.output.split("layers that break it:")[1]
    assert "quantization-aware training" in res.output and not out.exists()


def test_without_a_per_layer_report_the_search_ranks_quantized_activations_and_says_so(tmp_path, outlier,
                                                                                         monkeypatch):
    from edgeml.quantize import debug

    def fail(*a, **k):
        raise RuntimeError("every-tensor run failed")

    monkeypatch.setattr(debug, "onnx_layer_errors", fail)
    src, _, calib = outlier
    r = quantize(src, calib=calib, out=tmp_path / "q.onnx", min_fidelity=0.99)
    b = r.budget
    assert b["met"] and "a" in b["fallback"]
    assert any("per-layer SQNR unavailable" in d for d in b["decisions"])
    assert all(x["sqnr_db"] != x["sqnr_db"] for x in b["ranking"])  # NaN: not measured, not invented


# --- quantization-aware training (Keras 3, no tf_keras / TFMOT) ----------------------------------------------

def test_qat_clone_folds_conv_batchnorm_and_matches_float_before_training():
    import keras

    from edgeml.quantize.qat import qat_clone, strip

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw", activation="relu")(x)
    out = keras.layers.Dense(3, name="fc")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")
    bn.set_weights([np.full(4, 2.0, np.float32), np.full(4, 0.1, np.float32), np.zeros(4, np.float32),
                    np.full(4, 0.5, np.float32)])
    qmodel, wrapped, pairs = qat_clone(model)
    assert pairs == {"conv": "bn"} and set(wrapped) == {"conv", "bn", "dw", "fc"}
    assert "tf_keras" not in type(qmodel).__module__
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    ref = model.predict(x, verbose=0)
    got = qmodel.predict(x, verbose=0)  # no ranges seen yet: only the weights are fake-quantized
    assert 0 < np.abs(got - ref).max() < 0.05 * np.abs(ref).max()  # int8 weights: close, not identical
    qmodel(x, training=True)  # one training-mode pass records activation ranges
    assert float(qmodel.get_layer("fc").fq_hi.numpy()) > float(qmodel.get_layer("fc").fq_lo.numpy())
    before = [w.copy() for w in model.get_weights()]
    qmodel.get_layer("fc").kernel.assign(qmodel.get_layer("fc").kernel * 2.0)
    strip(model, qmodel)  # trained weights go back; the range variables do not
    assert len(model.get_weights()) == len(before)
    assert np.allclose(model.get_layer("fc").get_weights()[0], 2 * before[-2])


@pytest.mark.parametrize("args, match", [
    ([], "needs labelled training data: pass --train"),
    (["--train", "builtin:digits?split=train", "--format", "onnx"], "exports full-int8 TFLite"),
    (["--train", "builtin:digits?split=train", "--min-fidelity", "0.9"], "give one or the other"),
])
def test_qat_bad_options_are_usage_errors_exit_2(tmp_path, digits_keras, args, match):
    res = _cli(digits_keras, "--method", "qat", "--calib", "builtin:digits?split=train", "-o", tmp_path / "q.tflite",
               *args)
    assert res.exit_code == 2, res.output
    assert match in res.output and not (tmp_path / "q.tflite").exists()


def test_qat_needs_the_keras_source(tmp_path, tiny_onnx):
    res = _cli(tiny_onnx, "--method", "qat", "--train", "x.npz", "-o", tmp_path / "q.onnx")
    assert res.exit_code == 2 and "needs the Keras source" in res.output


def test_qat_exports_full_int8_at_least_as_accurate_as_ptq_and_records_training(tmp_path, digits_keras):
    from edgeml.formats.tflite import inspect as inspect_tflite

    out = tmp_path / "q.tflite"
    r = quantize(digits_keras, out=out, method="qat", train="builtin:digits?split=train", epochs=1,
                 eval="builtin:digits?split=test", calib_samples=100)
    t = r.training
    assert t["method"] == "qat" and t["epochs"] == 1 and t["wall_s"] > 0 and t["flops"] > 0
    assert t["written"] in ("qat", "ptq") and r.accuracy["quantized_top1"] >= t["ptq_top1"]
    assert r.accuracy["quantized_top1"] == max(t["qat_top1"], t["ptq_top1"])
    assert r.recipe["method"] == "qat" and r.float_ops == []  # full int8
    info = inspect_tflite(out)
    assert {i.dtype for i in info.inputs} == {"int8"}


def test_float_tflite_fallback_float_keeps_the_outlier_ops_in_float(tmp_path, outlier_keras):
    _, src, data = outlier_keras
    r = quantize(src, calib=data, out=tmp_path / "q.tflite", min_fidelity=0.98, fallback="float")
    assert r.budget["met"] and r.budget["fallback_scheme"] == "float"
    assert any("CONV_2D" in op for op in r.float_ops)


@pytest.mark.parametrize("args, match", [
    (["--fallback", "int16x8", "--min-fidelity", "0.9"], "--fallback int16x8 needs per-op precision"),
    (["--fallback", "float"], "--fallback applies to a budget"),
])
def test_fallback_option_misuse_is_a_usage_error(tmp_path, outlier, args, match):
    src, labelled, _ = outlier
    res = _cli(src, "--calib", labelled, "-o", tmp_path / "q.onnx", *args)
    assert res.exit_code == 2, res.output
    assert match in res.output and not (tmp_path / "q.onnx").exists()


# -- ONNX source -> int8 TFLite: the budget is applied there too (it was silently dropped) -------------------
def test_onnx_source_to_tflite_meets_an_accuracy_budget_on_eval_data_in_the_tflite_layout(tmp_path, outlier):
    pytest.importorskip("onnx2tf")
    pytest.importorskip("ai_edge_quantizer")
    src, data, calib = outlier
    r = quantize(src, format="tflite", calib=calib, eval=data, max_accuracy_drop=0.05, out=tmp_path / "q.tflite")
    b = r.budget
    assert b is not None and b["kind"] == "accuracy" and b["met"]
    assert b["plain"]["value"] > 0.05 >= b["reached"]["value"] and b["fallback"]  # plain int8 misses; fixed
    assert "eval" in b["data"] and r.source_format == "onnx"
    assert r.accuracy is not None and r.accuracy["drop"] <= 0.05 and r.accuracy["float_model"] == str(src)


def test_onnx_source_to_tflite_refuses_quantization_aware_training(tmp_path, outlier):
    from edgeml.errors import QATUsageError

    src, data, calib = outlier
    with pytest.raises(QATUsageError, match="needs the Keras model"):
        quantize(src, format="tflite", calib=calib, method="qat", train=data, out=tmp_path / "q.tflite")
    assert not (tmp_path / "q.tflite").exists()
