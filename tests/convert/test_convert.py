"""edgeml convert: every route, self-verification, simplification fallbacks, safe output handling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import helpers
from edgeml.artifact import inspect_model
from edgeml.cli import cli
from edgeml.convert import VerificationError, convert
from edgeml.convert.tflite import failing_ops
from edgeml.errors import EdgeMLError, OutputExistsError
from edgeml.runtimes.session import open_session


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def seq_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("seq") / "seq.keras"
    helpers.keras_sequential().save(path)
    return path


@pytest.fixture(scope="module")
def multi_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "multi.keras"
    helpers.keras_two_in_two_out().save(path)
    return path


def test_keras_to_tflite_verifies_and_keeps_names(tmp_path, tiny_keras):
    result = invoke("convert", str(tiny_keras), "--to", "tflite", "-o", str(tmp_path / "m.tflite"), "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["schema"] == "edgeml.convert/1" and d["to"] == "tflite"
    v = d["verification"]
    assert v["passed"] and v["normalized_max_diff"] <= 1e-4 and v["argmax_agreement"] == 1.0 and v["samples"] == 8
    info = inspect_model(tmp_path / "m.tflite")
    assert info.inputs[0].name == "image" and info.macs == 2736


def test_sequential_keras_to_onnx_works_with_readable_names_and_dynamic_batch(tmp_path, seq_keras):
    res = convert(seq_keras, to="onnx", out=tmp_path / "s.onnx")
    assert res.verification.passed and res.verification.normalized_max_diff <= 1e-4
    assert res.simplify["applied"] and res.simplify["nodes_after"] <= res.simplify["nodes_before"]
    info = inspect_model(tmp_path / "s.onnx")
    assert info.inputs[0].shape[0] is None
    assert not info.inputs[0].name.startswith("keras_tensor")
    sess = open_session(tmp_path / "s.onnx")
    out = sess.run({info.inputs[0].name: np.zeros((3, 8, 8, 1), np.float32)})
    assert next(iter(out.values())).shape == (3, 10)  # dynamic batch kept


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_multi_input_multi_output_functional(tmp_path, multi_keras, to):
    res = convert(multi_keras, to=to, out=tmp_path / f"multi.{to}")
    v = res.verification
    assert v.passed and len(v.outputs) == 2
    if to == "onnx":
        info = inspect_model(tmp_path / "multi.onnx")
        assert {t.name for t in info.inputs} == {"image", "meta"}
        assert [t.name for t in info.outputs] == ["class_probs", "score"]


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_legacy_keras2_h5(tmp_path, keras2_h5, to):
    res = convert(keras2_h5, to=to, out=tmp_path / f"k2.{to}")
    assert res.source_format == "h5" and res.verification.passed


@pytest.mark.parametrize("to", ["tflite", "onnx"])
def test_savedmodel_directory(tmp_path, tiny_keras_model, to):
    tiny_keras_model.export(tmp_path / "sm", verbose=False)
    res = convert(tmp_path / "sm", to=to, out=tmp_path / f"sm.{to}")
    assert res.source_format == "savedmodel" and res.verification.passed


def test_tflite_to_onnx_uses_signature_names(tmp_path, tiny_tflite):
    res = convert(tiny_tflite, to="onnx", out=tmp_path / "t.onnx")
    assert res.verification.passed
    assert [t.name for t in inspect_model(tmp_path / "t.onnx").inputs] == ["image"]


def test_onnx_to_onnx_simplifies_only(tmp_path):
    from pathlib import Path

    import onnx

    src = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    res = convert(src, to="onnx", out=tmp_path / "sq.onnx", verify=2)
    assert res.simplify["applied"] and res.simplify["nodes_after"] < res.simplify["nodes_before"]
    assert res.verification.passed


def test_float16_halves_tflite_size(tmp_path, seq_keras):
    fp32 = convert(seq_keras, to="tflite", out=tmp_path / "a.tflite")
    fp16 = convert(seq_keras, to="tflite", out=tmp_path / "b.tflite", float16=True)
    assert fp16.verification.passed and fp16.verification.atol == 1e-2
    dtypes = inspect_model(tmp_path / "b.tflite").weight_dtypes
    assert dtypes.get("float16", 0) >= 0.9 * sum(dtypes.values())  # weights stored as fp16
    assert fp16.size_bytes < fp32.size_bytes


def test_verification_uses_calibration_data_when_given(tmp_path, tiny_keras):
    res = convert(tiny_keras, to="onnx", out=tmp_path / "c.onnx", calib="builtin:digits", verify=5)
    assert res.verification.samples == 5 and "builtin:digits" in res.verification.data


# --- failures leave nothing behind ------------------------------------------------------------------------

def test_verification_failure_leaves_no_output(tmp_path, seq_keras):
    out = tmp_path / "fail.tflite"
    with pytest.raises(VerificationError, match="differs from the source"):
        convert(seq_keras, to="tflite", out=out, float16=True, atol=1e-9)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path, tiny_keras):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"keep me")
    result = invoke("convert", str(tiny_keras), "--to", "tflite", "-o", str(out))
    assert result.exit_code == 3 and "output exists" in result.output and "--force" in result.output
    assert out.read_bytes() == b"keep me"
    assert invoke("convert", str(tiny_keras), "--to", "tflite", "-o", str(out), "--force").exit_code == 0
    assert out.read_bytes()[4:8] == b"TFL3"


def test_output_never_overwrites_input_even_with_force(tiny_onnx):
    with pytest.raises(OutputExistsError, match="overwrite the input"):
        convert(tiny_onnx, to="onnx", out=tiny_onnx, force=True)


@pytest.mark.parametrize("args,match", [
    (["--to", "tflite", "--float16"], "--float16 is not supported for ONNX"),
    (["--to", "onnx", "--float16"], "--float16 applies to --to tflite only"),
])
def test_unsupported_routes_are_clear_errors(tmp_path, tiny_onnx, args, match):
    result = invoke("convert", str(tiny_onnx), *args, "-o", str(tmp_path / "x.out"))
    assert result.exit_code == 3 and match in result.output and "Traceback" not in result.output


def test_simplifier_failure_keeps_unsimplified_model_with_warning(tmp_path, tiny_keras, monkeypatch):
    import onnxsim

    def broken(*a, **k):
        raise RuntimeError("simplifier exploded")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    res = convert(tiny_keras, to="onnx", out=tmp_path / "u.onnx")
    assert not res.simplify["applied"] and "simplifier exploded" in res.simplify["warning"]
    assert res.warnings and res.verification.passed
    with pytest.raises(EdgeMLError, match="simplification failed"):
        convert(tiny_keras, to="onnx", out=tmp_path / "strict.onnx", strict=True)
    assert not (tmp_path / "strict.onnx").exists()


def test_simplifier_that_changes_results_is_rolled_back(tmp_path, tiny_keras, monkeypatch):
    import onnxsim
    from onnx import numpy_helper

    real = onnxsim.simplify

    def corrupting(model, **kw):
        simplified, ok = real(model, **kw)
        for init in simplified.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.ndim >= 2:
                init.CopyFrom(numpy_helper.from_array(arr * 1.5, init.name))
                break
        return simplified, ok

    monkeypatch.setattr(onnxsim, "simplify", corrupting)
    res = convert(tiny_keras, to="onnx", out=tmp_path / "r.onnx")
    assert res.verification.passed and not res.simplify["applied"]
    assert "differs" in res.simplify["warning"]


def test_failing_op_names_are_extracted_from_converter_errors():
    tflite_msg = ("Some ops are not supported by the native TFLite runtime, you can enable TF kernels fallback "
                  "using TF Select. Flex ops: FlexErfinv Details: tf.Erfinv(tensor<1x4xf32>) -> (tensor<1x4xf32>)")
    assert "Erfinv" in failing_ops(tflite_msg)
    assert failing_ops("Tensorflow op [model/lambda/Foo: FooBar] is not supported") == ["FooBar"]


# --- int8 TFLite -> ONNX (issue 24 item 7) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def int8_io_tflite(tmp_path_factory, tiny_keras_model):
    """Full-int8 .tflite with int8 input and output (scale/zero-point far from identity on the output)."""
    import tempfile

    import tensorflow as tf

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        tiny_keras_model.export(d, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random((1, 8, 8, 1), dtype=np.float32)] for _ in range(40))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        path = tmp_path_factory.mktemp("int8") / "int8.tflite"
        path.write_bytes(conv.convert())
    return path


def test_int8_tflite_to_onnx_verifies_as_real_values_and_keeps_io_quantization(tmp_path, int8_io_tflite):
    from edgeml.convert.ioquant import read_file

    src = inspect_model(int8_io_tflite)
    res = invoke("convert", str(int8_io_tflite), "--to", "onnx", "-o", str(tmp_path / "q.onnx"),
                 "--calib", "builtin:digits")
    assert res.exit_code == 0, res.output
    assert "int IO    image: real = " in res.output and "as real values" in res.output
    table = read_file(tmp_path / "q.onnx")
    for t in src.inputs + src.outputs:  # the ONNX model's IO contract keeps the source's quantization
        assert table[t.name] == t.quantization
    info = inspect_model(tmp_path / "q.onnx")
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    r = convert(int8_io_tflite, to="onnx", out=tmp_path / "r.onnx")
    v = r.verification
    assert v.passed and v.argmax_agreement == 1.0 and v.cosine > 0.999
    assert set(v.quantized_io) == {"image", "output_0"} and r.io_quantization["image"]["zero_point"] == -128


def test_int8_io_is_read_from_the_graph_when_not_recorded(tmp_path, int8_io_tflite):
    import onnx

    from edgeml.convert.ioquant import KEY, read, read_file

    convert(int8_io_tflite, to="onnx", out=tmp_path / "q.onnx", verify=0)
    model = onnx.load(str(tmp_path / "q.onnx"))
    recorded = read(model)
    keep = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    onnx.save(model, str(tmp_path / "bare.onnx"))
    from_graph = read_file(tmp_path / "bare.onnx")  # DequantizeLinear after the input, QuantizeLinear before the output
    assert set(from_graph) == set(recorded)
    for k, q in recorded.items():
        assert from_graph[k].zero_point == q.zero_point and abs(from_graph[k].scale - q.scale) < 1e-6 * q.scale


def test_argmax_is_only_claimed_for_classifier_outputs_with_a_clear_top1():
    from edgeml.convert.verify import compare
    from edgeml.formats.common import TensorSpec

    class Fixed:
        runtime = "test"

        def __init__(self, outputs):
            self.inputs = [TensorSpec("x", (None, 2), "float32")]
            self.outputs = [TensorSpec(k, (None,) + v.shape[1:], "float32") for k, v in outputs.items()]
            self._out = outputs

        def run(self, feeds, *, raw=False):
            return self._out

    rng = np.random.default_rng(0)
    boxes, probs = rng.random((1, 5, 4)), rng.random((1, 10))
    ref = Fixed({"boxes": boxes, "probs": probs, "zeros": np.zeros((1, 10))})
    test = Fixed({"boxes": boxes[:, ::-1], "probs": probs, "zeros": np.zeros((1, 10))})
    v = compare(ref, test, [{"x": np.zeros((1, 2), np.float32)}] * 3, atol=1e-4, data="test")
    by = {o["reference"]: o for o in v.outputs}
    assert "argmax_agreement" not in by["boxes"] and by["probs"]["argmax_agreement"] == 1.0
    assert by["zeros"]["constant"] and "argmax_agreement" not in by["zeros"] and by["zeros"]["cosine"] == 1.0
    assert any("'zeros'" in n and "constant" in n for n in v.notes)
    assert not v.passed and by["boxes"]["relative_error"] > 0.1
    first = np.zeros((1, 10))
    first[0, 0] = 1.0  # the reference's top-1 is class 0; an all-zero output "picks" index 0 too
    v = compare(Fixed({"p": first}), Fixed({"p": np.zeros((1, 10))}), [{"x": np.zeros((1, 2), np.float32)}] * 3,
                atol=1e-4, data="test")
    assert v.argmax_agreement == 0.0 and v.cosine == 0.0
