"""Re-quantize with some layers left out: the ``build(keys) -> Path`` functions the budget search calls.

Each builder reuses the plain quantization's calibration (no second pass over the data):

- ONNX: ORT ``quantize_static`` on the same pre-processed graph, ranges from the kept calibration cache,
  ``nodes_to_exclude`` = the fallen-back nodes (they compute in float). Key: node name (unnamed nodes get
  ``edgeml_node_<i>``).
- TFLite from Keras/SavedModel (TFLite converter): the model is calibrated once (``_experimental_calibrate_only``),
  then each candidate is quantized from that calibrated model with ``denylisted_nodes`` (the converter's
  selective quantization, as ``tf.lite.experimental.QuantizationDebugger`` does): those ops stay float.
  Key: the op's output tensor name.
- TFLite from a float .tflite (AI Edge Quantizer): one calibration, then a recipe whose later entries set the
  fallen-back ops (matched by output tensor name) to int16 activations / int8 weights (``int16x8``), or to no
  quantization (``float``). Key: the op's output tensor name.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeml._quiet import all_output_captured
from edgeml.errors import QuantizationError

Build = Callable[[list[str]], Path]


class Builder:
    """``build(units)`` -> a new candidate file; ``key_of(tensor)`` -> the fallback unit of an SQNR row (None: not
    one); ``nodes(units)`` -> what is excluded (a unit is a tensor kept in float: its producer and every consumer,
    so that no quantize/dequantize pair is left on it)."""

    def __init__(self, build: Callable[[list[str]], Path], producer: dict[str, str],
                 consumers: dict[str, list[str]]):
        self._build, self.producer, self.consumers = build, producer, consumers

    def key_of(self, tensor: str) -> str | None:
        return tensor if tensor in self.producer else None

    def nodes(self, units: list[str]) -> list[str]:
        out: list[str] = []
        for t in units:
            for n in [self.producer[t], *self.consumers.get(t, [])]:
                if n not in out:
                    out.append(n)
        return out

    def build(self, units: list[str]) -> Path:
        return self._build(self.nodes(units))


def plain_rows(plain: Path, fmt: str) -> list[Any]:
    """Stand-in rows (SQNR unknown) when the per-layer report is unavailable: the plain model's quantized
    activations, output side first."""
    import math

    from edgeml.quantize.debug import LayerError

    nan = math.nan
    rows = []
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(plain))
        inits = {i.name for i in model.graph.initializer}
        producer = {o: n.op_type for n in model.graph.node for o in n.output}
        for n in model.graph.node:
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits and n.input[0] in producer:
                rows.append(LayerError(n.input[0], producer[n.input[0]], nan, nan, (nan, nan)))
    else:
        from edgeml.formats.tflite import TFLiteReader

        reader = TFLiteReader(plain, plain.read_bytes())
        sg = reader.model.Subgraphs(0)
        for name, op in reader.operators():
            if name in ("QUANTIZE", "DEQUANTIZE") or op.OutputsLength() == 0 or op.Outputs(0) < 0:
                continue
            t = sg.Tensors(op.Outputs(0))
            if reader.dtype(t) in ("int8", "int16", "uint8"):
                rows.append(LayerError(t.Name().decode("utf-8", "replace"), name, nan, nan, (nan, nan)))
    return rows[::-1]


def onnx_builder(pre_path: Path, ranges_cache: str, recipe: dict[str, Any], extra: dict[str, Any],
                 work: Path) -> Builder:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    from edgeml.quantize.onnx import ort_error, qtype

    model = onnx.load(str(pre_path))
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"edgeml_node_{i}"
    named = work / "budget_pre.onnx"
    onnx.save(model, str(named))
    producer = {o: n.name for n in model.graph.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    counter = itertools.count()
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[recipe["method"]]

    def build(keys: list[str]) -> Path:
        out = work / f"budget_{next(counter)}.onnx"
        try:
            with all_output_captured():
                ort_quantize_static(str(named), str(out), None, quant_format=QuantFormat.QDQ,
                                    per_channel=recipe["per_channel"],
                                    activation_type=qtype(recipe["activation_type"]),
                                    weight_type=qtype(recipe["weight_type"]), calibrate_method=method,
                                    extra_options=dict(extra), calibration_cache_path=ranges_cache,
                                    nodes_to_exclude=list(keys))
        except Exception as exc:
            raise ort_error(exc, "static") from exc
        return out

    return Builder(build, producer, consumers)


def converter_builder(folder: Path, float_tflite: Path, *, io: str, per_channel: bool, representative: Callable,
                      work: Path) -> Builder:
    """TFLite converter with ``denylisted_nodes`` on a once-calibrated model (int8 only)."""
    from edgeml._tf import tensorflow
    from edgeml.convert.tflite import convert_savedmodel
    from edgeml.quantize.tflite import converter_config

    tf = tensorflow()
    base = converter_config("int8", io, per_channel, representative, True)

    def calibrate_only(converter) -> None:
        base(converter)
        converter._experimental_calibrate_only = True

    calibrated = convert_savedmodel(folder, configure=calibrate_only)
    from tensorflow.lite.python import convert as tfl_convert

    types = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
    counter = itertools.count()

    def build(keys: list[str]) -> Path:
        out = work / f"budget_{next(counter)}.tflite"
        try:
            with all_output_captured():
                data = tfl_convert.mlir_quantize(calibrated, not per_channel, input_data_type=types[io],
                                                 output_data_type=types[io], denylisted_nodes=list(keys))
        except Exception as exc:
            raise QuantizationError(f"the TFLite quantizer failed with {len(keys)} layer(s) left in float: "
                                    f"{' '.join(str(exc).split())[:300]}",
                                    hint="report this with its traceback (`traceback.print_exc()`); "
                                         "`min_fidelity`/`max_accuracy_drop` without fallback: "
                                         "`target=\"coral-usb\"`") from exc
        out.write_bytes(data)
        return out

    return Builder(build, *_tflite_graph(float_tflite))


def _tflite_graph(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(tensor -> producing op's key, tensor -> consuming ops' keys); an op's key is its first output's name
    (the name the converter's denylist and AI Edge Quantizer's regex match)."""
    from edgeml.formats.tflite import TFLiteReader

    reader = TFLiteReader(path, path.read_bytes())
    sg = reader.model.Subgraphs(0)
    name = lambda t: sg.Tensors(t).Name().decode("utf-8", "replace")  # noqa: E731
    producer: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}
    for _, op in reader.operators():
        outs = [op.Outputs(i) for i in range(op.OutputsLength()) if op.Outputs(i) >= 0]
        if not outs:
            continue
        key = name(outs[0])
        for t in outs:
            producer[name(t)] = key
        for i in range(op.InputsLength()):
            if op.Inputs(i) >= 0:
                consumers.setdefault(name(op.Inputs(i)), []).append(key)
    return producer, consumers


