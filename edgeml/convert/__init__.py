"""convert(): Keras/.h5/SavedModel -> TFLite or ONNX, TFLite -> ONNX, ONNX -> simplified ONNX.

Every conversion verifies itself: source and output run on the same samples and the output is only
written (atomically) when they agree within the tolerance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml._io import atomic_path, check_output
from edgeml._types import Data, InputShapes, PathLike
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.convert.routes import route_for
from edgeml.convert.tflite import ConversionError
from edgeml.convert.verify import Verification, compare, data_feeds, random_feeds, random_feeds_label
from edgeml.errors import EdgeMLError, VerificationError
from edgeml.options import ConvertOptions, ConvertTo

log = logging.getLogger(__name__)
TARGET_FORMATS = ConvertTo.values()
FP32_ATOL, FP16_ATOL = 1e-4, 1e-2


@dataclass
class ConvertResult:
    source: str
    source_format: str
    output: str
    to: str
    size_bytes: int
    seconds: float
    float16: bool
    opset: int | None
    simplify: dict[str, Any] | None
    verification: Verification | None
    warnings: list[str] = field(default_factory=list)
    io_quantization: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verification"] = self.verification.to_dict() if self.verification else None
        return {"schema": "edgeml.convert/1", **d}


def convert(model: PathLike, *, to: str | None = None, out: PathLike | None = None, opset: int = 17,
            simplify: bool = True, float16: bool = False, verify: int = 8, calib: Data | None = None,
            atol: float | None = None, force: bool = False, strict: bool = False,
            progress: Callable[[str], None] | None = None, keras_model: Any = None,
            input_shapes: InputShapes | None = None, options: ConvertOptions | None = None) -> Any:
    """Convert ``model`` to ``to`` at ``out``; see the module docstring. ``keras_model`` skips a reload.

    ``input_shapes`` (``NAME=D0,D1,...``) fix dynamic input dimensions of the verification samples (and, for
    ONNX -> TFLite, of the converted model). Returns a ConvertResult, or an OnnxToTFLiteResult for ONNX -> TFLite.
    ``options`` (a :class:`~edgeml.options.ConvertOptions`) gives every option at once, in place of the keyword
    arguments of the same names (a UsageError when both are given); the work reads that one object.
    """
    o = ConvertOptions.build("convert", options, locals())
    return _convert(model, o, progress, keras_model)


def _convert(model: PathLike, o: ConvertOptions, progress: Callable[[str], None] | None, keras_model: Any) -> Any:
    """:func:`convert` with its options in one object."""
    say = progress or (lambda msg: None)
    art = ModelArtifact.open(model)
    route = route_for(art, o.to)  # the format registry's conversion, or its refusal
    _refuse_unused(art, route.name, o)
    if route.make is None:  # a whole route of its own: ONNX -> TFLite through onnx2tf (edgeml.convert.onnx_tflite)
        if o.float16:
            raise EdgeMLError(f"{art.path}: `float16` is not supported for {route.label}",
                              hint="convert without `float16` (float32 output)")
        from edgeml.convert.onnx_tflite import convert_onnx_to_tflite

        return convert_onnx_to_tflite(art.path, o.out, input_shapes=o.input_shapes, verify=o.verify,
                                      calib=o.calib, atol=o.atol if o.atol is not None else FP32_ATOL, force=o.force,
                                      progress=progress, strict=o.strict)
    if o.float16 and o.to != "tflite":
        raise EdgeMLError("`float16` applies to `to` tflite only", hint="drop `float16` for ONNX output")
    out = check_output(o.out, inputs=[art.path, o.calib], force=o.force)
    atol = o.atol if o.atol is not None else (FP16_ATOL if o.float16 else FP32_ATOL)
    warnings: list[str] = []
    t0 = time.perf_counter()
    if art.format in (ModelFormat.KERAS, ModelFormat.H5) and keras_model is None:
        from edgeml.formats.keras import load

        say(f"loading {art.path}")
        keras_model = load(art.path)
    if o.verify > 0 and o.calib is None:  # refuse unknown input dims before converting, not after
        from edgeml.formats.keras import io_specs
        from edgeml.formats.shapes import resolve

        specs = io_specs(keras_model)[0] if keras_model is not None else art.inspect().inputs
        resolve(specs, o.input_shapes).require("verifying the conversion on generated inputs")
    simplify_info = None
    with atomic_path(out) as tmp:
        if o.to == "tflite":
            tmp.write_bytes(route.make(art, keras_model, opset=o.opset, float16=o.float16, say=say))
        else:
            import onnx

            proto = route.make(art, keras_model, opset=o.opset, float16=o.float16, say=say)
            if o.simplify:
                proto, simplify_info = _simplify(proto, say)
            onnx.save(proto, str(tmp))
        seconds = time.perf_counter() - t0
        verification = None
        if o.verify > 0:
            verification = _verify(art, keras_model, tmp, o.verify, o.calib, atol, say, o.input_shapes)
            if simplify_info and simplify_info["applied"] and not verification.passed:
                # simplification may be what broke it: retry with the unsimplified graph
                msg = "simplified model differs from the source; kept the unsimplified model"
                if o.strict:
                    raise VerificationError(f"{art.path}: {msg} ({verification.summary()})",
                                            hint="drop `strict` to keep the unsimplified model")
                import onnx

                onnx.save(keras_to_onnx(art, keras_model, o.opset, say), str(tmp))
                simplify_info.update(applied=False, warning=msg)
                verification = _verify(art, keras_model, tmp, o.verify, o.calib, atol, say, o.input_shapes)
            if not verification.passed:
                raise VerificationError(
                    f"{art.path}: converted {o.to} output differs from the source: {verification.summary()}",
                    hint="no output was written; try `simplify=False`, another `opset`, or a looser `atol` if "
                         "the difference is expected (e.g. `float16=True`)")
        if simplify_info and simplify_info.get("warning"):
            if o.strict:
                raise EdgeMLError(f"{art.path}: ONNX simplification failed: {simplify_info['warning']}",
                                  hint="drop `strict` to keep the unsimplified model, or pass `simplify=False`")
            warnings.append(f"kept the unsimplified model: {simplify_info['warning']}")
            log.warning("kept the unsimplified model: %s", simplify_info["warning"])
        size = tmp.stat().st_size
        io_quant = {}
        if o.to == "onnx":
            from edgeml.convert.ioquant import read_file

            io_quant = {k: q.to_dict() for k, q in read_file(tmp).items()}
    opset = None if o.to != "onnx" else _onnx_opset(art.path) if route.name == "onnx-as-is" else o.opset
    return ConvertResult(source=str(art.path), source_format=art.format.value, output=str(out), to=o.to,
                         size_bytes=size, seconds=round(seconds, 3), float16=o.float16,
                         opset=opset, simplify=simplify_info,
                         verification=verification, warnings=warnings, io_quantization=io_quant)


def _refuse_unused(art: ModelArtifact, route: str, o: ConvertOptions) -> None:
    """Options set away from their defaults that ``route`` would not apply: a UsageError, never ignored."""
    from edgeml.errors import UsageError

    if o.opset != 17 and (o.to == "tflite" or route == "onnx-as-is"):
        what = "a TFLite model has no ONNX opset" if o.to == "tflite" else \
            f"an ONNX source is written with its own opset ({_onnx_opset(art.path)}); edgeml converts no opsets"
        raise UsageError(f"`opset` {o.opset}: {what}",
                         hint="drop `opset`" + ("" if o.to == "tflite" else ", or re-export the model at that opset"))
    if not o.simplify and route == "onnx2tf":
        raise UsageError("`simplify=False`: ONNX -> TFLite always simplifies with onnxsim first (onnx2tf needs the "
                         "fixed-shape, folded graph)", hint="drop `simplify=False`")
    if o.verify == 0:
        # input_shapes also fix the converted model's inputs on the ONNX -> TFLite route; elsewhere only the samples'
        unused = o.set_away("calib", "atol", *(() if route == "onnx2tf" else ("input_shapes",)))
        if unused:
            raise UsageError(f"{' and '.join(unused)}: used to verify the conversion, but `verify` is 0",
                             hint=f"drop {' and '.join(unused)}, or verify on some samples (`verify` 8)")


def _onnx_opset(path: Path) -> int | None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")), None)


def keras_to_onnx(art: ModelArtifact, keras_model: Any, opset: int, say) -> Any:
    """``art`` (``keras_model`` for a Keras source) as an ONNX ModelProto, through the format registry's route."""
    route = route_for(art, "onnx")
    assert route.make is not None  # every ONNX route builds a proto
    return route.make(art, keras_model, opset=opset, float16=False, say=say)


