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
from edgeml.errors import EdgeMLError, QuantizationError

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


def qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "int16": QuantType.QInt16}[name]


def quantize_static(model, out: Path, reader: Any, recipe: dict[str, Any], *, preprocess: bool = True,
                    progress: Any = None, keep_ranges: Path | None = None) -> dict:
    """Pre-process and quantize ``model`` (a prepared ModelProto) to ``out``; returns timings/notes.

    ``keep_ranges``: copy the calibrated ranges (ORT's calibration cache) there, for re-quantizing the same
    pre-processed graph without calibrating again (``info["ranges_cache"]``, ``info["extra_options"]``)."""
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

        def run() -> None:
            with all_output_captured():
                ort_quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                                    per_channel=recipe["per_channel"], activation_type=qtype(recipe["activation_type"]),
                                    weight_type=qtype(recipe["weight_type"]), calibrate_method=method,
                                    extra_options=extra, **cal_kwargs)

        try:
            run()
        except EdgeMLError:
            raise  # the calibration reader's own data errors
        except Exception as exc:
            # with precomputed ranges (reader None) a second run needs no data; otherwise the reader must rewind
            if failed_in(exc) != _BIAS_ADJUST or not (reader is None or hasattr(reader, "rewind")):
                raise ort_error(exc, "static") from exc
            # ORT's per-channel weight-scale adjustment for int32 biases breaks on some bias layouts (a bias
            # that is not 1-D per channel); it only matters for biases too small for the int32 scale
            if reader is not None:
                reader.rewind()
            extra["QDQDisableWeightAdjustForInt32Bias"] = True
            try:
                run()
            except EdgeMLError:
                raise
            except Exception as exc2:
                raise ort_error(exc2, "static") from exc2
            info["workaround"] = (f"ONNX Runtime's int32-bias weight-scale adjustment failed "
                                  f"({type(exc).__name__} in {_BIAS_ADJUST}); quantized with "
                                  "QDQDisableWeightAdjustForInt32Bias")
        info["quantize_seconds"] = round(time.perf_counter() - t0, 3)
        info["extra_options"] = dict(extra)
        if keep_ranges is not None and cal_kwargs.get("calibration_cache_path"):
            import shutil

            info["ranges_cache"] = str(shutil.copyfile(cal_kwargs["calibration_cache_path"], keep_ranges))
        info["preprocessed"] = onnx.load(str(pre)) if preprocess else model
    return info


_BIAS_ADJUST = "_adjust_weight_scale_for_int32_bias"


def failed_in(exc: BaseException, package: str = "onnxruntime") -> str | None:
    """The innermost function of ``package`` in ``exc``'s traceback."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if package in f.filename]
    return frames[-1].name if frames else None


def ort_error(exc: BaseException, kind: str) -> QuantizationError:
    """Say which failed: a calibration run of the model on the data, or ONNX Runtime's quantizer itself."""
    import traceback

    import onnxruntime

    text = " ".join(str(exc).split())[:300]
    name = type(exc).__name__
    if type(exc).__module__.startswith("onnxruntime.capi") and name == "InvalidArgument":
        # the C++ runtime refused a calibration run: the data does not fit the model
        return QuantizationError(f"ONNX Runtime could not run the model on the calibration data ({name}: {text})",
                                 hint="check the calibration data's shape, dtype and layout match the model's inputs "
                                      "(`edgeml.inspect(MODEL)`; edgeml data inspect SPEC)")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "onnxruntime" in f.filename]
    where = ""
    if frames:
        f = frames[-1]
        tail = f.filename.split("onnxruntime", 1)[-1].lstrip("/\\")
        where = f" in onnxruntime/{tail}:{f.lineno} ({f.name})"
    return QuantizationError(
        f"ONNX Runtime {onnxruntime.__version__}'s {kind} quantizer failed internally on this graph: "
        f"{name}: {text}{where}",
        hint="this is the quantizer's limitation on this graph, not a data problem: try `per_channel=False`, "
             "`mode=\"dynamic\"`, or `format=\"tflite\"` from the Keras/SavedModel source; "
             "`traceback.print_exc()` shows the traceback")


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


def quantize_dynamic(model, out: Path, *, per_channel: bool = True) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgeml-q-") as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, str(src))
        with all_output_captured():
            try:
                ort_quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=per_channel)
            except Exception as exc:
                raise ort_error(exc, "dynamic") from exc
    return {"preprocessed": model}


def check_modes(mode: str, io: str | None, method: str) -> None:
    if mode not in ONNX_MODES:
        raise EdgeMLError(f"`mode` {mode} is not available for ONNX output", hint="use `mode` int8 or `mode` dynamic, "
                                                                                   "or `format` tflite")
    if io not in (None, "float32"):
        raise EdgeMLError(f"`io` {io}: ONNX QDQ models keep float32 inputs and outputs",
                          hint="drop `io` for ONNX (the QuantizeLinear at the input does the conversion)")
    if method not in METHODS:
        raise EdgeMLError(f"`method` {method}: unknown", hint=f"use one of {', '.join(METHODS)}")
