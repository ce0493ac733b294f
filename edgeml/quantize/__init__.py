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

from edgeml._io import atomic_path, check_outputs
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError
from edgeml.quantize.debug import LayerError
from edgeml.quantize import budget_steps
from edgeml.quantize.budget_steps import budget_lines, budget_markdown, budget_unmet_error, speed_advice
from edgeml.quantize.tflite import TFLITE_MODES, QuantizationError

log = logging.getLogger(__name__)

MODES = TFLITE_MODES
DEFAULT_CALIB_SAMPLES = 200
DEBUG_SAMPLES = 16
# the per-layer pass runs every tensor of both models unoptimised: at most this many MACs x samples per model
# (a 1 G-MAC detector gets 3 samples, not 16; its output comparison still uses every sample)
LAYER_MACS_BUDGET = 4_000_000_000


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
    fidelity: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] | None = None  # the accuracy budget's search (edgeml.quantize.budget)
    speed: dict[str, Any] | None = None  # float vs quantized latency on this host (edgeml.quantize.speed)
    training: dict[str, Any] | None = None  # --method qat: the fine-tuning record (edgeml.quantize.qat)

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
            from edgeml.formats.tflite_edit import hybrid_weights

            if hybrid_weights(art.path.read_bytes()) is not None:
                return None  # float activations with int8 weights: dequantized and quantized fully
            return f"its weights are {', '.join(q) or 'quantized'}"
    return None


