"""edgeml inspect: formats, IO specs, MACs, weights, custom ops, and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import helpers
from edgeml.artifact import ModelFormat, detect_format, inspect_model
from edgeml.cli import cli
from edgeml.errors import ModelLoadError

ONNX_LIGHT = Path(__import__("onnx").__file__).parent / "backend" / "test" / "data" / "light"
CONTRACT_KEYS = {"format", "inputs", "outputs", "params", "size_bytes", "macs", "ops", "weight_dtypes",
                 "sparsity", "custom_ops"}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_clean_error(result, *fragments: str, code: int = 3):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.output
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
    assert "hint: " in result.output


# --- formats and the JSON contract -------------------------------------------------------------------

def test_inspect_json_contract_for_onnx(tiny_onnx):
    result = invoke("inspect", str(tiny_onnx), "--json", "--layers")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert CONTRACT_KEYS <= set(d) and "layers" in d
    assert d["format"] == "onnx"
    assert d["inputs"] == [{"name": "image", "shape": [None, 1, 8, 8], "dtype": "float32", "quantization": None}]
    assert d["outputs"][0]["name"] == "logits" and d["outputs"][0]["shape"] == [None, 10]
    assert d["params"] == 4 * 9 + 4 + 144 * 10 + 10
    assert d["macs"] == 6 * 6 * 4 * 9 + 144 * 10
    assert d["ops"] == {"Conv": 1, "Relu": 1, "Flatten": 1, "Gemm": 1}
    assert d["weight_dtypes"] == {"float32": d["params"]}
    assert d["size_bytes"] == tiny_onnx.stat().st_size
    assert {layer["name"]: layer["macs"] for layer in d["layers"]}["conv"] == 1296


def test_layers_key_only_with_layers_flag(tiny_onnx):
    d = json.loads(invoke("inspect", str(tiny_onnx), "--json").stdout)
    assert "layers" not in d


def test_keras_tflite_onnx_of_same_model_agree(tiny_keras, tiny_tflite, tiny_onnx):
    k, t, o = (inspect_model(p) for p in (tiny_keras, tiny_tflite, tiny_onnx))
    assert k.format == "keras" and t.format == "tflite"
    assert k.macs == t.macs == o.macs == 2736
    assert k.params == t.params == 1490
    # TFLite IO carries the signature names, the same names the Keras model uses
    assert [i.name for i in t.inputs] == [i.name for i in k.inputs] == ["image"]
    assert t.inputs[0].shape == (None, 8, 8, 1) and t.inputs[0].dtype == "float32"


def test_human_output_shows_io_macs_and_ops(tiny_tflite):
    result = invoke("inspect", str(tiny_tflite))
    assert result.exit_code == 0
    assert "image" in result.output and "[?, 8, 8, 1]" in result.output
    assert "2.74 k (2736)" in result.output
    assert "CONV_2D 1" in result.output and "FULLY_CONNECTED 1" in result.output


def test_keras2_h5_reference_model_loads(keras2_h5):
    info = inspect_model(keras2_h5)
    assert info.format == "h5"
    assert info.inputs[0].name == "image" and info.inputs[0].shape == (None, 16, 16, 3)
    assert info.outputs[0].name == "probs"
    assert info.macs == 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 8 * 8 * 16 * 8 + 16 * 5
    assert info.ops["DepthwiseConv2D"] == 1


def test_savedmodel_directory_inspects(tmp_path, tiny_keras_model):
    tiny_keras_model.export(tmp_path / "sm", verbose=False)
    info = inspect_model(tmp_path / "sm")
    assert info.format == "savedmodel"
    assert [i.name for i in info.inputs] == ["image"]
    assert info.macs == 2736
    assert info.params == 1490


def test_third_party_onnx_resnet50_macs_and_params():
    # Caffe2-exported ResNet-50 shipped in the onnx wheel: opset 9, weights made by ConstantOfShape
    info = inspect_model(ONNX_LIGHT / "light_resnet50.onnx")
    assert info.inputs[0].shape == (1, 3, 224, 224)
    assert 4.0e9 < info.macs < 4.2e9  # published ResNet-50 v1.5: 4.1 G MACs
    assert abs(info.params - 25.6e6) / 25.6e6 < 0.01


@pytest.mark.parametrize("name", ["light_squeezenet", "light_inception_v1", "light_densenet121"])
def test_third_party_onnx_models_inspect(name):
    info = inspect_model(ONNX_LIGHT / f"{name}.onnx")
    assert info.macs > 1e8 and info.params > 1e6 and not [n for n in info.notes if "ConstantOfShape" not in n]


def test_format_detection_ignores_extension(tmp_path, tiny_onnx, tiny_tflite):
    fake = tmp_path / "really_onnx.tflite"
    fake.write_bytes(tiny_onnx.read_bytes())
    assert detect_format(fake) is ModelFormat.ONNX
    fake2 = tmp_path / "model.bin"
    fake2.write_bytes(tiny_tflite.read_bytes())
    assert detect_format(fake2) is ModelFormat.TFLITE


# --- quantized and custom-op models ---------------------------------------------------------------------

def test_custom_op_model_inspects_and_lists_op(tmp_path, tiny_tflite):
    path = helpers.edit_tflite(tiny_tflite, tmp_path / "edgetpu.tflite", helpers.make_custom_op)
    result = invoke("inspect", str(path), "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["custom_ops"] == ["edgetpu-custom-op"]
    assert any("delegate" in note for note in d["notes"])


def test_int8_tflite_reports_io_quantization_and_int8_weights(tmp_path, tiny_keras_model):
    import tensorflow as tf

    tiny_keras_model.export(tmp_path / "sm", verbose=False)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, 8, 8, 1), dtype=np.float32)] for _ in range(20))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path = tmp_path / "int8.tflite"
    path.write_bytes(conv.convert())
    info = inspect_model(path)
    assert info.inputs[0].dtype == "int8"
    q = info.inputs[0].quantization
    assert q is not None and q.scale > 0 and -128 <= q.zero_point <= 127
    assert info.weight_dtypes.get("int8", 0) == 4 * 9 + 144 * 10
    assert info.weight_dtypes.get("int32", 0) == 4 + 10  # quantized biases
    assert info.macs == 2736


# --- bad input: one clear line, exit 3, no traceback -----------------------------------------------------

def test_missing_path(tmp_path):
    assert_clean_error(invoke("inspect", str(tmp_path / "missing.tflite")), "missing.tflite", "no such file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    assert_clean_error(invoke("inspect", str(p)), "empty.onnx", "empty")


@pytest.mark.parametrize("name", ["random.tflite", "random.onnx", "random.keras", "random.h5"])
def test_random_bytes_with_model_extension(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_clean_error(invoke("inspect", str(p)), name)


def test_truncated_tflite(tmp_path, tiny_tflite):
    p = tmp_path / "truncated.tflite"
    p.write_bytes(tiny_tflite.read_bytes()[:600])
    assert_clean_error(invoke("inspect", str(p)), "truncated.tflite")


def test_truncated_onnx(tmp_path, tiny_onnx):
    p = tmp_path / "truncated.onnx"
    p.write_bytes(tiny_onnx.read_bytes()[:-300])
    assert_clean_error(invoke("inspect", str(p)), "truncated.onnx")


def test_truncated_keras_zip(tmp_path, tiny_keras):
    p = tmp_path / "truncated.keras"
    p.write_bytes(tiny_keras.read_bytes()[:2000])
    assert_clean_error(invoke("inspect", str(p)), "truncated.keras")


def test_directory_that_is_not_a_savedmodel(tmp_path):
    (tmp_path / "some_dir").mkdir()
    assert_clean_error(invoke("inspect", str(tmp_path / "some_dir")), "some_dir", "not a SavedModel")


def test_unknown_format_text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, I am not a model\n")
    assert_clean_error(invoke("inspect", str(p)), "notes.txt", "unknown model format")


def test_tflite_refused_by_interpreter(tmp_path, tiny_tflite):
    path = helpers.edit_tflite(tiny_tflite, tmp_path / "badq.tflite", helpers.break_quantization)
    assert_clean_error(invoke("inspect", str(path)), "badq.tflite", "refuses")


def test_h5_with_weights_only(tmp_path, tiny_keras_model):
    p = tmp_path / "weights.weights.h5"
    tiny_keras_model.save_weights(p)
    assert_clean_error(invoke("inspect", str(p)), "weights only")


def test_keras_lambda_layer_refused_by_safe_mode(tmp_path):
    import keras

    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    p = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(p)
    assert_clean_error(invoke("inspect", str(p)), "lambda.keras", "safe_mode")


def test_onnx_external_data_outside_model_folder_is_refused(tmp_path, tiny_onnx):
    import onnx

    model = onnx.load(str(tiny_onnx))
    for init in model.graph.initializer:
        if init.name == "fc_w":
            init.ClearField("raw_data")
            init.ClearField("float_data")
            init.data_location = onnx.TensorProto.EXTERNAL
            entry = init.external_data.add()
            entry.key, entry.value = "location", "../../etc/passwd"
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "evil.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        inspect_model(path)
    assert_clean_error(invoke("inspect", str(path)), "evil.onnx", "outside")


def test_onnx_external_data_beside_model_is_read(tmp_path, tiny_onnx):
    import onnx

    model = onnx.load(str(tiny_onnx))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    assert inspect_model(path).params == 1490


@pytest.mark.skipif(os.environ.get("EDGEML_SKIP_SLOW") == "1", reason="EDGEML_SKIP_SLOW=1")
def test_mobilenetv2_macs_agree_across_keras_and_tflite(models_dir):
    import keras

    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    kpath = models_dir / "mnv2.keras"
    model.save(kpath)
    tpath = helpers.keras_to_tflite(model, models_dir / "mnv2.tflite")
    k, t = inspect_model(kpath), inspect_model(tpath)
    assert 290e6 < k.macs < 310e6  # published: 300 M
    assert abs(t.macs - k.macs) / k.macs < 0.02
    assert k.params == 3538984
