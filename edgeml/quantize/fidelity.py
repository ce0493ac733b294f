"""Is the quantized model still the model? The gate on quantize's own float-vs-quantized comparison.

quantize runs the float and the quantized model on the same samples (calibration samples, else seeded
random inputs) and compares their outputs as real values. Per output:

- relative error ``||q - f|| / ||f||`` (``f`` float, ``q`` quantized): ``20 log10(1 / rel)`` is the output's
  SQNR. Applies to every output (classifier, detector, regression, embedding).
- cosine between ``f`` and ``q``: the direction of the output vector, blind to a common scale.
- argmax agreement: only for classifier-shaped outputs (one non-singleton axis per sample) whose float
  top-1 is not tied; a detector's boxes or a constant output have no meaningful argmax.

Thresholds (chosen from what int8 does to a healthy model: 8-bit per-channel post-training quantization
typically leaves outputs at 15-40 dB SQNR, cosine > 0.99, argmax agreement > 95 % on real samples; a
wrong scale, a saturating per-tensor range or a broken graph gives single-digit dB and near-random argmax):

- **broken** (quantize fails with exit 1 and writes nothing unless ``--keep-degraded``):
  relative error > ``BROKEN_REL`` (0.5, i.e. output SQNR below 6 dB), or cosine < ``BROKEN_COSINE`` (0.90),
  or argmax agreement < ``BROKEN_ARGMAX`` (80 %) over at least ``MIN_ARGMAX_SAMPLES`` comparable samples;
  also an output more than ``GROWTH_FACTOR`` (2) x the source's size and ``GROWTH_MIN_BYTES`` (256 KiB)
  larger (quantizing should shrink a model; growth means weights built at run time were materialised as
  constants).
- **degraded** (a warning): relative error > ``DEGRADED_REL`` (0.25, below 12 dB), cosine < ``DEGRADED_COSINE``
  (0.98), or argmax agreement < ``DEGRADED_ARGMAX`` (95 %).

Outputs that are constant in the float model on every sample are reported (cosine and argmax say nothing
there) and judged on relative error alone.
"""

from __future__ import annotations

from typing import Any

BROKEN_REL, DEGRADED_REL = 0.5, 0.25
BROKEN_COSINE, DEGRADED_COSINE = 0.90, 0.98
BROKEN_ARGMAX, DEGRADED_ARGMAX = 0.80, 0.95
MIN_ARGMAX_SAMPLES = 8
GROWTH_FACTOR, GROWTH_MIN_BYTES = 2.0, 256 << 10
WEIGHT_BUILDERS = ("ConstantOfShape", "Expand", "Tile", "RandomNormal", "RandomUniform", "RandomNormalLike",
                   "RandomUniformLike", "EyeLike", "Range")


def thresholds() -> dict[str, float]:
    return {"broken_relative_error": BROKEN_REL, "broken_cosine": BROKEN_COSINE, "broken_argmax": BROKEN_ARGMAX,
            "degraded_relative_error": DEGRADED_REL, "degraded_cosine": DEGRADED_COSINE,
            "degraded_argmax": DEGRADED_ARGMAX, "growth_factor": GROWTH_FACTOR}


def judge(metrics: Any) -> tuple[str, list[str], list[str]]:
    """(status 'ok' | 'degraded' | 'broken', broken reasons, degraded reasons) from a Verification."""
    broken: list[str] = []
    degraded: list[str] = []
    for o in metrics.outputs:
        name = o["reference"]
        rel, cos = o.get("relative_error", 0.0), o["cosine"]
        if rel > BROKEN_REL:
            broken.append(f"output {name!r} relative error {rel:.3g} (> {BROKEN_REL}; {_db(rel)} SQNR)")
        elif rel > DEGRADED_REL:
            degraded.append(f"output {name!r} relative error {rel:.3g} (> {DEGRADED_REL}; {_db(rel)} SQNR)")
        if not o.get("constant"):
            if cos < BROKEN_COSINE:
                broken.append(f"output {name!r} cosine {cos:.3f} (< {BROKEN_COSINE})")
            elif cos < DEGRADED_COSINE:
                degraded.append(f"output {name!r} cosine {cos:.3f} (< {DEGRADED_COSINE})")
        agree = o.get("argmax_agreement")
        if agree is not None and metrics.samples >= MIN_ARGMAX_SAMPLES:
            if agree < BROKEN_ARGMAX:
                broken.append(f"output {name!r} argmax agreement {100 * agree:.1f}% (< {100 * BROKEN_ARGMAX:.0f}%)")
            elif agree < DEGRADED_ARGMAX:
                degraded.append(f"output {name!r} argmax agreement {100 * agree:.1f}% "
                                f"(< {100 * DEGRADED_ARGMAX:.0f}%)")
    status = "broken" if broken else "degraded" if degraded else "ok"
    return status, broken, degraded


def _db(rel: float) -> str:
    import math

    return f"{20 * math.log10(1 / rel):.1f} dB" if 0 < rel < math.inf else "-inf dB"


def size_growth(source_bytes: int, output_bytes: int, source_ops: dict[str, int] | None) -> str | None:
    """Why the output is far larger than the source, or None when it is not."""
    from edgeml.formats.common import human_bytes

    if not source_bytes or output_bytes <= GROWTH_FACTOR * source_bytes or \
            output_bytes - source_bytes < GROWTH_MIN_BYTES:
        return None
    why = (f"the quantized model is {human_bytes(output_bytes)}, {output_bytes / source_bytes:.0f}x the "
           f"{human_bytes(source_bytes)} source")
    builders = {op: n for op, n in (source_ops or {}).items() if op in WEIGHT_BUILDERS}
    if builders:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(builders.items()))
        why += (f": the source builds tensors at run time ({ops}) and constant folding stored them as weights "
                "(placeholder weights of an export without its trained values?)")
    else:
        why += ": constant folding materialised tensors that the source computes at run time"
    return why


def hint(*, fmt: str, mode: str, per_channel: bool, method: str) -> str:
    """What to try when the gate trips, for this recipe."""
    tries = []
    calibrated = mode in ("int8", "int16x8")  # per_channel, method and calib shape only these (dynamic: no ranges)
    if not per_channel and calibrated:
        tries.append("`per_channel=True`")
    if fmt == "onnx" and method == "minmax" and calibrated:
        tries.append("`method=\"percentile\"` (or entropy)")
    if fmt == "tflite" and mode == "int8":
        tries.append("`mode=\"int16x8\"`")
    if fmt == "onnx" and mode == "int8":  # e.g. a LayerNorm built from ReduceSum/Sub/Sqrt (Magika): int8 weights only
        tries.append("`mode=\"dynamic\"` (int8 weights, float activations)")
    if calibrated:
        tries.append("more representative `calib` data")
    return (f"try {', '.join(tries)}; " if tries else "") + (
        "judge the result on labelled data with `eval` (or an accuracy budget: "
        "`edgeml.check(MODEL, max_accuracy_drop=DROP, baseline=FLOAT)`); `keep_degraded=True` writes the model "
        "anyway (still exit 1)")
