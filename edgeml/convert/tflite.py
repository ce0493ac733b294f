"""Keras / .h5 / SavedModel -> TFLite, through a SavedModel export (from_keras_model has Keras 3 problems)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from edgeml._quiet import native_stderr_captured
from edgeml._tf import tensorflow
from edgeml.errors import EdgeMLError


class ConversionError(EdgeMLError):
    pass


def _fixed_batch_signature(keras_model: Any, batch: int) -> list:
    """Input signature with the batch dimension fixed (every other dimension as the model declares)."""
    tf = tensorflow()
    specs = []
    for t in keras_model.inputs:
        shape = list(t.shape)
        if shape and shape[0] is None:
            shape[0] = batch
        specs.append(tf.TensorSpec(shape, t.dtype, name=getattr(t, "name", None)))
    return specs


def export_savedmodel(keras_model: Any, folder: Path, *, batch: int | None = None) -> Path:
    """Export a Keras 3 model's inference function as a SavedModel (signature 'serving_default').

    ``batch`` fixes a dynamic batch dimension: the Edge TPU compiler maps only static shapes, and a dynamic
    batch turns each Flatten into a SHAPE/STRIDED_SLICE/PACK/RESHAPE chain that stops its mapping."""
    kwargs = {"input_signature": _fixed_batch_signature(keras_model, batch)} if batch else {}
    try:
        with native_stderr_captured():
            keras_model.export(str(folder), format="tf_saved_model", verbose=False, **kwargs)
    except Exception as exc:
        raise ConversionError(f"exporting the Keras model to a SavedModel failed: {' '.join(str(exc).split())[:300]}",
                              hint="check the model runs on a sample: model(x) must work") from exc
    return folder


def failing_ops(text: str) -> list[str]:
    """Op names from TFLite converter / tf2onnx error text."""
    ops = re.findall(r"\btf\.([A-Z][A-Za-z0-9_]*)\(", text)  # MLIR: tf.Erfinv(tensor<...>)
    ops += re.findall(r"\bFlex([A-Z][A-Za-z0-9_]*)", text)  # Flex ops: FlexErfinv
    ops += re.findall(r"Tensorflow op \[[^:\]]+: ([A-Za-z0-9_]+)\]", text)  # tf2onnx
    ops += re.findall(r"\bOp(?: type)?: ([A-Za-z0-9_]+)", text)
    return sorted(set(ops))


def convert_savedmodel(folder: Path, *, float16: bool = False, configure=None) -> bytes:
    """Convert a SavedModel folder to TFLite bytes. ``configure(converter)`` may set quantization options."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder))
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if configure is not None:
        configure(converter)
    try:
        with native_stderr_captured() as logs:
            return converter.convert()
    except Exception as exc:
        text = " ".join(str(exc).split())
        ops = failing_ops(text + " " + "".join(logs))
        what = f" (ops: {', '.join(ops)})" if ops else ""
        raise ConversionError(f"TFLite conversion failed{what}: {text[:300]}",
                              hint="ops outside TFLite builtins need SELECT_TF_OPS (not supported on most boards); "
                                   "replace the layer, or convert to ONNX instead") from exc


def to_tflite(source: Path, fmt: str, *, float16: bool = False, keras_model: Any = None, configure=None) -> bytes:
    """Convert a .keras/.h5 file, a SavedModel folder, or an in-memory Keras model to TFLite bytes."""
    if fmt == "savedmodel":
        return convert_savedmodel(source, float16=float16, configure=configure)
    if keras_model is None:
        from edgeml.formats.keras import load

        keras_model = load(source)
    with tempfile.TemporaryDirectory(prefix="edgeml-sm-") as tmp:
        export_savedmodel(keras_model, Path(tmp) / "sm")
        return convert_savedmodel(Path(tmp) / "sm", float16=float16, configure=configure)
