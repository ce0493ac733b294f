"""Builders for tiny, seeded test models (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def onnx_cnn(path: Path, *, batch: str | int = "N", seed: int = 0) -> Path:
    """Conv(1->4, 3x3) -> Relu -> Flatten -> Gemm(144->10) on [N, 1, 8, 8]. 2,736 MACs at batch 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32), "conv_w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "conv_b")
    fw = numpy_helper.from_array(rng.normal(0, 0.1, (144, 10)).astype(np.float32), "fc_w")
    fb = numpy_helper.from_array(rng.normal(0, 0.1, (10,)).astype(np.float32), "fc_b")
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        initializer=[w, b, fw, fb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeml-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def keras_cnn(seed: int = 0):
    """Functional Conv2D(4, 3x3) -> Flatten -> Dense(10) on (8, 8, 1); input named 'image'."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv", bias_initializer="random_normal")(inp)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(10, name="logits", bias_initializer="random_normal")(x)
    return keras.Model(inp, out, name="tiny_cnn")


def keras_to_tflite(model, path: Path) -> Path:
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        model.export(d, verbose=False)
        data = tf.lite.TFLiteConverter.from_saved_model(d).convert()
    path.write_bytes(data)
    return path


def edit_tflite(src: Path, dst: Path, edit) -> Path:
    """Unpack a .tflite with the schema object API, let ``edit(model, schema)`` change it, repack."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as S

    model = S.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    edit(model, S)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(b.Output())
    return dst


def make_custom_op(model, S) -> None:
    """Replace the first op with an `edgetpu-custom-op` (what edgetpu_compiler produces)."""
    code = S.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
    code.customCode = b"edgetpu-custom-op"
    code.version = 1
    model.operatorCodes.append(code)
    op = model.subgraphs[0].operators[0]
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.builtinOptionsType, op.builtinOptions = 0, None


def break_quantization(model, S) -> None:
    """Declare the float input as int8 with scale 0: parses, but LiteRT refuses to prepare it."""
    t = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]]
    t.type = S.TensorType.INT8
    q = S.QuantizationParametersT()
    q.scale, q.zeroPoint = [0.0], [0]
    t.quantization = q


def keras_two_in_two_out(seed: int = 0):
    """Functional model with inputs 'image' (8,8,1) and 'meta' (3,), outputs 'class_probs' and 'score'."""
    import keras

    keras.utils.set_random_seed(seed)
    img = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((3,), name="meta")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(img)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Concatenate(name="concat")([x, meta])
    probs = keras.layers.Dense(5, activation="softmax", name="class_probs")(x)
    score = keras.layers.Dense(1, name="score")(x)
    return keras.Model([img, meta], [probs, score], name="two_in_two_out")


