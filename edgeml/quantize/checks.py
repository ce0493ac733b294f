"""quantize()'s checks of its output: float vs quantized outputs and per-layer errors (``compare_models``), the
fidelity verdict on them (``fidelity_record``), top-1 on labelled data (``top1_accuracy``); and of its input: a
model quantized already (``already_quantized``), the calibration data (``calibration_data``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError, QuantizationError

# the per-layer pass runs every tensor of both models unoptimised: at most this many MACs x samples per model
# (a 1 G-MAC detector gets 3 samples, not 16; its output comparison still uses every sample)
LAYER_MACS_BUDGET = 4_000_000_000
DEFAULT_CALIB_SAMPLES = 200


def fidelity_record(art: ModelArtifact, metrics: Any, source_size: int, size_after: int, notes: list[str],
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



def layer_samples(art: Any, feeds: list, n: int) -> tuple[int, int | None]:
    """How many samples the per-layer pass gets under LAYER_MACS_BUDGET, and the model's MACs (None: unknown)."""
    try:
        info = art.inspect()
        if info.macs_partial and feeds:
            info = art.inspect(input_shapes={k: tuple(v.shape) for k, v in feeds[0].items()})
        macs = None if info.macs_partial else info.macs
    except Exception:  # noqa: BLE001 - no count: no bound
        macs = None
    return (n if not macs else max(1, min(n, LAYER_MACS_BUDGET // macs))), macs


def compare_models(float_path: Path, quant_path: Path, fmt: str, ds, inputs, n: int, say, input_shapes: Any = None,
             art: Any = None):
    from edgeml.convert.verify import compare, random_feeds, random_feeds_label
    from edgeml.runtimes.session import open_session

    try:
        test = open_session(quant_path)
    except EdgeMLError as exc:
        raise QuantizationError(f"the quantized model does not load: {exc.message}",
                                hint="nothing was written; report this with its traceback "
                                     "(`traceback.print_exc()`)") from exc
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
                                hint="nothing was written; try `per_channel=False` or another `mode`") from exc
    k, macs = layer_samples(art, feeds, len(feeds)) if art is not None else (len(feeds), None)
    if k < len(feeds) and macs:  # fewer samples only under a known MAC count
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


def top1_accuracy(float_path: Path, quant_path: Path, eval_spec: Any, say) -> dict[str, Any]:
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


def already_quantized(art: ModelArtifact) -> str | None:
    """Why ``art`` cannot be quantized again (its ops or weights are quantized already), or None."""
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


def calibration_data(calib: Any, samples: int | None, inputs: list) -> Any:
    """The calibration Dataset for a model's ``inputs``: ``samples`` of them (default DEFAULT_CALIB_SAMPLES)."""
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