def _formats(art: ModelArtifact, fmt: str | None, profile: Any) -> str:
    if fmt is None:
        fmt = art.format.value if art.format in (ModelFormat.TFLITE, ModelFormat.ONNX) else profile.formats[0]
        if art.format is ModelFormat.ONNX and not profile.accepts("onnx"):
            fmt = "tflite"  # an ONNX model for a TFLite-only target (coral-usb): converted with onnx2tf
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
             progress: Callable[[str], None] | None = None, keras_model: Any = None,
             input_shapes: Any = None, keep_degraded: bool = False, max_accuracy_drop: float | None = None,
             min_fidelity: float | None = None, keep_best: bool = False, speed_seconds: float = 0.0,
             max_evals: int | None = None, train: Any = None, epochs: int = 3, lr: float = 1e-4,
             fallback: str | None = None) -> QuantizeResult:
    """Quantize ``model`` to ``out``; see the module docstring. Raises EdgeMLError subclasses on bad input,
    and FidelityError (exit 1, nothing written) when the result fails its own fidelity check
    (``edgeml.quantize.fidelity``) unless ``keep_degraded``: then it is written and ``result.fidelity``
    says ``broken``.

    ``input_shapes`` (``NAME=D0,D1,...``) fix dynamic input dimensions of generated comparison inputs.

    Budgets (``edgeml.quantize.budget``): ``max_accuracy_drop`` (top-1, a fraction, on labelled ``eval``) or
    ``min_fidelity`` (worst output's cosine vs float over the samples); when plain quantization misses it, the
    worst layers fall back (float, or int16 activations on a .tflite source) until it holds. BudgetNotMet (exit 1,
    nothing written) when it cannot be met; ``keep_best`` writes the best reached (``result.budget['met']`` False).
    ``speed_seconds`` > 0: time float vs quantized interleaved on this host for at most that long.

    ``method="qat"`` (Keras source, TFLite int8): fine-tune ``epochs`` on labelled ``train`` with fake
    quantization (``edgeml.quantize.qat``), then export full int8; with ``eval``, the PTQ model is made too and
    the more accurate of the two is written (``result.training`` has both top-1s)."""
    from edgeml.targets import load_profile

    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    profile = load_profile(target)
    if mode not in MODES:
        raise EdgeMLError(f"--mode {mode}: unknown", hint=f"use one of {', '.join(MODES)}")
    from edgeml.quantize import budget as qb

    budget = qb.Budget(max_accuracy_drop, min_fidelity, keep_best,
                       max_evals=qb.MAX_EVALS if max_evals is None else max_evals)
    if budget.active:
        budget.check_options(eval_spec=eval, mode=mode)
    if fallback is not None:
        from edgeml.errors import BudgetError

        if fallback not in ("float", "int16x8"):
            raise BudgetError(f"--fallback {fallback}: unknown", hint="use --fallback float or --fallback int16x8")
        if not budget.active:
            raise BudgetError("--fallback applies to a budget's layer fallback",
                              hint="add --max-accuracy-drop or --min-fidelity, or drop --fallback")
    art = ModelArtifact.open(model)
    fmt = _formats(art, format, profile)
    if art.format is ModelFormat.ONNX and fmt == "tflite":  # onnx2tf float TFLite, then the .tflite path below
        from edgeml.quantize.onnx_tflite import quantize_onnx_to_tflite

        return quantize_onnx_to_tflite(art, out=out, calib=calib, mode=mode, io=io, per_channel=per_channel,
                                       method=method, calib_samples=calib_samples, target=target, eval=eval,
                                       report=report, force=force, debug_samples=debug_samples, progress=progress,
                                       input_shapes=input_shapes, keep_degraded=keep_degraded)
    if profile.full_int8 and mode != "int8":
        raise EdgeMLError(f"--target {profile.name} runs full-int8 models only; --mode {mode} cannot run there",
                          hint="use --mode int8")
    if fallback == "int16x8" and (fmt != "tflite" or art.format is not ModelFormat.TFLITE):
        from edgeml.errors import BudgetError

        raise BudgetError("--fallback int16x8 needs per-op precision: only AI Edge Quantizer (a float .tflite source) "
                          "mixes int8 and int16x8 ops here", hint="use --fallback float (the default for this source)")
    if method == "qat":
        from edgeml.quantize import qat as qat_steps

        qat_steps.check_options(art, fmt, mode, train, epochs, budget)
        calib = calib if calib is not None else train
    if fmt == "tflite":
        from edgeml.quantize.tflite import io_types

        if method not in ("minmax", "qat"):
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
    out, report_path = check_outputs([out, report], inputs=[art.path, calib, eval], force=force)
    why = _already_quantized(art)
    if why:
        raise EdgeMLError(f"{art.path}: the model is already quantized ({why})",
                          hint="quantize the float model it was made from")
    if art.format in (ModelFormat.KERAS, ModelFormat.H5) and keras_model is None:
        from edgeml.formats.keras import load

        say(f"loading {art.path}")
        keras_model = load(art.path)
    inputs = art.inspect().inputs if keras_model is None else _keras_inputs(keras_model)
    eval_ds = None
    if budget.active and eval is not None:  # before any work: unlabelled data for an accuracy budget is refused
        eval_ds = budget_steps.load_eval(budget, eval, inputs)
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
        ctx: dict[str, Any] | None = {"fallback": fallback} if budget.active else None
        training = acc_float = None
        if method == "qat":
            from edgeml.quantize import qat as qat_steps

            float_path, acc_float, left, recipe, training = qat_steps.run(art, keras_model, work, tmp, mode, io,
                                                                          per_channel, ds, profile, notes, say, train,
                                                                          epochs, lr, eval)
        elif fmt == "tflite":
            float_path, left, recipe = _tflite(art, keras_model, work, tmp, mode, io, per_channel, ds, profile, notes,
                                               say, ctx)
        else:
            float_path, left, recipe = _onnx(art, keras_model, work, tmp, mode, per_channel, method, ds, profile,
                                             notes, say, ctx)
        cal_seconds = time.perf_counter() - t_cal - (training["wall_s"] if training else 0.0)
        calibration = None
        if ds is not None and needs_calib:
            calibration = {"data": ds.spec.origin or ds.spec.source, "samples": len(ds),
                           "seconds": round(cal_seconds, 3), "process_peak_rss_mib": _peak_rss_mib(),
                           **(recipe.pop("calibration", None) or {})}
        if left:
            warnings.append(f"{len(left)} op(s) stay in float: {', '.join(left[:8])}"
                            + (" ..." if len(left) > 8 else ""))
        say("checking the quantized model loads and runs")
        metrics, layers = _compare(float_path, tmp, fmt, ds, inputs, debug_samples, say, input_shapes, art)
        budget_info: dict[str, Any] | None = None
        plain_copy: Path | None = None
        if budget.active and ctx is not None:
            plain_copy = work / f"plain{tmp.suffix or '.' + fmt}"
            plain_copy.write_bytes(tmp.read_bytes())
            budget_info, final = budget_steps.run(budget, float_path, plain_copy, layers, ctx, ds, eval_ds, eval, fmt,
                                             mode, profile, say)
            if final != plain_copy:
                data = final.read_bytes()
                if ctx.get("post") == "strip_signatures":
                    from edgeml.formats.tflite_edit import strip_signatures

                    data = strip_signatures(data)
                tmp.write_bytes(data)
                if fmt == "tflite":
                    from edgeml.quantize.tflite import float_ops

                    left = float_ops(tmp.read_bytes())
                say("checking the budgeted model")
                metrics, layers = _compare(float_path, tmp, fmt, ds, inputs, debug_samples, say, input_shapes, art)
            if not budget_info["met"] and not keep_best:
                raise budget_steps.budget_error(budget_info, art.path, fmt, written=False)
        accuracy = _accuracy(acc_float or float_path, tmp, eval, say) if eval is not None else None
        size_before = float_path.stat().st_size
        size_after = tmp.stat().st_size
        source_size = art.inspect().size_bytes if art.format is not ModelFormat.SAVEDMODEL else size_before
        fid = _fidelity(art, metrics, source_size, size_after, notes, warnings)
        if budget_info is not None and plain_copy is not None:
            budget_info["plain_size_bytes"] = plain_copy.stat().st_size
            budget_info["size_bytes"] = size_after
            if budget_info["met"] and fid["status"] == "broken" and not fid.get("size_growth"):
                # the user's own criterion was measured and holds: the generic gate's verdict stays on record
                fid["status"] = "degraded"
                fid["degraded"] = fid["degraded"] + fid["broken"]
                fid["overridden_by_budget"] = fid["broken"]
                fid["broken"] = []
                warnings.append(f"the fidelity gate would fail this model, but the budget you set "
                                f"({budget_info['budget']}) is met on {budget_info['data']}; kept")
        speed = None
        if speed_seconds and speed_seconds > 0 and mode in ("int8", "int16x8"):
            speed = budget_steps.time_models(float_path, tmp,
                                             plain_copy if budget_info and budget_info["fallback"] else None, ds,
                           eval_ds, mode, speed_seconds, say, input_shapes, warnings)
            if budget_info is not None and speed and "plain" in speed["p50_ms"]:
                budget_info["latency_p50_ms"] = {"plain": speed["p50_ms"]["plain"],
                                                 "budgeted": speed["p50_ms"][mode]}
        unmet_kept = budget_info is not None and not budget_info["met"]  # keep_best: the budget error follows
        if fid["status"] == "broken" and not keep_degraded and not unmet_kept:
            raise _broken(art.path, fid, metrics, layers, fmt, mode, per_channel, method, written=False)
    result = QuantizeResult(
        source=str(art.path), source_format=art.format.value, output=str(out), format=fmt, mode=mode, io=io,
        per_channel=per_channel, method=method, target=profile.name, recipe=recipe,
        source_size_bytes=source_size,
        size_before_bytes=size_before, size_after_bytes=size_after, calibration=calibration, float_ops=left,
        metrics=metrics, layers=layers, accuracy=accuracy, seconds=round(time.perf_counter() - t_start, 3),
        notes=notes, warnings=warnings, fidelity=fid, budget=budget_info, speed=speed, training=training)
    if report_path is not None:
        write_report(result, report_path)
    return result