def _simplify(proto: Any, say) -> tuple[Any, dict[str, Any]]:
    from edgeml.convert.simplify import simplify

    say("simplifying with onnxsim")
    return simplify(proto)


HYBRID_NOISE_FACTOR = 2.0


def _verify(art: ModelArtifact, keras_model: Any, out_path: Path, n: int, calib: Any, atol: float,
            say, input_shapes: Any = None) -> Verification:
    from edgeml.runtimes.session import KerasSession, open_session

    say(f"verifying on {n} samples")
    reference = KerasSession(keras_model) if keras_model is not None else open_session(art)
    try:
        test = open_session(out_path)
    except EdgeMLError as exc:
        reason = exc.message.replace(str(out_path), "the converted model")
        raise ConversionError(f"{art.path}: the converter produced a model its runtime refuses: {reason}",
                              hint="no output was written; try another `opset` or `simplify=False`") from exc
    if calib is not None:
        feeds = data_feeds(reference.inputs, calib, n)
        label = f"data {getattr(calib, 'origin', None) or calib}"
    else:
        values = art.inspect().input_values if keras_model is None else {}  # e.g. sr = 16000
        feeds = random_feeds(reference.inputs, n, seed=0, input_shapes=input_shapes,
                             what="verifying the conversion on generated inputs", values=values)
        label = random_feeds_label(reference.inputs, values)
    hybrid = _hybrid_float_reference(art) if keras_model is None else None
    if hybrid is None:
        return compare(reference, test, feeds, atol=atol, data=label)
    import math
    import tempfile

    # a hybrid (dynamic-range) .tflite quantizes activations to int8 at run time, and so does its conversion
    # (DynamicQuantizeLinear), with another rounding scheme: the two differ by up to the activation
    # quantization noise. That noise is measured (the source against its own weights dequantized, in float),
    # and each output is judged within HYBRID_NOISE_FACTOR x it (never tighter than --atol)
    data, int8 = hybrid
    result = compare(reference, test, feeds, atol=atol, data=label)
    with tempfile.TemporaryDirectory(prefix="edgeml-verify-") as tmp:
        float_ref = Path(tmp) / "dequantized.tflite"
        float_ref.write_bytes(data)
        noise = compare(reference, open_session(float_ref), feeds, atol=math.inf, data=label)
    by_ref = {o["reference"]: o["normalized_max_diff"] for o in noise.outputs}
    for o in result.outputs:
        o["tolerance"] = max(atol, HYBRID_NOISE_FACTOR * by_ref.get(o["reference"], 0.0))
        o["passed"] = o["normalized_max_diff"] <= o["tolerance"]
    result.passed = all(o["passed"] for o in result.outputs)
    result.tolerance_basis = (f"{HYBRID_NOISE_FACTOR:g}x the source's own activation quantization noise: "
                              "a hybrid model")
    result.notes.append(f"the source is a hybrid (dynamic-range) model: {int8} int8 weight tensor(s), activations "
                        "quantized to int8 at run time by its kernels (and by the converted model's "
                        "DynamicQuantizeLinear); the source differs from its own weights in float by max "
                        f"{noise.normalized_max_diff:.3g} (normalised), the tolerance is "
                        f"{HYBRID_NOISE_FACTOR:g}x that per output")
    return result


def _hybrid_float_reference(art: ModelArtifact) -> tuple[bytes, int] | None:
    """(the float model, int8 weights dequantized) behind a hybrid .tflite; None for any other model."""
    if art.format is not ModelFormat.TFLITE:
        return None
    from edgeml.formats.tflite_edit import dequantize_weights, hybrid_weights

    data = art.path.read_bytes()
    if not hybrid_weights(data):
        return None
    deq, int8, _ = dequantize_weights(data)
    return deq, int8


__all__ = ["ConvertResult", "ConversionError", "VerificationError", "convert"]
