"""Dynamic shapes, weights outside initializers, recurrent MACs, stateful inputs (issue 24, items 3-5).

Every expected MAC count below is computed by hand from the standard formulas (1 MAC = one multiply-
accumulate): conv = output elements x kernel volume x input channels per group; MatMul/Gemm = output
elements x reduction length; LSTM/GRU/RNN = steps x batch x directions x gates x hidden x (input + hidden).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_shapes import (
    constant_weights,
    dynamic_cnn,
    if_with_weights,
    loop_matmul,
    recurrent,
    save,
    stateful_vad,
)

from edgeml.artifact import inspect_model
from edgeml.cli import cli
from edgeml.formats.common import TensorSpec
from edgeml.formats.shapes import ShapeError, parse_input_shapes, resolve


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def shape_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("shape_models")
    return {
        "dyn": dynamic_cnn(d / "dyn.onnx"), "dyn_pad": dynamic_cnn(d / "dyn_pad.onnx", computed_pad=True),
        "constw": constant_weights(d / "constw.onnx"), "if": if_with_weights(d / "if.onnx"),
        "loop": loop_matmul(d / "loop.onnx"), "vad": stateful_vad(d / "vad.onnx"),
        "bilstm": recurrent(d / "bilstm.onnx", "LSTM", direction="bidirectional"),
        "gru": recurrent(d / "gru.onnx", "GRU"), "rnn": recurrent(d / "rnn.onnx", "RNN"),
        "lstm_dyn": recurrent(d / "lstm_dyn.onnx", "LSTM", steps="T", batch="B"),
    }


# --- the resolver ----------------------------------------------------------------------------------------

def test_parse_input_shapes_accepts_named_unnamed_and_mapping_forms():
    assert parse_input_shapes(["x=1,3,320,320", "sr="]) == {"x": (1, 3, 320, 320), "sr": ()}
    assert parse_input_shapes("1,3,32,32") == {None: (1, 3, 32, 32)}
    assert parse_input_shapes({"state": [2, 1, 128]}) == {"state": (2, 1, 128)}
    with pytest.raises(ShapeError, match="whole numbers"):
        parse_input_shapes(["x=1,a"])
    with pytest.raises(ShapeError, match="at least 1"):
        parse_input_shapes(["x=1,0"])


def test_resolve_fixes_symbols_by_name_across_inputs():
    specs = [TensorSpec("input", (None, None), "float32", symbols=("batch", "seq")),
             TensorSpec("state", (2, None, 128), "float32", symbols=(None, "batch", None)),
             TensorSpec("sr", (), "int64")]
    r = resolve(specs, {"input": (1, 512)})
    assert r.complete and r.shapes == {"input": (1, 512), "state": (2, 1, 128), "sr": ()}
    # without the sequence length, batch still resolves (by name, also on state's second axis) but seq does not
    r = resolve(specs)
    assert r.shapes["state"] == (2, 1, 128) and [str(u) for u in r.unknown] == ["input[1] (seq)"]
    with pytest.raises(ShapeError, match=r"input\[1\] \(seq\)") as exc:
        r.require("bench")
    assert "`input_shapes=input=1,D`" in exc.value.hint


def test_resolve_refuses_shapes_that_contradict_the_model():
    specs = [TensorSpec("x", (None, 3, None, None), "float32", symbols=("N", None, "H", "W"))]
    with pytest.raises(ShapeError, match="fixed size 3 at axis 1"):
        resolve(specs, ["x=1,4,32,32"])
    with pytest.raises(ShapeError, match="rank 4"):
        resolve(specs, ["x=1,3,32"])
    with pytest.raises(ShapeError, match="no input 'y'"):
        resolve(specs, ["y=1,3,32,32"])
    two = specs + [TensorSpec("z", (None, 2), "float32")]
    with pytest.raises(ShapeError, match="without a name"):
        resolve(two, ["1,3,32,32"])


def test_resolve_takes_the_batch_as_one_but_never_invents_other_dims():
    r = resolve([TensorSpec("x", (None, 3, None, None), "float32", symbols=(None, None, None, None))])
    assert r.shapes["x"] == (1, 3, None, None) and [u.axis for u in r.unknown] == [2, 3]
    # a time-major sequence input: its first axis is named like a sequence, not a batch
    r = resolve([TensorSpec("X", (None, None, 3), "float32", symbols=("T", "B", None))])
    assert [u.symbol for u in r.unknown] == ["T"]


# --- item 3: dynamic shapes ------------------------------------------------------------------------------

def test_dynamic_cnn_macs_are_partial_without_a_shape(shape_models):
    info = inspect_model(shape_models["dyn"])
    assert info.macs_partial and info.macs == 8 * 4  # only the Gemm after the global pool is known
    assert any("x[2] (H), x[3] (W)" in n and "`input_shapes=x=1,3,D,D`" in n for n in info.notes)
    d = info.to_dict()
    assert d["macs_partial"] is True and d["macs_shapes"] == {"x": [1, 3, None, None]}


@pytest.mark.parametrize("model", ["dyn", "dyn_pad"])
def test_dynamic_cnn_macs_exact_at_the_given_shape(shape_models, model):
    info = inspect_model(shape_models[model], input_shapes=["x=1,3,32,48"])
    assert not info.macs_partial
    assert info.macs == 32 * 48 * 8 * 27 + 8 * 4
    assert info.inputs[0].shape == (None, 3, None, None)  # the model's own IO is reported unchanged


def test_shape_inference_gaps_are_filled_by_a_runtime_run(shape_models):
    info = inspect_model(shape_models["dyn_pad"], input_shapes={"x": (1, 3, 16, 16)})
    assert info.macs == 16 * 16 * 8 * 27 + 32
    assert any("ONNX Runtime run" in n for n in info.notes)


def test_inspect_cli_input_shape_and_partial_marking(shape_models):
    r = invoke("inspect", str(shape_models["dyn"]), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["macs_partial"] is True
    r = invoke("inspect", str(shape_models["dyn"]), "--input-shape", "x=1,3,32,32")
    assert r.exit_code == 0, r.output
    assert f"({32 * 32 * 216 + 32})" in r.output and "x=[1, 3, 32, 32]" in r.output and "partial" not in r.output
    r = invoke("inspect", str(shape_models["dyn"]))
    assert "partial" in r.output and "--input-shape x=1,3,D,D" in r.output
    r = invoke("inspect", str(shape_models["dyn"]), "--input-shape", "x=1,3,a,b")
    assert r.exit_code == 2 and "whole numbers" in r.output


def test_bench_refuses_unknown_dims_with_the_hint(shape_models):
    r = invoke("bench", str(shape_models["dyn"]), "--runs", "2", "--warmup", "0")
    assert r.exit_code == 3, r.output
    assert "x[2] (H), x[3] (W)" in r.output and "--input-shape x=1,3,D,D" in r.output


def test_bench_runs_at_the_given_shape(shape_models):
    r = invoke("bench", str(shape_models["dyn"]), "--runs", "2", "--warmup", "0", "--input-shape", "x=1,3,24,24",
               "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["models"][0]["latency_ms"]["n"] == 2


def test_estimate_refuses_partial_macs_and_uses_the_given_shape(shape_models):
    r = invoke("estimate", str(shape_models["dyn"]), "--target", "rpi4")
    assert r.exit_code == 3 and "--input-shape x=1,3,D,D" in r.output
    from edgeml.targets.estimate import estimate

    small = estimate(shape_models["dyn"], target="rpi4", input_shapes=["x=1,3,32,32"])
    big = estimate(shape_models["dyn"], target="rpi4", input_shapes=["x=1,3,320,320"])
    assert small.top_ops[0]["macs"] == 32 * 32 * 216 and big.top_ops[0]["macs"] == 320 * 320 * 216
    assert big.ms > small.ms


# --- item 4: weights outside initializers, control flow, recurrent ops ------------------------------------

def test_constant_node_weights_count_as_params_and_macs(shape_models):
    info = inspect_model(shape_models["constw"])
    assert info.params == 4 * 2 * 9 + 4
    assert info.macs == 3 * 3 * 4 * (9 * 2)


def test_weights_inside_if_branches_are_counted(shape_models):
    info = inspect_model(shape_models["if"])
    assert info.params == 6 * 5 + 6 * 5 + 5 * 5
    assert info.macs == 5 * 6 + 5 * 5  # the costlier (else) branch
    assert not info.macs_partial and any("costlier branch" in n for n in info.notes)


def test_loop_body_macs_times_trip_count(shape_models):
    info = inspect_model(shape_models["loop"])
    assert info.params == 16 and info.macs == 3 * 4 * 4


@pytest.mark.parametrize("model, expected", [
    ("bilstm", 5 * 2 * 2 * 4 * 4 * (3 + 4)),  # steps x batch x dirs x 4 gates x hidden x (input + hidden)
    ("gru", 5 * 2 * 3 * 4 * (3 + 4)),
    ("rnn", 5 * 2 * 1 * 4 * (3 + 4)),
])
def test_onnx_recurrent_macs(shape_models, model, expected):
    assert inspect_model(shape_models[model]).macs == expected


def test_onnx_recurrent_macs_with_dynamic_steps(shape_models):
    info = inspect_model(shape_models["lstm_dyn"])
    assert info.macs_partial and info.macs == 0
    info = inspect_model(shape_models["lstm_dyn"], input_shapes=["X=7,1,3"])
    assert info.macs == 7 * 1 * 4 * 4 * (3 + 4) and not info.macs_partial


# --- item 5: stateful inputs, generated inputs ------------------------------------------------------------

def test_stateful_model_resolves_by_name_and_generates_typed_inputs(shape_models):
    from edgeml.convert.verify import random_feeds, random_feeds_label

    info = inspect_model(shape_models["vad"], input_shapes=["input=1,512"])
    assert info.macs_shapes == {"input": (1, 512), "state": (2, 1, 128), "sr": ()}
    feeds = random_feeds(info.inputs, 2, input_shapes=["input=1,512"])
    assert feeds[0]["input"].shape == (1, 512) and feeds[0]["state"].shape == (2, 1, 128)
    assert feeds[0]["sr"].shape == () and feeds[0]["sr"].dtype == np.int64
    assert "sr (int64 scalar) random integers" in random_feeds_label(info.inputs)
    # the graph tests sr == 16000: generated inputs feed that value, and say so
    assert info.input_values == {"sr": 16000}
    feeds = random_feeds(info.inputs, 1, input_shapes=["input=1,512"], values=info.input_values)
    assert int(feeds[0]["sr"]) == 16000
    assert "sr (int64 scalar) = 16000" in random_feeds_label(info.inputs, info.input_values)
    with pytest.raises(ShapeError, match=r"input\[1\] \(seq\)"):
        random_feeds(info.inputs, 1)


def test_bench_runs_a_stateful_model_with_a_scalar_input(shape_models, tmp_path):
    r = invoke("bench", str(shape_models["vad"]), "--runs", "2", "--warmup", "0", "--input-shape", "input=1,512")
    assert r.exit_code == 0, r.output
    assert "no --data, fed seeded random inputs in [0, 1); sr (int64 scalar) = 16000" in r.output
    ref = tmp_path / "ref.onnx"
    ref.write_bytes(shape_models["vad"].read_bytes())
    r = invoke("bench", str(shape_models["vad"]), "--reference", str(ref), "--runs", "2", "--warmup", "0",
               "--input-shape", "input=1,256", "--json")
    assert r.exit_code == 0, r.output
    fid = json.loads(r.stdout)["models"][0]["fidelity"]
    assert fid["cosine"] == pytest.approx(1.0) and fid["samples"] == 16


# --- Keras and TFLite: recurrent layers (a WHILE loop in TFLite), dynamic spatial dims ----------------------

@pytest.fixture(scope="module")
def keras_rnns(tmp_path_factory):
    """LSTM(6) and Bidirectional(LSTM(6)) on (7 steps, 5 features) + Dense(3); a CNN on (None, None, 3)."""
    import keras
    import tensorflow as tf

    import helpers

    def rnn_to_tflite(model, path):  # from_keras_model keeps the static batch the RNN lowering needs
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        return path

    d = tmp_path_factory.mktemp("keras_rnns")
    keras.utils.set_random_seed(0)
    out = {}
    for name, layer in (("lstm", lambda: keras.layers.LSTM(6)),
                        ("bilstm", lambda: keras.layers.Bidirectional(keras.layers.LSTM(6)))):
        inp = keras.Input((7, 5), batch_size=1, name="seq")  # TFLite lowers an RNN at a static batch
        model = keras.Model(inp, keras.layers.Dense(3)(layer()(inp)))
        model.save(d / f"{name}.keras")
        out[name] = d / f"{name}.keras"
        out[name + "_tflite"] = rnn_to_tflite(model, d / f"{name}.tflite")
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(d / "dyn.keras")
    out["dyn"] = d / "dyn.keras"
    out["dyn_tflite"] = helpers.keras_to_tflite(model, d / "dyn.tflite")
    return out


LSTM_MACS = 7 * 4 * 6 * (5 + 6) + 6 * 3  # 7 steps x 4 gates x hidden 6 x (input 5 + hidden 6), then Dense


def test_keras_lstm_macs_match_the_standard_formula(keras_rnns):
    assert inspect_model(keras_rnns["lstm"]).macs == LSTM_MACS
    assert inspect_model(keras_rnns["bilstm"]).macs == 2 * 7 * 4 * 6 * 11 + 12 * 3


def test_tflite_lstm_while_loop_counts_its_body_per_step(keras_rnns):
    info = inspect_model(keras_rnns["lstm_tflite"])
    assert "WHILE" in info.ops and info.macs == LSTM_MACS and not info.macs_partial
    assert inspect_model(keras_rnns["bilstm_tflite"]).macs == 2 * 7 * 4 * 6 * 11 + 12 * 3


def test_dynamic_spatial_dims_partial_then_exact_in_keras_and_tflite(keras_rnns):
    for key in ("dyn", "dyn_tflite"):
        info = inspect_model(keras_rnns[key])
        assert info.macs_partial, key
        info = inspect_model(keras_rnns[key], input_shapes=["image=1,20,30,3"])
        assert info.macs == 20 * 30 * 4 * 27 + 4 * 2 and not info.macs_partial, key


class _FakeOp:
    """Just enough of a TFLite Operator for _op_macs: input tensor indices (-1: absent)."""

    def __init__(self, inputs: list[int]):
        self.inputs = inputs

    def Inputs(self, i):  # noqa: N802 (flatbuffers API)
        return self.inputs[i]

    def InputsLength(self):  # noqa: N802
        return len(self.inputs)

    def Outputs(self, i):  # noqa: N802
        return 99


def test_tflite_fused_sequence_lstm_macs():
    from edgeml.formats.tflite import op_macs as _op_macs

    batch, time, n_in, cell, n_out = 2, 9, 5, 6, 4  # with a projection cell -> n_out
    shapes = {0: (batch, time, n_in), 16: (n_out, cell)}
    shapes.update({i: (cell, n_in) for i in (1, 2, 3, 4)})
    shapes.update({i: (cell, n_out) for i in (5, 6, 7, 8)})
    uni = _FakeOp([0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 12, 13, 14, 15, 16, -1, 18, 19])
    per_step = 4 * cell * n_in + 4 * cell * n_out + n_out * cell
    assert _op_macs("UNIDIRECTIONAL_SEQUENCE_LSTM", uni, shapes.get, None) == batch * time * per_step
    cifg = _FakeOp([0, -1, 2, 3, 4, -1, 6, 7, 8] + [-1] * 11)  # coupled input-forget gate: 3 gates
    assert _op_macs("UNIDIRECTIONAL_SEQUENCE_LSTM", cifg, shapes.get, None) == \
        batch * time * 3 * cell * (n_in + n_out)
    bw = {k + 17: v for k, v in shapes.items() if k in (1, 2, 3, 4, 5, 6, 7, 8, 16)}
    bidi = _FakeOp([0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 12, 13, 14, 15, 16, -1,
                    18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, 29, 30, 31, 32, 33] + [-1] * 14)
    assert _op_macs("BIDIRECTIONAL_SEQUENCE_LSTM", bidi, {**shapes, **bw}.get, None) == 2 * batch * time * per_step
    assert _op_macs("UNIDIRECTIONAL_SEQUENCE_LSTM", uni, {**shapes, 0: None}.get, None) is None  # unknown steps


def test_constant_of_shape_weights_count_but_zero_states_do_not(tmp_path):
    """A placeholder conv weight built by ConstantOfShape (reshaped on the way) is a weight; a zero state
    built the same way and added to the output is not."""
    from onnx import TensorProto, helper, numpy_helper

    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    nodes = [helper.make_node("ConstantOfShape", ["wshape"], ["wflat"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Reshape", ["wflat", "w4"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("ConstantOfShape", ["sshape"], ["state"]),
             helper.make_node("Add", ["c", "state"], ["y"])]
    graph = helper.make_graph(nodes, "cos", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
                              initializer=[i64("wshape", [72]), i64("w4", [4, 2, 3, 3]), i64("sshape", [1, 4, 4, 4])])
    info = inspect_model(save(graph, tmp_path / "cos.onnx"))
    assert info.params == 72 and info.macs == 4 * 4 * 4 * 18
    assert any("72 parameter(s) are built at run time by ConstantOfShape" in n for n in info.notes)


def test_recipe_input_shape_is_normalised_and_checked(tmp_path, shape_models):
    from edgeml.pipeline import Recipe

    r = Recipe(model=str(shape_models["dyn"]), out=str(tmp_path / "run"), calib="builtin:digits",
               input_shape={"x": [1, 3, 32, 32]}).validate()
    assert r.input_shape == ["x=1,3,32,32"] and 'input_shape = ["x=1,3,32,32"]' in r.to_toml()
    with pytest.raises(ShapeError, match="whole numbers"):
        Recipe(model=str(shape_models["dyn"]), out=str(tmp_path / "run"), calib="builtin:digits",
               input_shape=["x=1,a"]).validate()
    r = invoke("optimize", str(shape_models["dyn"]), "-o", str(tmp_path / "run"), "--calib", "builtin:digits",
               "--input-shape", "x=1,3,32,32", "--dry-run")
    assert r.exit_code == 0 and 'input_shape = ["x=1,3,32,32"]' in r.output


def test_convert_refuses_unknown_dims_before_converting_and_verifies_at_the_given_shape(keras_rnns, tmp_path):
    out = tmp_path / "dyn.tflite"
    r = invoke("convert", str(keras_rnns["dyn"]), "--to", "tflite", "-o", str(out))
    assert r.exit_code == 3 and "image[1], image[2]" in r.output and "--input-shape image=1,D,D,3" in r.output
    assert not out.exists()
    r = invoke("convert", str(keras_rnns["dyn"]), "--to", "tflite", "-o", str(out), "--input-shape",
               "image=1,12,16,3", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["verification"]["passed"] and out.exists()


def test_bench_takes_dynamic_dims_from_the_data(keras_rnns, shape_models, tmp_path):
    data = tmp_path / "imgs.npz"
    np.savez(data, image=np.random.default_rng(0).random((3, 12, 16, 3), dtype=np.float32))
    r = invoke("bench", str(keras_rnns["dyn_tflite"]), "--runs", "2", "--warmup", "0", "--data", str(data), "--json")
    assert r.exit_code == 0, r.output
    onnx_data = tmp_path / "x.npz"
    np.savez(onnx_data, x=np.random.default_rng(0).random((2, 3, 20, 24), dtype=np.float32))
    r = invoke("bench", str(shape_models["dyn"]), "--target", "rpi4", "--data", str(onnx_data), "--json")
    assert r.exit_code == 0, r.output  # the estimate counts at the data's 20 x 24
    assert json.loads(r.stdout)["models"][0]["estimate"]["top_ops"][0]["macs"] == 20 * 24 * 216