def _fidelity(art: ModelArtifact, metrics: Any, source_size: int, size_after: int, notes: list[str],
              warnings: list[str]) -> dict[str, Any]:
    from edgeml.quantize import fidelity

    status, broken, degraded = fidelity.judge(metrics)
    ops = art.inspect().ops if art.format is ModelFormat.ONNX else None
    growth = fidelity.size_growth(source_size, size_after, ops)
    if growth:
        status = "broken"
    warnings.extend(metrics.notes)
    warnings.extend(f"fidelity degraded: {d}" for d in degraded)
    caveats = [n for n in notes + metrics.notes if "ONNX Runtime's" in n or n.startswith("per-layer")]
    return {"status": status, "broken": broken, "degraded": degraded, "size_growth": growth,
            "caveats": caveats if status == "broken" else [], "thresholds": fidelity.thresholds()}


def _broken(path: Path, fid: dict[str, Any], metrics: Any, layers: list, fmt: str, mode: str, per_channel: bool,
            method: str, *, written: bool) -> EdgeMLError:
    from edgeml.quantize.fidelity import FidelityError, hint

    why = []
    if fid["broken"]:
        worst = f"; worst layer {layers[0].name.split(';')[0]!r} ({layers[0].op}, SQNR {layers[0].sqnr_db:.1f} dB)" \
            if layers else ""
        why.append(f"{'; '.join(fid['broken'])} on {metrics.data}{worst}")
    if fid.get("size_growth"):
        why.append(fid["size_growth"])
    where = "kept at the output (--keep-degraded)" if written else "nothing was written"
    why += [f"({c})" for c in fid.get("caveats", [])]
    advice = hint(fmt=fmt, mode=mode, per_channel=per_channel, method=method) if fid["broken"] else \
        "--keep-degraded writes it anyway (still exit 1)"
    if fid.get("size_growth"):
        advice = "export the model with its trained weights stored as initializers (the source computes them at " \
                 f"run time); {advice}"
    return FidelityError(f"{path}: the quantized model fails its fidelity check: {'; '.join(why)}; {where}",
                         hint=advice)


