"""TFLite post-training quantization.

Keras / .h5 / SavedModel sources go through the TFLite converter (one SavedModel export feeds both the
float reference and the quantized model). A float .tflite source (the only file many users have) goes
through AI Edge Quantizer, which reads and writes .tflite flatbuffers directly.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeml._quiet import all_output_captured
from edgeml.errors import EdgeMLError, MissingDependencyError, QuantizationError

log = logging.getLogger(__name__)

TFLITE_MODES = ("int8", "int16x8", "float16", "dynamic")
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
_INDEX_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "GATHER", "CAST", "RANGE", "FILL"}  # int32 shape arithmetic


def io_types(mode: str, io: str | None) -> str:
    """The IO dtype for ``mode`` (validated): int8 -> int8/uint8/float32, int16x8 -> int16/float32, else float32."""
    allowed = {"int8": ("int8", "uint8", "float32"), "int16x8": ("int16", "float32")}.get(mode, ("float32",))
    io = io or allowed[0]
    if io not in allowed:
        raise EdgeMLError(f"`io` {io} does not apply to `mode` {mode}", hint=f"use `io` {' or '.join(allowed)}")
    return io


def float_ops(data: bytes) -> list[str]:
    """Ops of the main graph that compute in float (boundary QUANTIZE/DEQUANTIZE excluded), as 'OP (tensor)'."""
    from edgeml.formats.tflite import TFLiteReader

    reader = TFLiteReader(Path("<model>"), data)
    sg = reader.model.Subgraphs(0)
    found = []
    for name, op in reader.operators():
        if name in _BOUNDARY_OPS or name in _INDEX_OPS:
            continue
        outs = [sg.Tensors(op.Outputs(i)) for i in range(op.OutputsLength()) if op.Outputs(i) >= 0]
        if any(reader.dtype(t) in ("float32", "float16") for t in outs):
            found.append(f"{name} ({outs[0].Name().decode('utf-8', 'replace')})")
    return found


def converter_config(mode: str, io: str, per_channel: bool, representative: Callable | None, allow_float: bool):
    def configure(converter) -> None:
        from edgeml._tf import tensorflow

        tf = tensorflow()
        types = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
            return
        if mode == "dynamic":
            return
        converter.representative_dataset = representative
        ops = (tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if mode == "int8"
               else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)
        converter.target_spec.supported_ops = [ops] + ([tf.lite.OpsSet.TFLITE_BUILTINS] if allow_float else [])
        converter.inference_input_type = types[io]
        converter.inference_output_type = types[io]
        if not per_channel:
            converter._experimental_disable_per_channel = True  # the converter's only per-tensor switch

    return configure


def from_savedmodel(folder: Path, *, mode: str, io: str, per_channel: bool, representative: Callable | None,
                    full_int8: bool, target: str) -> tuple[bytes, list[str]]:
    """Quantize a SavedModel; returns (model bytes, ops left in float)."""
    from edgeml.convert.tflite import ConversionError, convert_savedmodel

    if mode not in ("int8", "int16x8"):
        return convert_savedmodel(folder, configure=converter_config(mode, io, per_channel, None, True)), []
    try:
        data = convert_savedmodel(folder, configure=converter_config(mode, io, per_channel, representative, False))
    except ConversionError as strict_error:
        log.info("integer-only conversion failed: %s", strict_error)
        data = convert_savedmodel(folder, configure=converter_config(mode, io, per_channel, representative, True))
    left = float_ops(data) if mode == "int8" else []
    if left and full_int8:
        raise QuantizationError(
            f"target {target} needs every op in int8, but these cannot be quantized: {', '.join(left)}",
            hint="replace those layers with int8-capable ones (Conv, Dense, ReLU/ReLU6, pooling, Add, Concatenate), "
                 "or choose a target that allows float fallback")
    return data, left


def aeq_modules():
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise MissingDependencyError("quantizing an existing .tflite needs AI Edge Quantizer",
                                     hint="pip install 'edgeml-toolchain[tflite-quant]' (or quantize the Keras/SavedModel "
                                          "source instead)") from exc
    return quantizer, recipe


def from_tflite(path: Path, *, mode: str, io: str, per_channel: bool, calibration: list[dict[str, Any]] | None,
                signature: str, full_int8: bool, target: str, source: Path | None = None) -> tuple[bytes, list[str]]:
    """Quantize a float .tflite with AI Edge Quantizer; ``calibration`` is a list of {input: batch-1 array}.
    ``source``: the user's file, named in errors when ``path`` is a prepared copy of it."""
    quantizer, recipe = aeq_modules()
    if mode == "int8" and io != "int8":
        raise EdgeMLError(f"`io` {io}: a quantized .tflite made from a .tflite has int8 inputs and outputs",
                          hint="use `io` int8, or quantize the Keras/SavedModel source for float or uint8 IO")
    if mode in ("int16x8", "float16") and not per_channel:
        raise EdgeMLError("`per_channel=False` is not available for this mode from a .tflite",
                          hint="drop `per_channel=False`")
    if mode == "int8":
        q = quantizer.Quantizer(str(path))
        granularity = recipe.QuantGranularity.CHANNELWISE if per_channel else recipe.QuantGranularity.TENSORWISE
        q.add_static_config(".*", recipe.TFLOperationName.ALL_SUPPORTED, 8, 8, weight_granularity=granularity)
    else:
        table = {"int16x8": recipe.static_wi8_ai16(), "dynamic": recipe.dynamic_wi8_afp32(),
                 "float16": None}
        if table[mode] is None:
            raise EdgeMLError("`mode` float16 from a .tflite is not supported",
                              hint="convert the Keras/SavedModel source with `mode` float16")
        q = quantizer.Quantizer(str(path), table[mode])
    with all_output_captured(), warnings.catch_warnings():  # it prints a size report and progress bars
        warnings.simplefilter("ignore")
        try:
            qsv = _calibrate(q, {signature: calibration}) if q.need_calibration else None
            result = q.quantize(qsv)
        except Exception as exc:
            from importlib.metadata import version

            from edgeml.quantize.onnx import failed_in

            where = failed_in(exc, "ai_edge_quantizer")
            raise QuantizationError(
                f"{source or path}: AI Edge Quantizer {version('ai-edge-quantizer')} failed on this model: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}" + (f" (in {where})" if where else ""),
                hint="a limitation of AI Edge Quantizer on this graph: try `per_channel=False` or `mode=\"dynamic\"`, or "
                     "quantize the Keras/SavedModel source with the TFLite converter") from exc
    data = bytes(result.quantized_model)
    left = float_ops(data) if mode == "int8" else []
    if left and full_int8:
        raise QuantizationError(f"target {target} needs every op in int8, but these stayed float: {', '.join(left)}",
                                hint="quantize the Keras/SavedModel source, or choose a target that allows float")
    return data, left


def _calibrate(q: Any, data: dict) -> Any:
    """Activation ranges as the min/max over all calibration samples (what the TFLite converter's calibrator
    does). AI Edge Quantizer's default keeps a moving average (0.95 old, 0.05 new) of each sample's min/max,
    which stays near the first sample's range: a scalar-input model (TFLM's sine: x in [0, 2 pi]) got the
    input range of one sample and its int8 output was unrelated to the float one (cosine 0.38)."""
    try:
        from ai_edge_quantizer import calibrator
        from ai_edge_quantizer.utils import qsv_utils

        calib = calibrator.Calibrator(q._float_model_buffer, qsv_update_func=qsv_utils.min_max_update)
        recipes = q._recipe_manager
    except (ImportError, AttributeError, TypeError):  # another AI Edge Quantizer layout: its own calibration
        return q.calibrate(data)
    calib.calibrate(data, recipes)
    return calib.get_model_qsvs()