def keras_sequential(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def onnx_legacy_constants(path: Path, seed: int = 0) -> Path:
    """The tiny CNN as an old exporter writes it: opset 11, weights in Constant nodes, not initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def const(name, arr):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr.astype(np.float32), name))

    nodes = [
        const("conv_w", rng.normal(0, 0.3, (4, 1, 3, 3))), const("conv_b", rng.normal(0, 0.1, (4,))),
        const("fc_w", rng.normal(0, 0.1, (144, 10))), const("fc_b", rng.normal(0, 0.1, (10,))),
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "legacy",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.save(model, str(path))
    return path


def keras_with_sin(path: Path) -> Path:
    """A SavedModel whose graph has SIN, which TFLite cannot run in int8."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.ops.sin(x)
    out = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    keras.Model(inp, out).export(str(path), verbose=False)
    return path


def _int_io_tflite(model, path: Path, representative: np.ndarray, io: str) -> Path:
    """Full-integer TFLite with ``io`` (int8/uint8) input and output, calibrated on ``representative``."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        model.export(d, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([r[None].astype(np.float32)] for r in representative)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
        path.write_bytes(conv.convert())
    return path


def int8_feature_classifier(path: Path, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """An int8-IO TFLite classifier of 16 features in [27, 40] (4 seeded Gaussian classes): input scale
    40/255, zero point -128, like a keyword-spotting model's features. Its int8 features (44..127) read as
    real values and quantized again all saturate to 127: double quantization leaves one constant input.
    Trained a few epochs. Returns (model, float features [200, 16], labels [200])."""
    import keras

    rng = np.random.default_rng(seed)
    centres = rng.uniform(29, 38, (4, 16))
    y = rng.integers(0, 4, 200)
    x = np.clip(centres[y] + rng.normal(0, 1.5, (200, 16)), 27, 40).astype(np.float32)
    x[0, 0] = 40.0  # the calibrated range is exactly [0, 40] (TFLite keeps 0 in it): scale 40/255, zp -128
    keras.utils.set_random_seed(seed)
    inp = keras.Input((16,), name="features")
    out = keras.layers.Dense(4, name="logits")(keras.layers.Rescaling(1 / 4, offset=-8.5)(inp))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, batch_size=50, verbose=0)
    return _int_io_tflite(model, path, x[:100], "int8"), x, y


def brightness_images(folder: Path, *, size=(12, 10)) -> Path:
    """Class folders 0 (dark), 1 (mid), 2 (bright) with two seeded grey images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in enumerate((25, 128, 230)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            pixels = np.clip(level + rng.integers(-15, 16, (size[1], size[0])), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / str(label) / f"img{i}.png")
    return folder


def brightness_classifier(path: Path, *, io: str = "uint8", trained_on: str = "-1..1", hw: int = 8) -> Path:
    """A quantized image model telling dark / mid / bright [1, hw, hw, 1] images apart (fixed weights on the
    mean pixel), trained on pixels normalised to ``trained_on`` ('-1..1' = (p - 128) / 128, '0..1' = p / 255).
    uint8 + '-1..1' gives input scale 1/128, zero point 128; int8 + '0..1' gives scale 1/255, zp -128."""
    import keras

    lo, hi = (-1.0, 127 / 128) if trained_on == "-1..1" else (0.0, 1.0)
    mid = (lo + hi) / 2
    inp = keras.Input((hw, hw, 1), name="image")
    m = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(3, name="logits")
    out = dense(m)
    model = keras.Model(inp, out)
    w = 20 / (hi - lo)
    dense.set_weights([np.asarray([[-w, 0.0, w]], np.float32),
                       np.asarray([w * mid - 4, 0.0, -w * mid - 4], np.float32)])
    levels = np.linspace(0, 255, 32)
    reps = ((levels[:, None, None, None] + np.zeros((1, hw, hw, 1))) / 255) * (hi - lo) + lo
    reps[0], reps[-1] = lo, hi  # calibrate on the exact range: the input quantization is exact
    if io == "float32":
        return keras_to_tflite(model, path)
    return _int_io_tflite(model, path, reps.astype(np.float32), io)


def onnx_detector(path: Path, seed: int = 0) -> Path:
    """[N, 1, 8, 8] -> boxes [N, 4, 6] (a detector-shaped single output: no class-score vector)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(0, 0.1, (64, 24)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.asarray([-1, 4, 6], np.int64), "shape")
    nodes = [helper.make_node("Flatten", ["image"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["m"]),
             helper.make_node("Reshape", ["m", "shape"], ["boxes"])]
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 4, 6])],
                              initializer=[w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def sparse_tflite(sparse: Path, dense: Path, seed: int = 0) -> tuple[Path, Path]:
    """MediaPipe-style sparse weights: Conv(3->16) -> Conv(16->16) -> GAP -> Dense(4) on (8, 8, 3), kernels 80 %
    zeros, converted with EXPERIMENTAL_SPARSITY (3 constants stored sparse, read through DENSIFY ops) to
    ``sparse`` and without it to ``dense`` (the same weights)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inp = keras.Input((8, 8, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", bias_initializer="random_normal")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, bias_initializer="random_normal")(x))
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            layer.set_weights([w[0] * (rng.random(w[0].shape) < 0.2)] + w[1:])
    for path, opt in ((sparse, [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]), (dense, [])):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = opt
        path.write_bytes(conv.convert())
    return sparse, dense


def if_tflite(path: Path, seed: int = 0) -> Path:
    """onnx-tf-style control flow: x [1, 4] -> IF(mean(x) > 0.5: x @ A, else: x @ B) with the two branch
    subgraphs' tensors renamed to the same names (arg0, ...), as onnx-tf exports repeat them."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    a = tf.constant(rng.normal(0, 0.5, (4, 3)).astype(np.float32))
    b = tf.constant(rng.normal(0, 0.5, (4, 3)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def f(x):
        return tf.cond(tf.reduce_mean(x) > 0.5, lambda: tf.matmul(x, a), lambda: tf.matmul(x, b) + 1.0)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    path.write_bytes(conv.convert())

    def same_names(model, S):
        for sg in model.subgraphs[1:]:
            for k, t in enumerate(sg.tensors):
                t.name = f"arg{k}".encode()

    return edit_tflite(path, path, same_names)


def process_gone(pid: int, wait: float = 10.0) -> bool:
    """The process ``pid`` has ended (or is a zombie) within ``wait`` seconds."""
    import time

    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True  # a zombie waiting for its parent (sshd) to reap it: no longer running
        time.sleep(0.1)
    return False