def aeq_builder(source: Path, *, per_channel: bool, calibration: list[dict[str, Any]], signature: str,
                scheme: str, work: Path) -> Builder:
    """AI Edge Quantizer: int8 everywhere, the fallen-back ops int16x8 (``scheme`` 'int16x8') or float."""
    from edgeml.quantize.tflite import aeq_modules

    quantizer, recipe = aeq_modules()
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    granularity = recipe.QuantGranularity.CHANNELWISE if per_channel else recipe.QuantGranularity.TENSORWISE

    def make(keys: list[str]):
        q = quantizer.Quantizer(str(source))
        q.add_static_config(".*", recipe.TFLOperationName.ALL_SUPPORTED, 8, 8, weight_granularity=granularity)
        for key in keys:
            regex = f"^{re.escape(key)};"  # AEQ scope: output tensor names, each followed by ";"
            if scheme == "int16x8":
                q.add_static_config(regex, recipe.TFLOperationName.ALL_SUPPORTED, 16, 8)
            else:
                q._recipe_manager.add_quantization_config(regex, recipe.TFLOperationName.ALL_SUPPORTED,
                                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
        return q

    with all_output_captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranges = make([]).calibrate({signature: calibration})
    counter = itertools.count()

    def build(keys: list[str]) -> Path:
        out = work / f"budget_{next(counter)}.tflite"
        with all_output_captured(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                q = make(keys)
                result = q.quantize(ranges)  # the int8 calibration covers every tensor
            except Exception as exc:
                raise QuantizationError(f"AI Edge Quantizer failed with {len(keys)} layer(s) in {scheme}: "
                                        f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                                        hint="report this with its traceback (`traceback.print_exc()`)") from exc
        out.write_bytes(bytes(result.quantized_model))
        return out

    return Builder(build, *_tflite_graph(source))


__all__ = ["Builder", "aeq_builder", "converter_builder", "onnx_builder"]
