"""quantize(): int8 (and int16x8 / float16 / dynamic) post-training quantization with calibration data.

    >>> from edgeml.quantize import quantize
    >>> r = quantize("model.keras", calib="builtin:digits?split=train", out="model_int8.tflite")
    >>> r.size_after_bytes, r.metrics.argmax_agreement, r.layers[0]   # worst layer first

The float model and the quantized model run on the same calibration samples afterwards: whole-model
metrics (output MSE, cosine, argmax agreement) and per-layer SQNR (see ``edgeml.quantize.debug``). The
output is written atomically and only after it loads and runs.
"""

from __future__ import annotations

import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeml._io import atomic_path, check_outputs
from edgeml._types import Data, InputShapes, PathLike
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError, QuantizationError
from edgeml.options import QuantizeOptions
from edgeml.quantize import budget_steps
from edgeml.quantize.budget_steps import budget_lines, budget_markdown, budget_unmet_error, speed_advice
from edgeml.quantize.checks import already_quantized, calibration_data, compare_models, fidelity_record, top1_accuracy
from edgeml.quantize.result import (
    QuantizeResult,
    broken_error,
    fidelity_error,
    render_markdown,
    summary_lines,
    write_report,
)
from edgeml.quantize.routes import onnx_route, tflite_route
from edgeml.quantize.tflite import TFLITE_MODES

log = logging.getLogger(__name__)

MODES = TFLITE_MODES
DEBUG_SAMPLES = 16


def _formats(art: ModelArtifact, fmt: str | None, profile: Any) -> str:
    if fmt is None:
        fmt = art.format.value if art.format in (ModelFormat.TFLITE, ModelFormat.ONNX) else profile.formats[0]
        if art.format is ModelFormat.ONNX and not profile.accepts("onnx"):
            fmt = "tflite"  # an ONNX model for a TFLite-only target (coral-usb): converted with onnx2tf
    if fmt not in ("tflite", "onnx"):
        raise EdgeMLError(f"`format` {fmt}: unknown", hint="use `format` tflite or `format` onnx")
    if not profile.accepts(fmt):
        raise EdgeMLError(f"`target` {profile.name} does not run {fmt} models",
                          hint=f"use `format` {profile.formats[0]}")
    if art.format is ModelFormat.TFLITE and fmt == "onnx":
        raise EdgeMLError(f"{art.path}: quantizing a .tflite to ONNX is not supported",
                          hint="convert it first: `edgeml.convert(\"MODEL.tflite\", to=\"onnx\")`, then quantize the "
                               ".onnx")
    return fmt


