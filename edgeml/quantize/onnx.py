"""ONNX static QDQ quantization with ONNX Runtime's quantizer.

Real-world files first get fixed up: weights stored as Constant nodes become initializers (onnxsim
folds ConstantOfShape-style weights), old opsets are upgraded to 13+ so per-channel QDQ is valid, and
ONNX Runtime's pre-processing (shape inference + graph fusion) runs before calibration. The output is
checked to load and run before it is kept.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from edgeml._quiet import all_output_captured
from edgeml.errors import EdgeMLError
from edgeml.quantize.tflite import QuantizationError

log = logging.getLogger(__name__)

ONNX_MODES = ("int8", "dynamic")
METHODS = ("minmax", "entropy", "percentile")
MIN_OPSET = 13
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                 "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd"}
CONTROL_FLOW = {"If", "Loop", "Scan"}


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def constants_to_initializers(model) -> int:
    """Move top-level ``Constant`` nodes that hold tensors into initializers (the quantizer needs those)."""
    from onnx import helper, numpy_helper

    moved = 0
    keep = []
    for node in model.graph.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and "value" in attr:
            tensor = helper.get_attribute_value(attr["value"])
            arr = numpy_helper.to_array(tensor)
            model.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            moved += 1
        else:
            keep.append(node)
    if moved:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return moved


def prepare(model, path: Path, notes: list[str]):
    """Fix-ups that make a float model quantizable; returns the prepared ModelProto."""
    import onnx

    if _opset(model) < MIN_OPSET:
        from onnx import version_converter

        old = _opset(model)
        try:
            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:
            raise QuantizationError(f"{path}: upgrading opset {old} to {MIN_OPSET} for QDQ failed: "
                                    f"{' '.join(str(exc).split())[:200]}",
                                    hint="re-export the model with opset >= 13") from exc
        notes.append(f"upgraded opset {old} -> {MIN_OPSET} (QDQ per-channel needs >= 13)")
    from edgeml.convert.simplify import simplify

    model, info = simplify(model)
    if info.get("applied") and info["nodes_after"] != info["nodes_before"]:
        notes.append(f"onnxsim folded constants: {info['nodes_before']} -> {info['nodes_after']} nodes")
    moved = constants_to_initializers(model)
    if moved:
        notes.append(f"{moved} Constant-node weights moved to initializers")
    flow = sorted({n.op_type for n in model.graph.node if n.op_type in CONTROL_FLOW})
    if flow:
        notes.append(f"control flow ({', '.join(flow)}): subgraphs are left in float")
    onnx.checker.check_model(model)
    return model


def recipe_for(profile: Any, *, per_channel: bool, method: str) -> dict[str, Any]:
    q = profile.quantize
    act = q.get("onnx_activation", "uint8")
    return {"format": "QDQ", "activation_type": act, "weight_type": q.get("onnx_weight", "int8"),
            "activation_symmetric": bool(q.get("onnx_symmetric", False)), "weight_symmetric": True,
            "per_channel": per_channel, "method": method, "basis": q.get("onnx_basis", "")}


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "int16": QuantType.QInt16}[name]


def quantize_static(model, out: Path, reader: Any, recipe: dict[str, Any], *, preprocess: bool = True,
                    progress: Any = None) -> dict:
    """Pre-process and quantize ``model`` (a prepared ModelProto) to ``out``; returns timings/notes."""
    import time

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgeml-q-") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        pre = Path(tmp) / "pre.onnx"
        if preprocess:
            pre = _preprocess(src, pre, info)
        else:
            pre = src
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[recipe["method"]]
        extra = {"ActivationSymmetric": recipe["activation_symmetric"], "WeightSymmetric": recipe["weight_symmetric"]}
        t0 = time.perf_counter()
        # -- streaming calibration, bounded memory (edgeml.calibration.streaming); ORT still builds the QDQ graph --
        from edgeml.calibration.streaming import ort_calibration

        reader, cal_kwargs, info["calibration"] = ort_calibration(pre, reader, method=recipe["method"],
                                                                  work_dir=Path(tmp), progress=progress)
        # -- end streaming calibration --
        with all_output_captured():
            try:
                ort_quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                                    per_channel=recipe["per_channel"], activation_type=_qtype(recipe["activation_type"]),
                                    weight_type=_qtype(recipe["weight_type"]), calibrate_method=method,
                                    extra_options=extra, **cal_kwargs)
            except Exception as exc:
                raise QuantizationError(f"ONNX Runtime static quantization failed: {' '.join(str(exc).split())[:300]}",
                                        hint="check the calibration data matches the model; see --debug") from exc
        info["quantize_seconds"] = round(time.perf_counter() - t0, 3)
        info["preprocessed"] = onnx.load(str(pre)) if preprocess else model
    return info


def _preprocess(src: Path, dst: Path, info: dict[str, Any]) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    for kwargs in ({}, {"skip_symbolic_shape": True}):
        try:
            with all_output_captured():
                quant_pre_process(str(src), str(dst), **kwargs)
            info["preprocess"] = "shape inference + ORT graph optimization" + (
                " (symbolic shape inference skipped)" if kwargs else "")
            return dst
        except Exception as exc:  # symbolic shape inference fails on some dynamic graphs
            log.info("quant_pre_process%s failed: %s", kwargs, exc)
    info["preprocess"] = "skipped (pre-processing failed on this graph)"
    return src


def quantize_dynamic(model, out: Path) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgeml-q-") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        with all_output_captured():
            try:
                ort_quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
            except Exception as exc:
                raise QuantizationError(f"ONNX Runtime dynamic quantization failed: {str(exc)[:300]}") from exc
    return {"preprocessed": model}


def check_modes(mode: str, io: str | None, method: str) -> None:
    if mode not in ONNX_MODES:
        raise EdgeMLError(f"--mode {mode} is not available for ONNX output", hint="use --mode int8 or --mode dynamic, "
                                                                                   "or --format tflite")
    if io not in (None, "float32"):
        raise EdgeMLError(f"--io {io}: ONNX QDQ models keep float32 inputs and outputs",
                          hint="drop --io for ONNX (the QuantizeLinear at the input does the conversion)")
    if method not in METHODS:
        raise EdgeMLError(f"--method {method}: unknown", hint=f"use one of {', '.join(METHODS)}")
