"""quantize()'s per-format routes: what turns the source into a quantized file at ``tmp`` (and its float
reference), and leaves the budget's fallback builders in ``ctx``.

- ``tflite_route``: a float .tflite through AI Edge Quantizer (``float_tflite`` prepares it), Keras/SavedModel
  through the TFLite converter;
- ``onnx_route``: ONNX Runtime's quantizer (QDQ), from an ONNX source or a Keras model exported with tf2onnx.

Each returns (float reference path, ops left in float, recipe).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeml.artifact import ModelFormat
from edgeml.errors import QuantizationError


def tflite_route(art, keras_model, work: Path, tmp: Path, mode, io, per_channel, ds, profile, notes, say, ctx=None):
    from edgeml.quantize import tflite as tq

    recipe = {"quantizer": "", "mode": mode, "io": io, "per_channel": per_channel, "method": "minmax",
              "full_int8_required": profile.full_int8}
    if art.format is ModelFormat.TFLITE:
        float_path, source, signature, names, added = float_tflite(art, work, notes, say)
        calibration = None
        if ds is not None:
            by_name = set(names) == set(ds.input_names)
            calibration = [{n: s.batch1()[n if by_name else k] for n, k in zip(names, ds.input_names)}
                           for s in ds]
        say(f"quantizing with AI Edge Quantizer ({mode})")
        try:
            data, left = tq.from_tflite(source, mode=mode, io=io, per_channel=per_channel, calibration=calibration,
                                        signature=signature, full_int8=profile.full_int8, target=profile.name,
                                        source=art.path)
        except QuantizationError as exc:
            dynamic = [t for t in art.inspect().inputs if any(d is None for d in t.shape)]
            if dynamic and "failed to prepare" in exc.message:  # its interpreter runs at the file's shape
                shown = ", ".join(f"'{t.name}' {t.shape_str()}" for t in dynamic)
                raise QuantizationError(
                    f"{art.path}: input {shown} has dynamic dimensions, and AI Edge Quantizer's interpreter "
                    "cannot prepare the model without a fixed size (XNNPack: failed to reshape)",
                    hint="re-export the model with a fixed input shape (the size it is run at), then quantize "
                         "that") from exc
            flow = {op: n for op, n in art.inspect().ops.items() if op in ("IF", "WHILE")}
            if not flow or "tensor_name_to_qsv" not in exc.message:
                raise
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(flow.items()))
            raise QuantizationError(
                f"{art.path}: the model has control flow ({ops}): AI Edge Quantizer {mode} cannot calibrate the "
                "tensors inside its branch/body subgraphs", hint="use `mode=\"dynamic\"` (int8 weights, float "
                "activations), or quantize the Keras/SavedModel source") from exc
        if added:  # the signature was edgeml's: the output keeps the source's contract
            from edgeml.formats.tflite_edit import strip_signatures

            data = strip_signatures(data)
        recipe["quantizer"] = "ai-edge-quantizer"
        tmp.write_bytes(data)
        if ctx is not None and calibration is not None:
            from edgeml.quantize.fallback import aeq_builder

            scheme = "float" if mode == "int16x8" else ctx.get("fallback") or "int16x8"
            ctx["scheme"] = scheme
            ctx["make"] = lambda: aeq_builder(source, per_channel=per_channel, calibration=calibration,
                                              signature=signature, scheme=scheme, work=work)
            if added:  # the candidates keep edgeml's temporary signature, as the plain output did before stripping
                ctx["post"] = "strip_signatures"
        return float_path, left, recipe
    from edgeml.convert.tflite import convert_savedmodel, export_savedmodel

    # full-int8 targets (the Edge TPU) compile static shapes only: batch 1, as the board runs it
    batch = 1 if profile.full_int8 else None
    folder = art.path if art.format is ModelFormat.SAVEDMODEL else export_savedmodel(keras_model, work / "sm",
                                                                                         batch=batch)
    if batch:
        notes.append("batch fixed to 1 for the Edge TPU (static shapes only)")
    say("converting the float reference (TFLite converter)")
    float_path = work / "float.tflite"
    float_path.write_bytes(convert_savedmodel(folder))
    say(f"quantizing ({mode}, calibrating on {len(ds)} samples)" if ds is not None and mode in ("int8", "int16x8")
        else f"quantizing ({mode})")
    data, left = tq.from_savedmodel(folder, mode=mode, io=io, per_channel=per_channel,
                                    representative=ds.representative_dataset() if ds is not None else None,
                                    full_int8=profile.full_int8, target=profile.name)
    recipe["quantizer"] = "tflite-converter"
    tmp.write_bytes(data)
    if ctx is not None:
        if ctx.get("fallback") == "int16x8":
            ctx["why_no_fallback"] = ("`fallback` int16x8 needs per-op precision, which the TFLite converter does "
                                      "not offer: use `fallback=\"float\"`, or quantize the float .tflite")
        elif mode == "int8":
            from edgeml.quantize.fallback import converter_builder

            ctx["scheme"] = "float"
            ctx["make"] = lambda: converter_builder(folder, float_path, io=io, per_channel=per_channel,
                                                    representative=ds.representative_dataset(), work=work)
        else:
            ctx["why_no_fallback"] = ("the TFLite converter cannot mix precisions per op in `mode` int16x8: "
                                      "quantize the float .tflite (AI Edge Quantizer) for per-op fallback")
    return float_path, left, recipe


def float_tflite(art, work: Path, notes: list[str], say) -> tuple[Path, Path, str, list[str], bool]:
    """(float reference, file to quantize, signature key, its input names, signature added) for a .tflite.

    A hybrid model's int8 weights are dequantized first (the float model is the reference); old-schema
    operator codes are normalised; a model without a SignatureDef gets a temporary one over subgraph 0
    (AI Edge Quantizer calibrates through signatures).
    """
    from edgeml.formats import tflite_edit
    from edgeml.runtimes.litert import load_interpreter

    float_path = art.path
    data, dense = tflite_edit.densify(art.path.read_bytes())
    if dense:  # sparse weights: AI Edge Quantizer quantizes a DENSIFY output as an activation (zero point -128)
        float_path = work / "dense.tflite"
        float_path.write_bytes(data)
        notes.append(f"{dense} sparse weight tensor(s) (DENSIFY ops) stored dense before quantization (the values "
                     "LiteRT's DENSIFY computes)")
    hybrid, consts = tflite_edit.stored_weights(data)
    if hybrid or consts:
        say("turning stored int8/float16 weights into float32")
        data, int8, folded = tflite_edit.dequantize_weights(data)
        float_path = work / "dequantized.tflite"
        float_path.write_bytes(data)
        if hybrid:
            notes.append(f"the source is a hybrid (dynamic-range) model: its {int8} int8 weight tensor(s) were "
                         "dequantized to float32 and the model quantized fully; fidelity is measured against that "
                         "dequantized float model")
        if folded:
            notes.append(f"{folded} DEQUANTIZE op(s) of stored (float16/int8) weights folded into float32 "
                         "constants before quantization")
    data, fixed = tflite_edit.normalise_opcodes(data)
    if fixed:
        notes.append(f"{fixed} operator code(s) in the pre-2020 schema form (builtin_code 0) normalised for "
                     "AI Edge Quantizer")
    data, renamed = tflite_edit.unique_tensor_names(data)
    if renamed:  # AI Edge Quantizer keys its parameters by tensor name over all subgraphs
        notes.append(f"{renamed} tensor name(s) repeated across subgraphs (control-flow branches) made unique "
                     "with an 'sgN/' prefix for AI Edge Quantizer")
        fixed += renamed
    sigs = load_interpreter(float_path, allocate=False).get_signature_list()
    added = not sigs
    if sigs:
        signature = next(iter(sigs))
        if len(sigs) > 1:
            notes.append(f"the model has {len(sigs)} signatures; quantized through the first, {signature!r}")
        names = list(sigs[signature].get("inputs", []))
    else:
        info = art.inspect()
        names, outs = [t.name for t in info.inputs], [t.name for t in info.outputs]
        data = tflite_edit.add_signature(data, names, outs)
        signature = tflite_edit.TEMP_SIGNATURE
        notes.append("the model has no SignatureDef: quantized through a temporary signature over its main "
                     "subgraph (tensor names kept; the output has no signature, like the source)")
    if not fixed and not added:
        return float_path, float_path, signature, names, False
    source = work / "prepared.tflite"
    source.write_bytes(data)
    return float_path, source, signature, names, added


def onnx_route(art, keras_model, work: Path, tmp: Path, mode, per_channel, method, ds, profile, notes, say, ctx=None):
    import onnx

    from edgeml.quantize import onnx as oq

    if art.format is ModelFormat.ONNX:
        from edgeml.formats.onnx import load

        proto = load(art.path)
    else:
        from edgeml.convert import keras_to_onnx

        proto = keras_to_onnx(art, keras_model, 17, say)
    say("preparing the ONNX graph (opset, constants, onnxsim)")
    prepared = oq.prepare(proto, art.path, notes)
    recipe = oq.recipe_for(profile, per_channel=per_channel, method=method)
    if mode == "dynamic":
        recipe = {"format": "dynamic", "weight_type": "int8", "per_channel": per_channel,
                  "basis": "ONNX Runtime quantize_dynamic"}
        info = oq.quantize_dynamic(prepared, tmp, per_channel=per_channel)
        if per_channel and any(n.op_type == "Conv" for n in prepared.graph.node):
            notes.append("ONNX Runtime's dynamic quantization scales MatMul/Gemm weights per channel and Conv weights "
                         "per tensor (ConvInteger takes one weight scale)")
    else:
        say(f"calibrating ({method}, {len(ds)} samples) and writing QDQ "
            f"(activations {recipe['activation_type']}, weights {recipe['weight_type']})")
        from edgeml.calibration.streaming import progress_lines

        keep = work / "ranges.json" if ctx is not None else None
        info = oq.quantize_static(prepared, tmp, ds.calibration_reader(), recipe, progress=progress_lines(say),
                                  keep_ranges=keep)
        recipe["preprocess"] = info.get("preprocess")
        if info.get("workaround"):
            notes.append(info["workaround"])
        recipe["calibration"] = info.get("calibration")  # moved into QuantizeResult.calibration by quantize()
    refuse_if_nothing_quantized(onnx.load(str(tmp)), art.path)
    float_path = work / "float.onnx"
    onnx.save(info["preprocessed"], str(float_path))
    if ctx is not None:
        if ctx.get("fallback") == "int16x8":
            ctx["why_no_fallback"] = ("`fallback` int16x8 is not available for ONNX here (ORT's per-node 16-bit "
                                      "overrides are not wired in): use `fallback=\"float\"`")
        elif info.get("ranges_cache"):
            from edgeml.quantize.fallback import onnx_builder

            ctx["scheme"] = "float"
            ctx["make"] = lambda: onnx_builder(float_path, info["ranges_cache"], recipe, info["extra_options"], work)
        else:
            ctx["why_no_fallback"] = ("this onnxruntime has no calibration cache hook (quantize_static("
                                      "calibration_cache_path=)): upgrade onnxruntime for per-node fallback")
    left: list[str] = []
    return float_path, left, recipe


def refuse_if_nothing_quantized(model: Any, path: Path) -> None:
    """An "int8" ONNX model without one quantized op is the float model under another name: refused."""
    from edgeml.quantize.onnx import CONTROL_FLOW, QUANTIZED_OPS

    if any(n.op_type in QUANTIZED_OPS for n in model.graph.node):
        return
    flow = sorted({n.op_type for n in model.graph.node if n.op_type in CONTROL_FLOW})
    why = (f"its compute is inside control-flow subgraphs ({', '.join(flow)}), which ONNX Runtime's quantizer "
           "leaves in float" if flow else "ONNX Runtime's quantizer found no op it quantizes")
    raise QuantizationError(f"{path}: nothing was quantized: {why}; the output would be the float model",
                            hint="re-export the model without If/Loop around its layers (one graph per branch), "
                                 "then quantize that" if flow else "check the model's ops (`edgeml.inspect(MODEL)`)")
