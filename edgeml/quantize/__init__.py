"""quantize(): int8 (and int16x8 / float16 / dynamic) post-training quantization with calibration data.

    >>> from edgeml.quantize import quantize
    >>> r = quantize("model.keras", calib="builtin:digits?split=train", out="model_int8.tflite")
    >>> r.size_after_bytes, r.metrics.argmax_agreement, r.layers[0]   # worst layer first

The float model and the quantized model run on the same calibration samples afterwards: whole-model
metrics (output MSE, cosine, argmax agreement) and per-layer SQNR (see ``edgeml.quantize.debug``). The
output is written atomically and only after it loads and runs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml._io import atomic_path, check_output
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError
from edgeml.quantize.debug import LayerError
from edgeml.quantize.tflite import TFLITE_MODES, QuantizationError

log = logging.getLogger(__name__)

MODES = TFLITE_MODES
DEFAULT_CALIB_SAMPLES = 200
DEBUG_SAMPLES = 16


@dataclass
class QuantizeResult:
    source: str
    source_format: str
    output: str
    format: str
    mode: str
    io: str
    per_channel: bool
    method: str
    target: str
    recipe: dict[str, Any]
    source_size_bytes: int
    size_before_bytes: int
    size_after_bytes: int
    calibration: dict[str, Any] | None
    float_ops: list[str]
    metrics: Any
    layers: list[LayerError]
    accuracy: dict[str, Any] | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        return self.size_after_bytes / self.size_before_bytes if self.size_before_bytes else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("metrics", "layers")}
        d["size_ratio"] = round(self.size_ratio, 4)
        d["metrics"] = self.metrics.to_dict() if self.metrics is not None else None
        d["layers"] = [layer.to_dict() for layer in self.layers]
        return {"schema": "edgeml.quantize/1", **d}


def _already_quantized(art: ModelArtifact) -> str | None:
    if art.format is ModelFormat.ONNX:  # the cached inspection has the op histogram: no second load
        from edgeml.quantize.onnx import QUANTIZED_OPS

        ops = sorted(set(art.inspect().ops) & QUANTIZED_OPS)
        return f"it has quantized ops ({', '.join(ops)})" if ops else None
    if art.format is ModelFormat.TFLITE:
        info = art.inspect()
        q = [d for d in info.weight_dtypes if d in ("int8", "uint8", "int4", "int16")]
        if q or "QUANTIZE" in info.ops and any(t.quantization for t in info.inputs + info.outputs):
            return f"its weights are {', '.join(q) or 'quantized'}"
    return None


def _formats(art: ModelArtifact, fmt: str | None, profile: Any) -> str:
    if fmt is None:
        fmt = art.format.value if art.format in (ModelFormat.TFLITE, ModelFormat.ONNX) else profile.formats[0]
    if fmt not in ("tflite", "onnx"):
        raise EdgeMLError(f"--format {fmt}: unknown", hint="use --format tflite or --format onnx")
    if not profile.accepts(fmt):
        raise EdgeMLError(f"--target {profile.name} does not run {fmt} models",
                          hint=f"use --format {profile.formats[0]}")
    if art.format is ModelFormat.TFLITE and fmt == "onnx":
        raise EdgeMLError(f"{art.path}: quantizing a .tflite to ONNX is not supported",
                          hint="convert it first: edgeml convert MODEL.tflite --to onnx, then quantize the .onnx")
    return fmt


def _dataset(calib: Any, samples: int | None, inputs: list) -> Any:
    from edgeml.bench.accuracy import float_inputs
    from edgeml.calibration import DataSpec, load_dataset

    if hasattr(calib, "sample"):  # already loaded (ONNX -> TFLite: transposed to NHWC, edgeml.quantize.onnx_tflite)
        return calib
    spec = DataSpec.parse(calib) if isinstance(calib, str) else calib
    if samples is not None:
        spec = dataclasses.replace(spec, samples=samples)
    elif spec.samples is None:
        spec = dataclasses.replace(spec, samples=DEFAULT_CALIB_SAMPLES)
    return load_dataset(spec, inputs=float_inputs(inputs))


def _peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def quantize(model: str | Path, *, out: str | Path, calib: Any = None, format: str | None = None,
             mode: str = "int8", io: str | None = None, per_channel: bool = True, method: str = "minmax",
             calib_samples: int | None = None, target: str | None = None, eval: Any = None,
             report: str | Path | None = None, force: bool = False, debug_samples: int = DEBUG_SAMPLES,
             progress: Callable[[str], None] | None = None, keras_model: Any = None) -> QuantizeResult:
    """Quantize ``model`` to ``out``; see the module docstring. Raises EdgeMLError subclasses on bad input."""
    from edgeml.targets import load_profile

    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    profile = load_profile(target)
    if mode not in MODES:
        raise EdgeMLError(f"--mode {mode}: unknown", hint=f"use one of {', '.join(MODES)}")
    art = ModelArtifact.open(model)
    fmt = _formats(art, format, profile)
    if art.format is ModelFormat.ONNX and fmt == "tflite":  # onnx2tf float TFLite, then the .tflite path below
        from edgeml.quantize.onnx_tflite import quantize_onnx_to_tflite

        return quantize_onnx_to_tflite(art, out=out, calib=calib, mode=mode, io=io, per_channel=per_channel,
                                       method=method, calib_samples=calib_samples, target=target, eval=eval,
                                       report=report, force=force, debug_samples=debug_samples, progress=progress)
    if profile.full_int8 and mode != "int8":
        raise EdgeMLError(f"--target {profile.name} runs full-int8 models only; --mode {mode} cannot run there",
                          hint="use --mode int8")
    if fmt == "tflite":
        from edgeml.quantize.tflite import io_types

        if method != "minmax":
            raise EdgeMLError(f"--method {method}: the TFLite quantizers calibrate with min/max ranges only",
                              hint="drop --method for TFLite, or use --format onnx for entropy/percentile")
        default_io = "int8" if art.format is ModelFormat.TFLITE else profile.quantize.get("tflite_io")
        io = io_types(mode, io or (default_io if mode == "int8" else None))
    else:
        from edgeml.quantize.onnx import check_modes

        check_modes(mode, io, method)
        io = "float32"
    needs_calib = mode in ("int8", "int16x8")
    if needs_calib and calib is None:
        raise EdgeMLError(f"--mode {mode} needs calibration data", hint="pass --calib SPEC (100-500 representative "
                                                                        "samples, e.g. --calib images/?samples=200)")
    out = check_output(out, inputs=[art.path], force=force)
    report_path = check_output(report, inputs=[art.path, out], force=force) if report else None
    why = _already_quantized(art)
    if why:
        raise EdgeMLError(f"{art.path}: the model is already quantized ({why})",
                          hint="quantize the float model it was made from")
    if art.format in (ModelFormat.KERAS, ModelFormat.H5) and keras_model is None:
        from edgeml.formats.keras import load

        say(f"loading {art.path}")
        keras_model = load(art.path)
    inputs = art.inspect().inputs if keras_model is None else _keras_inputs(keras_model)
    ds = None
    if calib is not None:
        ds = _dataset(calib, calib_samples, inputs)
        say(f"calibration data: {len(ds)} samples from {ds.spec.origin or ds.spec.source}")
    notes: list[str] = []
    warnings: list[str] = []
    if ds is not None and len(ds) < 50:
        warnings.append(f"only {len(ds)} calibration samples (at least 50 recommended); ranges may be poor")
    with tempfile.TemporaryDirectory(prefix="edgeml-quant-") as work_dir, atomic_path(out) as tmp:
        work = Path(work_dir)
        t_cal = time.perf_counter()
        if fmt == "tflite":
            float_path, left, recipe = _tflite(art, keras_model, work, tmp, mode, io, per_channel, ds, profile, say)
        else:
            float_path, left, recipe = _onnx(art, keras_model, work, tmp, mode, per_channel, method, ds, profile,
                                             notes, say)
        cal_seconds = time.perf_counter() - t_cal
        calibration = None
        if ds is not None and needs_calib:
            calibration = {"data": ds.spec.origin or ds.spec.source, "samples": len(ds),
                           "seconds": round(cal_seconds, 3), "process_peak_rss_mib": _peak_rss_mib()}
        if left:
            warnings.append(f"{len(left)} op(s) stay in float: {', '.join(left[:8])}"
                            + (" ..." if len(left) > 8 else ""))
        say("checking the quantized model loads and runs")
        metrics, layers = _compare(float_path, tmp, fmt, ds, inputs, debug_samples, say)
        accuracy = _accuracy(float_path, tmp, eval, say) if eval is not None else None
        size_before = float_path.stat().st_size
        size_after = tmp.stat().st_size
    result = QuantizeResult(
        source=str(art.path), source_format=art.format.value, output=str(out), format=fmt, mode=mode, io=io,
        per_channel=per_channel, method=method, target=profile.name, recipe=recipe,
        source_size_bytes=art.inspect().size_bytes if art.format is not ModelFormat.SAVEDMODEL else size_before,
        size_before_bytes=size_before, size_after_bytes=size_after, calibration=calibration, float_ops=left,
        metrics=metrics, layers=layers, accuracy=accuracy, seconds=round(time.perf_counter() - t_start, 3),
        notes=notes, warnings=warnings)
    if report_path is not None:
        write_report(result, report_path)
    return result


def _keras_inputs(keras_model: Any) -> list:
    from edgeml.formats.keras import io_specs

    return io_specs(keras_model)[0]


def _tflite(art, keras_model, work: Path, tmp: Path, mode, io, per_channel, ds, profile, say):
    from edgeml.quantize import tflite as tq

    recipe = {"quantizer": "", "mode": mode, "io": io, "per_channel": per_channel, "method": "minmax",
              "full_int8_required": profile.full_int8}
    if art.format is ModelFormat.TFLITE:
        from edgeml.runtimes.litert import load_interpreter

        sigs = load_interpreter(art.path, allocate=False).get_signature_list()
        signature = next(iter(sigs), "serving_default")
        calibration = None
        if ds is not None:
            names = list(sigs.get(signature, {}).get("inputs", [])) or ds.input_names
            calibration = [{n: s.feeds[k][None] for n, k in zip(names, ds.input_names)} for s in ds]
        say(f"quantizing with AI Edge Quantizer ({mode})")
        data, left = tq.from_tflite(art.path, mode=mode, io=io, per_channel=per_channel, calibration=calibration,
                                    signature=signature, full_int8=profile.full_int8, target=profile.name)
        recipe["quantizer"] = "ai-edge-quantizer"
        tmp.write_bytes(data)
        return art.path, left, recipe
    from edgeml.convert.tflite import convert_savedmodel, export_savedmodel

    folder = art.path if art.format is ModelFormat.SAVEDMODEL else export_savedmodel(keras_model, work / "sm")
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
    return float_path, left, recipe


def _onnx(art, keras_model, work: Path, tmp: Path, mode, per_channel, method, ds, profile, notes, say):
    import onnx

    from edgeml.quantize import onnx as oq

    if art.format is ModelFormat.ONNX:
        from edgeml.formats.onnx import load

        proto = load(art.path)
    else:
        from edgeml.convert import _to_onnx

        proto = _to_onnx(art, keras_model, 17, say)
    say("preparing the ONNX graph (opset, constants, onnxsim)")
    prepared = oq.prepare(proto, art.path, notes)
    recipe = oq.recipe_for(profile, per_channel=per_channel, method=method)
    if mode == "dynamic":
        recipe = {"format": "dynamic", "weight_type": "int8", "basis": "ONNX Runtime quantize_dynamic"}
        info = oq.quantize_dynamic(prepared, tmp)
    else:
        say(f"calibrating ({method}, {len(ds)} samples) and writing QDQ "
            f"(activations {recipe['activation_type']}, weights {recipe['weight_type']})")
        info = oq.quantize_static(prepared, tmp, ds.calibration_reader(), recipe)
        recipe["preprocess"] = info.get("preprocess")
    float_path = work / "float.onnx"
    onnx.save(info["preprocessed"], str(float_path))
    left = []
    return float_path, left, recipe


def _compare(float_path: Path, quant_path: Path, fmt: str, ds, inputs, n: int, say):
    from edgeml.convert.verify import compare, random_feeds
    from edgeml.runtimes.session import open_session

    try:
        test = open_session(quant_path)
    except EdgeMLError as exc:
        raise QuantizationError(f"the quantized model does not load: {exc.message}",
                                hint="nothing was written; report this with --debug output") from exc
    ref = open_session(float_path)
    if ds is not None:
        feeds = [{k: v[None] for k, v in ds.sample(j).feeds.items()} for j in range(min(n, len(ds)))]
        label = f"{len(feeds)} calibration samples"
    else:
        feeds = random_feeds(ref.inputs, n, seed=0)
        label = "seeded random inputs in [0, 1)"
    try:
        metrics = compare(ref, test, feeds, atol=math.inf, data=label)
    except Exception as exc:
        raise QuantizationError(f"the quantized model fails to run: {' '.join(str(exc).split())[:300]}",
                                hint="nothing was written; try --per-tensor or another --mode") from exc
    say(f"per-layer error on {len(feeds)} samples")
    from edgeml.quantize import debug

    if fmt == "tflite":
        layers = debug.tflite_layer_errors(float_path, quant_path, feeds)
    else:
        import onnx

        layers = debug.onnx_layer_errors(onnx.load(str(float_path)), quant_path, feeds)
    return metrics, layers


def _accuracy(float_path: Path, quant_path: Path, eval_spec: Any, say) -> dict[str, Any]:
    from edgeml.bench.accuracy import evaluate, float_inputs
    from edgeml.calibration import load_dataset
    from edgeml.runtimes.session import open_session

    ref, test = open_session(float_path), open_session(quant_path)
    ds = load_dataset(eval_spec, inputs=float_inputs(ref.inputs))
    say(f"evaluating float and quantized on {len(ds)} labelled samples")
    a, b = evaluate(ref, ds), evaluate(test, ds)
    return {"data": ds.spec.origin or ds.spec.source, "samples": a["samples"], "float_top1": a["top1"],
            "quantized_top1": b["top1"], "drop": a["top1"] - b["top1"]}


def write_report(result: QuantizeResult, path: Path) -> None:
    from edgeml._io import json_text, write_bytes_atomic

    if path.suffix.lower() == ".md":
        text = render_markdown(result)
    else:
        text = json_text(result.to_dict()) + "\n"
    write_bytes_atomic(path, text.encode())


def summary_lines(r: QuantizeResult) -> list[str]:
    """The headline facts of a quantization, one per line (CLI and Markdown share them)."""
    from edgeml.formats.common import human_bytes

    lines = [f"size      {human_bytes(r.size_before_bytes)} float -> {human_bytes(r.size_after_bytes)} "
             f"({100 * r.size_ratio:.1f}%)"]
    if r.calibration:
        c = r.calibration
        lines.append(f"calibrate {c['samples']} samples from {c['data']}, {c['seconds']:.1f} s")
    rec = r.recipe
    if r.format == "onnx" and "activation_type" in rec:
        lines.append(f"recipe    QDQ activations {rec['activation_type']}"
                     f"{' symmetric' if rec['activation_symmetric'] else ''}, weights {rec['weight_type']}, "
                     f"{rec['method']} - {rec['basis']}")
    if r.metrics is not None:
        m = r.metrics
        agree = f", argmax agreement {100 * m.argmax_agreement:.1f}%" if m.argmax_agreement is not None else ""
        lines.append(f"outputs   MSE {m.mse:.3g}, cosine {m.cosine:.5f}{agree} vs float ({m.data})")
    if r.accuracy:
        a = r.accuracy
        lines.append(f"top-1     float {100 * a['float_top1']:.2f}%  quantized {100 * a['quantized_top1']:.2f}%  "
                     f"drop {100 * a['drop']:+.2f} pt ({a['samples']} samples)")
    return lines


def render_markdown(r: QuantizeResult) -> str:
    lines = [f"# Quantization report: {Path(r.source).name} -> {Path(r.output).name}", "",
             f"- mode {r.mode}, io {r.io}, {'per-channel' if r.per_channel else 'per-tensor'}, method {r.method}, "
             f"target {r.target}"]
    lines += [f"- {line}" for line in summary_lines(r)]
    lines += ["", "| layer (worst first) | op | SQNR dB | MSE |", "|---|---|---:|---:|"]
    lines += [f"| `{e.name}` | {e.op} | {e.sqnr_db:.1f} | {e.mse:.3g} |" for e in r.layers]
    return "\n".join(lines) + "\n"


__all__ = ["QuantizeResult", "QuantizationError", "quantize"]