def broken_error(r: QuantizeResult) -> EdgeMLError | None:
    """The FidelityError for a result kept with ``keep_degraded`` whose check failed, else None."""
    if r.fidelity.get("status") != "broken":
        return None
    return _broken(Path(r.source), r.fidelity, r.metrics, r.layers, r.format, r.mode, r.per_channel, r.method,
                   written=True)


def _keras_inputs(keras_model: Any) -> list:
    from edgeml.formats.keras import io_specs

    return io_specs(keras_model)[0]


def _tflite(art, keras_model, work: Path, tmp: Path, mode, io, per_channel, ds, profile, notes, say, ctx=None):
    from edgeml.quantize import tflite as tq

    recipe = {"quantizer": "", "mode": mode, "io": io, "per_channel": per_channel, "method": "minmax",
              "full_int8_required": profile.full_int8}
    if art.format is ModelFormat.TFLITE:
        float_path, source, signature, names, added = _float_tflite(art, work, notes, say)
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
                "tensors inside its branch/body subgraphs", hint="use --mode dynamic (int8 weights, float "
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
            ctx["why_no_fallback"] = ("--fallback int16x8 needs per-op precision, which the TFLite converter does "
                                      "not offer: use --fallback float, or quantize the float .tflite")
        elif mode == "int8":
            from edgeml.quantize.fallback import converter_builder

            ctx["scheme"] = "float"
            ctx["make"] = lambda: converter_builder(folder, float_path, io=io, per_channel=per_channel,
                                                    representative=ds.representative_dataset(), work=work)
        else:
            ctx["why_no_fallback"] = ("the TFLite converter cannot mix precisions per op in --mode int16x8: "
                                      "quantize the float .tflite (AI Edge Quantizer) for per-op fallback")
    return float_path, left, recipe


def _float_tflite(art, work: Path, notes: list[str], say) -> tuple[Path, Path, str, list[str], bool]:
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