def _peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def quantize(model: PathLike, *, out: PathLike | None = None, calib: Data | None = None, format: str | None = None,
             mode: str = "int8", io: str | None = None, per_channel: bool = True, method: str = "minmax",
             calib_samples: int | None = None, target: str | None = None, eval: Data | None = None,
             report: PathLike | None = None, force: bool = False, debug_samples: int = DEBUG_SAMPLES,
             progress: Callable[[str], None] | None = None, keras_model: Any = None,
             input_shapes: InputShapes | None = None, keep_degraded: bool = False,
             max_accuracy_drop: float | None = None, min_fidelity: float | None = None, keep_best: bool = False,
             speed_seconds: float = 0.0, max_evals: int | None = None, train: Data | None = None, epochs: int = 3,
             lr: float = 1e-4, fallback: str | None = None, options: QuantizeOptions | None = None) -> QuantizeResult:
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
    the more accurate of the two is written (``result.training`` has both top-1s).

    ``options`` (a :class:`~edgeml.options.QuantizeOptions`) gives every option at once, in place of the
    keyword arguments of the same names (a UsageError when both are given); the work reads that one object."""
    o = QuantizeOptions.build("quantize", options, locals())
    return _quantize(model, o, progress, keras_model)


def _quantize(model: PathLike, o: QuantizeOptions, progress: Callable[[str], None] | None,
              keras_model: Any) -> QuantizeResult:
    """:func:`quantize` with its options in one object."""
    from edgeml.targets import load_profile

    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    calib, io = o.calib, o.io  # the two options the work resolves further (qat trains on `train`; io by mode)
    profile = load_profile(o.target)
    from edgeml.quantize import budget as qb

    budget = qb.Budget(o.max_accuracy_drop, o.min_fidelity, o.keep_best,
                       max_evals=qb.MAX_EVALS if o.max_evals is None else o.max_evals)
    if budget.active:
        budget.check_options(eval_spec=o.eval, mode=o.mode)
    art = ModelArtifact.open(model)
    fmt = _formats(art, o.format, profile)
    # (a float .tflite source: AI Edge Quantizer's own refusal for float16/int16x8 names it)
    if not o.per_channel and ((o.mode == "float16" and art.format is not ModelFormat.TFLITE)
                              or (o.mode == "dynamic" and fmt == "tflite")):
        from edgeml.errors import UsageError

        what = "float16: float16 weights have no scales" if o.mode == "float16" else \
            "dynamic to TFLite: the quantizer keeps its own weight scales (no per-tensor switch)"
        raise UsageError(f"`per_channel=False` is not available for `mode` {what}",
                         hint="drop `per_channel=False`, or use `mode` int8 for per-tensor int8 weights")
    if art.format is ModelFormat.ONNX and fmt == "tflite":  # onnx2tf float TFLite, then the .tflite path below
        from edgeml.quantize.onnx_tflite import quantize_onnx_to_tflite

        return quantize_onnx_to_tflite(art, o, progress)
    if profile.full_int8 and o.mode != "int8":
        raise EdgeMLError(f"`target` {profile.name} runs full-int8 models only; `mode` {o.mode} cannot run there",
                          hint="use `mode` int8")
    if o.fallback == "int16x8" and (fmt != "tflite" or art.format is not ModelFormat.TFLITE):
        from edgeml.errors import BudgetError

        raise BudgetError("`fallback` int16x8 needs per-op precision: only AI Edge Quantizer (a float .tflite source) "
                          "mixes int8 and int16x8 ops here", hint="use `fallback` float (the default for this source)")
    if o.method == "qat":
        from edgeml.quantize import qat as qat_steps

        qat_steps.check_options(art, fmt, o.mode, o.train, o.epochs, budget)
        calib = calib if calib is not None else o.train
    if fmt == "tflite":
        from edgeml.quantize.tflite import io_types

        if o.method not in ("minmax", "qat"):
            raise EdgeMLError(f"`method` {o.method}: the TFLite quantizers calibrate with min/max ranges only",
                              hint="drop `method` for TFLite, or use `format` onnx for entropy/percentile")
        default_io = "int8" if art.format is ModelFormat.TFLITE else profile.quantize.get("tflite_io")
        io = io_types(o.mode, io or (default_io if o.mode == "int8" else None))
    else:
        from edgeml.quantize.onnx import check_modes

        check_modes(o.mode, io, o.method)
        io = "float32"
    needs_calib = o.mode in ("int8", "int16x8")
    if needs_calib and calib is None:
        raise EdgeMLError(f"`mode` {o.mode} needs calibration data", hint="pass `calib` SPEC (100-500 representative "
                                                                        "samples, e.g. `calib` images/?samples=200)")
    out_path, report_path = check_outputs([o.out, o.report], inputs=[art.path, calib, o.eval], force=o.force)
    assert out_path is not None  # out is required
    why = already_quantized(art)
    if why:
        raise EdgeMLError(f"{art.path}: the model is already quantized ({why})",
                          hint="quantize the float model it was made from")
    if art.format in (ModelFormat.KERAS, ModelFormat.H5) and keras_model is None:
        from edgeml.formats.keras import load

        say(f"loading {art.path}")
        keras_model = load(art.path)
    inputs = art.inspect().inputs if keras_model is None else _keras_inputs(keras_model)
    eval_ds = None
    if budget.active and o.eval is not None:  # before any work: unlabelled data for an accuracy budget is refused
        eval_ds = budget_steps.load_eval(budget, o.eval, inputs)
    ds = None
    if calib is not None:
        ds = calibration_data(calib, o.calib_samples, inputs)
        say(f"calibration data: {len(ds)} samples from {ds.spec.origin or ds.spec.source}")
    notes: list[str] = []
    warnings: list[str] = []
    if ds is not None and len(ds) < 50 and needs_calib:  # dynamic/float16 fix no ranges from the data
        warnings.append(f"only {len(ds)} calibration samples (at least 50 recommended); ranges may be poor")
    with tempfile.TemporaryDirectory(prefix="edgeml-quant-") as work_dir, atomic_path(out_path) as tmp:
        work = Path(work_dir)
        t_cal = time.perf_counter()
        ctx: dict[str, Any] | None = {"fallback": o.fallback} if budget.active else None
        training = acc_float = None
        if o.method == "qat":
            from edgeml.quantize import qat as qat_steps

            float_path, acc_float, left, recipe, training = qat_steps.run(art, keras_model, work, tmp, o.mode, io,
                                                                          o.per_channel, ds, profile, notes, say,
                                                                          o.train, o.epochs, o.lr, o.eval)
        elif fmt == "tflite":
            float_path, left, recipe = tflite_route(art, keras_model, work, tmp, o.mode, io, o.per_channel, ds,
                                                    profile, notes, say, ctx)
        else:
            float_path, left, recipe = onnx_route(art, keras_model, work, tmp, o.mode, o.per_channel, o.method, ds,
                                                  profile, notes, say, ctx)
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
        metrics, layers = compare_models(float_path, tmp, fmt, ds, inputs, o.debug_samples, say, o.input_shapes,
                                         art)
        budget_info: dict[str, Any] | None = None
        plain_copy: Path | None = None
        if budget.active and ctx is not None:
            plain_copy = work / f"plain{tmp.suffix or '.' + fmt}"
            plain_copy.write_bytes(tmp.read_bytes())
            budget_info, final = budget_steps.run(budget, float_path, plain_copy, layers, ctx, ds, eval_ds, o.eval,
                                                  fmt, o.mode, profile, say)
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
                metrics, layers = compare_models(float_path, tmp, fmt, ds, inputs, o.debug_samples, say,
                                                 o.input_shapes, art)
            if not budget_info["met"] and not o.keep_best:
                raise budget_steps.budget_error(budget_info, art.path, fmt, written=False)
        accuracy = top1_accuracy(acc_float or float_path, tmp, o.eval, say) if o.eval is not None else None
        size_before = float_path.stat().st_size
        size_after = tmp.stat().st_size
        source_size = art.inspect().size_bytes if art.format is not ModelFormat.SAVEDMODEL else size_before
        fid = fidelity_record(art, metrics, source_size, size_after, notes, warnings)
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
        if o.speed_seconds and o.speed_seconds > 0:  # every mode: float16/dynamic can be slower here too
            speed = budget_steps.time_models(float_path, tmp,
                                             plain_copy if budget_info and budget_info["fallback"] else None, ds,
                           eval_ds, o.mode, o.speed_seconds, say, o.input_shapes, warnings)
            if budget_info is not None and speed and "plain" in speed["p50_ms"]:
                budget_info["latency_p50_ms"] = {"plain": speed["p50_ms"]["plain"],
                                                 "budgeted": speed["p50_ms"][o.mode]}
        unmet_kept = budget_info is not None and not budget_info["met"]  # keep_best: the budget error follows
        if fid["status"] == "broken" and not o.keep_degraded and not unmet_kept:
            raise fidelity_error(art.path, fid, metrics, layers, fmt, o.mode, o.per_channel, o.method, written=False)
    result = QuantizeResult(
        source=str(art.path), source_format=art.format.value, output=str(out_path), format=fmt, mode=o.mode, io=io,
        per_channel=o.per_channel, method=o.method, target=profile.name, recipe=recipe,
        source_size_bytes=source_size,
        size_before_bytes=size_before, size_after_bytes=size_after, calibration=calibration, float_ops=left,
        metrics=metrics, layers=layers, accuracy=accuracy, seconds=round(time.perf_counter() - t_start, 3),
        notes=notes, warnings=warnings, fidelity=fid, budget=budget_info, speed=speed, training=training)
    if report_path is not None:
        write_report(result, report_path)
    return result


def _keras_inputs(keras_model: Any) -> list:
    from edgeml.formats.keras import io_specs

    return io_specs(keras_model)[0]


__all__ = ["QuantizeResult", "QuantizationError", "broken_error", "budget_lines", "budget_markdown",
           "budget_unmet_error", "quantize", "render_markdown", "speed_advice", "summary_lines", "write_report"]