def _onnx(art, keras_model, work: Path, tmp: Path, mode, per_channel, method, ds, profile, notes, say, ctx=None):
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
        recipe = {"format": "dynamic", "weight_type": "int8", "basis": "ONNX Runtime quantize_dynamic"}
        info = oq.quantize_dynamic(prepared, tmp)
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
    _refuse_if_nothing_quantized(onnx.load(str(tmp)), art.path)
    float_path = work / "float.onnx"
    onnx.save(info["preprocessed"], str(float_path))
    if ctx is not None:
        if ctx.get("fallback") == "int16x8":
            ctx["why_no_fallback"] = ("--fallback int16x8 is not available for ONNX here (ORT's per-node 16-bit "
                                      "overrides are not wired in): use --fallback float")
        elif info.get("ranges_cache"):
            from edgeml.quantize.fallback import onnx_builder

            ctx["scheme"] = "float"
            ctx["make"] = lambda: onnx_builder(float_path, info["ranges_cache"], recipe, info["extra_options"], work)
        else:
            ctx["why_no_fallback"] = ("this onnxruntime has no calibration cache hook (quantize_static("
                                      "calibration_cache_path=)): upgrade onnxruntime for per-node fallback")
    left = []
    return float_path, left, recipe


def _refuse_if_nothing_quantized(model: Any, path: Path) -> None:
    """An "int8" ONNX model without one quantized op is the float model under another name: refused."""
    from edgeml.quantize.onnx import CONTROL_FLOW, QUANTIZED_OPS

    if any(n.op_type in QUANTIZED_OPS for n in model.graph.node):
        return
    flow = sorted({n.op_type for n in model.graph.node if n.op_type in CONTROL_FLOW})
    why = (f"its compute is inside control-flow subgraphs ({', '.join(flow)}), which ONNX Runtime's quantizer "
           "leaves in float" if flow else "ONNX Runtime's quantizer found no op it quantizes")
    raise QuantizationError(f"{path}: nothing was quantized: {why}; the output would be the float model",
                            hint="re-export the model without If/Loop around its layers (one graph per branch), "
                                 "then quantize that" if flow else "check the model's ops (edgeml inspect MODEL)")


def _layer_samples(art: Any, feeds: list, n: int) -> tuple[int, int | None]:
    """How many samples the per-layer pass gets under LAYER_MACS_BUDGET, and the model's MACs (None: unknown)."""
    try:
        info = art.inspect()
        if info.macs_partial and feeds:
            info = art.inspect(input_shapes={k: tuple(v.shape) for k, v in feeds[0].items()})
        macs = None if info.macs_partial else info.macs
    except Exception:  # noqa: BLE001 - no count: no bound
        macs = None
    return (n if not macs else max(1, min(n, LAYER_MACS_BUDGET // macs))), macs


def _compare(float_path: Path, quant_path: Path, fmt: str, ds, inputs, n: int, say, input_shapes: Any = None,
             art: Any = None):
    from edgeml.convert.verify import compare, random_feeds, random_feeds_label
    from edgeml.runtimes.session import open_session

    try:
        test = open_session(quant_path)
    except EdgeMLError as exc:
        raise QuantizationError(f"the quantized model does not load: {exc.message}",
                                hint="nothing was written; report this with --debug output") from exc
    ref = open_session(float_path)
    if ds is not None:
        feeds = [ds.sample(j).batch1() for j in range(min(n, len(ds)))]
        label = f"{len(feeds)} calibration samples"
    else:
        feeds = random_feeds(ref.inputs, n, seed=0, input_shapes=input_shapes,
                             what="comparing the quantized model on generated inputs")
        label = f"{n} {random_feeds_label(ref.inputs)}"
    from edgeml.quantize.heads import classifier_outputs

    heads = classifier_outputs(float_path, fmt, [t.name for t in ref.outputs])
    try:
        metrics = compare(ref, test, feeds, atol=math.inf, data=label, classifiers=heads)
    except Exception as exc:
        raise QuantizationError(f"the quantized model fails to run: {' '.join(str(exc).split())[:300]}",
                                hint="nothing was written; try --per-tensor or another --mode") from exc
    k, macs = _layer_samples(art, feeds, len(feeds)) if art is not None else (len(feeds), None)
    if k < len(feeds):
        metrics.notes.append(f"per-layer errors on {k} of {len(feeds)} samples (the model has {macs / 1e6:,.0f} M "
                             "MACs; the per-layer pass runs every tensor of both models unoptimised)")
        feeds = feeds[:k]
    say(f"per-layer error on {len(feeds)} samples")
    from edgeml.quantize import debug

    try:
        if fmt == "tflite":
            layers = debug.tflite_layer_errors(float_path, quant_path, feeds)
        else:
            import onnx

            layers = debug.onnx_layer_errors(onnx.load(str(float_path)), quant_path, feeds)
    except Exception as exc:  # the unoptimised, every-tensor run can fail where the deployed graph runs
        layers = []
        metrics.notes.append(f"per-layer errors unavailable: running every intermediate tensor failed "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
    return metrics, layers


def _accuracy(float_path: Path, quant_path: Path, eval_spec: Any, say) -> dict[str, Any]:
    from edgeml.bench.accuracy import evaluate, float_inputs
    from edgeml.calibration import load_dataset
    from edgeml.runtimes.session import open_session

    ref, test = open_session(float_path), open_session(quant_path)
    # bound to the quantized model's inputs: integer eval data in its domain is taken as those integers (not
    # quantized twice), then both models read the same real values
    ds = load_dataset(eval_spec, inputs=float_inputs(test.inputs))
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

    src = r.source_size_bytes
    source = f"; source file {human_bytes(src)}" if src and abs(src - r.size_before_bytes) > 0.1 * src else ""
    lines = [f"size      {human_bytes(r.size_before_bytes)} float -> {human_bytes(r.size_after_bytes)} "
             f"({100 * r.size_ratio:.1f}%{source})"]
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
        if m.degenerate:
            lines.append(f"outputs   constant in the float model on every sample: cosine and argmax say nothing; "
                         f"max abs diff {m.max_abs_diff:.3g}, relative error {m.relative_error:.3g} vs float "
                         f"({m.data})")
        else:
            lines.append(f"outputs   MSE {m.mse:.3g}, cosine {m.cosine:.5f}, relative error "
                         f"{m.relative_error:.3g}{agree} vs float ({m.data})")
    if r.fidelity:
        f = r.fidelity
        why = "; ".join(f["broken"] + [f["size_growth"]] * bool(f.get("size_growth")) if f["status"] == "broken"
                        else f["degraded"])
        lines.append(f"fidelity  {f['status'].upper() if f['status'] != 'ok' else 'ok'}" + (f": {why}" if why else ""))
    lines += budget_lines(r)
    if r.training:
        t = r.training
        cmp = (f"; top-1 float {100 * t['float_top1']:.2f}%, PTQ {100 * t['ptq_top1']:.2f}%, QAT "
               f"{100 * t['qat_top1']:.2f}% -> wrote {t['written'].upper()}" if "qat_top1" in t else "")
        lines.append(f"qat       {t['epochs']} epoch(s) on {t['samples']} samples, {t['wall_s']:.1f} s, "
                     f"{len(t['fake_quantized_layers'])} layer(s) fake-quantized{cmp}")
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
    lines += budget_markdown(r.budget)
    lines += ["", "| layer (worst first) | op | SQNR dB | MSE |", "|---|---|---:|---:|"]
    lines += [f"| `{e.name}` | {e.op} | {e.sqnr_db:.1f} | {e.mse:.3g} |" for e in r.layers]
    return "\n".join(lines) + "\n"


__all__ = ["QuantizeResult", "QuantizationError", "budget_lines", "budget_markdown", "budget_unmet_error", "quantize",
           "speed_advice"]
