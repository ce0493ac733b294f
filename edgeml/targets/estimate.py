"""Latency and energy estimates for a target without the device.

Cost model (per target, coefficients are data in the profile's [estimate] table):

    ms = k_dense * F_dense + k_dw * F_dw + k0                          (CPU / GPU)
    F_x = 2 * MACs_x / (peak ops/s at the precision * threads ** alpha / cores)   in ms

``k_dense`` and ``k_dw`` are 1 / efficiency for dense (conv, fully connected) and depthwise/grouped
convolutions (depthwise runs far below peak); ``k0`` is the per-invoke floor. The Edge TPU uses
``ms = k_tpu * F_tpu + k_link * uncached_weight_bytes / link + k0`` with F_tpu at the 4 TOPS peak, the
~8 MiB parameter cache and the host link (USB2/USB3/PCIe), plus CPU time for ops after the first one the
Edge TPU cannot run. Three coefficients per target are fitted to published points
(benchmarks/estimate_validate.py) or to the user's own ``edgeml bench`` results (``--fit``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError

DEPTHWISE = {"DEPTHWISE_CONV_2D", "DepthwiseConv2D", "DepthwiseConv1D", "Conv(depthwise)"}
# Ops the Edge TPU compiler maps (coral.ai/docs/edgetpu/models-intro, "Supported operations").
EDGETPU_OPS = {"ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
               "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
               "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "DEQUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
               "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT",
               "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
               "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "edgetpu-custom-op"}
PRECISIONS = ("int8", "fp16", "fp32")
BYTES = {"int8": 1, "fp16": 2, "fp32": 4}
DEFAULT_ALPHA = 0.5  # thread scaling: ncnn 1 -> 4 threads gives ~2x on Pi 4/5 (targets.md section 5)


@dataclass
class Features:
    dense_macs: int
    dw_macs: int
    params: int
    ops: list[tuple[str, str, int]]  # (name, op, macs)
    tpu_macs: int = 0
    cpu_macs_after_tpu: int = 0
    first_unsupported: str | None = None


def features(inspection: Any) -> Features:
    dense = dw = 0
    ops = []
    tpu = cpu = 0
    first_bad = None
    for layer in inspection.layers:
        if layer.op in DEPTHWISE:
            dw += layer.macs
        else:
            dense += layer.macs
        ops.append((layer.name, layer.op, layer.macs))
        if first_bad is None and inspection.format == "tflite" and layer.op not in EDGETPU_OPS:
            first_bad = f"{layer.op} ({layer.name})"
        if first_bad is None:
            tpu += layer.macs
        else:
            cpu += layer.macs
    return Features(dense, dw, inspection.params, ops, tpu, cpu, first_bad)


# the smallest published model behind the fitted coefficients (benchmarks/estimate_validate.py)
FIT_SMALLEST_MACS = 56.5e6


def _default_precision(inspection: Any, profile: Any) -> str:
    if profile.kind == "edgetpu":
        return "int8"
    quantized = any(d in ("int8", "uint8") for d in inspection.weight_dtypes)
    if profile.kind == "gpu":
        return "int8" if quantized and "int8" in profile.peak_gops else "fp16"
    return "int8" if quantized else "fp32"


def _peak(profile: Any, precision: str) -> float:
    peak = profile.peak_gops.get(precision) or profile.peak_gops.get("fp32")
    if not peak:
        raise EdgeMLError(f"target {profile.name} has no peak throughput for {precision} in its profile",
                          hint="estimates need [peak_gops]; the host is measured instead: edgeml bench MODEL")
    return float(peak)


def design_row(f: Features, profile: Any, precision: str, threads: int | None) -> tuple[list[float], float]:
    """Feature row [a, b, 1] for the target's three coefficients, and the CPU-fallback ms (Edge TPU)."""
    if profile.kind == "edgetpu":
        peak = _peak(profile, "int8") * 1e9
        cache = (profile.param_cache_mib or 8.0) * 2**20
        uncached = max(0.0, f.params - cache)  # int8: one byte per weight
        link = (profile.link_gbs or 0.35) * 1e9
        cpu_ms = 0.0
        if f.cpu_macs_after_tpu:
            cpu_ms = 2 * f.cpu_macs_after_tpu / (8e9) * 1000  # ~8 GOP/s effective on a host CPU core [U]
        return [2 * f.tpu_macs / peak * 1000, uncached / link * 1000, 1.0], cpu_ms
    peak = _peak(profile, precision) * 1e9
    if profile.kind == "cpu":
        cores = max(1, profile.cores or 1)
        t = min(threads or cores, cores)
        alpha = float(profile.estimate.get("thread_alpha", DEFAULT_ALPHA))
        peak = peak / cores * t ** alpha  # per-core peak, sub-linear in threads
    return [2 * f.dense_macs / peak * 1000, 2 * f.dw_macs / peak * 1000, 1.0], 0.0


def coefficients(profile: Any, precision: str) -> tuple[list[float], str]:
    est = profile.estimate
    key = f"coef_{precision}" if f"coef_{precision}" in est else "coef"
    coef = est.get(key)
    if not coef or len(coef) != 3:
        raise EdgeMLError(f"target {profile.name} has no fitted estimate coefficients ([estimate] {key})",
                          hint=f"fit them from your measurements: edgeml estimate --fit results.json --target "
                               f"{profile.name} -o my-{profile.name}.toml")
    basis = est.get(f"basis_{precision}") or est.get("basis") or "coefficients in the profile"
    return [float(c) for c in coef], basis


@dataclass
class Estimate:
    model: str
    target: str
    precision: str
    threads: int | None
    ms: float
    energy_mj: float | None
    power_w: float | None
    basis: str
    breakdown: dict[str, float]
    top_ops: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    extrapolated: bool = False  # the model is far outside the published models the coefficients were fitted on

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.estimate/1", "kind": "estimated", **asdict(self)}


def estimate(model: str | Path, *, target: str, precision: str | None = None, threads: int | None = None,
             top: int = 8) -> Estimate:
    from edgeml.artifact import ModelArtifact
    from edgeml.targets import load_profile

    profile = load_profile(target)
    if profile.is_host:
        raise EdgeMLError("the host is measured, not estimated", hint="edgeml bench MODEL")
    if precision is not None and precision not in PRECISIONS:
        raise EdgeMLError(f"--precision {precision}: unknown", hint=f"use one of {', '.join(PRECISIONS)}")
    art = ModelArtifact.open(model)
    info = art.inspect()
    if not info.macs:
        raise EdgeMLError(f"{art.path}: no MACs found in the graph, nothing to estimate from",
                          hint="edgeml inspect MODEL shows what edgeml sees")
    return estimate_from(info, profile, precision=precision, threads=threads, top=top, name=str(art.path))


def estimate_from(info: Any, profile: Any, *, precision: str | None, threads: int | None, top: int = 8,
                  name: str = "") -> Estimate:
    notes = []
    if precision is None:
        precision = _default_precision(info, profile)
        est = profile.estimate
        if profile.kind == "gpu" and precision == "int8" and "coef_int8" not in est and "coef_fp16" in est:
            precision = "fp16"
            notes.append("no published int8 latency for this target to fit: estimated at its fp16 cost (TensorRT "
                         "int8 is usually no slower than fp16, so read this as an upper bound)")
    if profile.kind == "edgetpu":
        if precision != "int8":
            raise EdgeMLError(f"target {profile.name} runs int8 only", hint="use --precision int8")
        if not any(d in ("int8", "uint8") for d in info.weight_dtypes):
            notes.append("the model is float: the estimate assumes it is quantized to int8 and compiled")
    f = features(info)
    row, extra_ms = design_row(f, profile, precision, threads)
    coef, basis = coefficients(profile, precision)
    parts = [c * x for c, x in zip(coef, row)]
    ms = sum(parts) + extra_ms
    if profile.kind == "edgetpu":
        breakdown = {"edgetpu_compute_ms": parts[0], "weight_streaming_ms": parts[1], "fixed_ms": parts[2],
                     "cpu_fallback_ms": extra_ms}
        if f.first_unsupported:
            notes.append(f"the Edge TPU stops at {f.first_unsupported}; later ops run on the CPU")
        cache = (profile.param_cache_mib or 8.0) * 2**20
        notes.append(f"weights {f.params / 2**20:.1f} MiB int8 {'fit' if f.params <= cache else 'do not fit'} the "
                     f"~{cache / 2**20:.0f} MiB parameter cache ({profile.link or 'link'})")
    else:
        breakdown = {"dense_ms": parts[0], "depthwise_ms": parts[1], "fixed_ms": parts[2]}
    total_macs = max(1, f.dense_macs + f.dw_macs)
    extrapolated = total_macs < FIT_SMALLEST_MACS / 4
    if extrapolated:
        notes.append(f"under {FIT_SMALLEST_MACS / 4e6:.0f} M MACs, the model is far smaller than every published "
                     f"model the coefficients were fitted on (smallest: MobileNetV3-Small, "
                     f"{FIT_SMALLEST_MACS / 1e6:.0f} M MACs): the fixed per-inference term and launch overheads "
                     "are extrapolated; treat the number as a rough guide and measure on the board")
    compute_ms = ms - parts[-1] - (parts[1] if profile.kind == "edgetpu" else 0.0)
    ranked = sorted(f.ops, key=lambda o: -o[2])[:top]
    top_ops = [{"name": n, "op": op, "macs": m, "share": m / total_macs,
                "ms": compute_ms * m / total_macs} for n, op, m in ranked if m]
    power = profile.load_w
    return Estimate(model=name or info.path, target=profile.name, precision=precision,
                    threads=threads or (profile.cores if profile.kind == "cpu" else None), ms=ms,
                    energy_mj=ms * power if power else None, power_w=power,
                    basis=f"estimate from profile {profile.name}: {basis}", breakdown=breakdown, top_ops=top_ops,
                    notes=notes, extrapolated=extrapolated)


def estimate_bench(arts: list, profile: Any, *, threads: int | None) -> Any:
    """``edgeml bench --target BOARD`` without --host: estimates, labelled as such."""
    from edgeml.bench.harness import BenchResult

    models = []
    notes = [f"no board measured: estimated for {profile.name} (add --host USER@BOARD to measure)"]
    for art in arts:
        try:
            e = estimate_from(art.inspect(), profile, precision=None, threads=threads, name=str(art.path))
        except EdgeMLError as exc:
            if len(arts) == 1:
                raise
            notes.append(f"{art.path.name}: not estimated: {exc.message}")
            continue
        models.append({"name": art.path.name, "path": str(art.path), "size_bytes": art.inspect().size_bytes,
                       "estimate": e.to_dict()})
    return BenchResult(target=profile.name, where="estimate", measured=False, models=models, environment=None,
                       settings={"threads": threads}, notes=notes)


# -- fitting ---------------------------------------------------------------------------------------------
def nnls(a: np.ndarray, b: np.ndarray, iters: int = 50) -> np.ndarray:
    """Non-negative least squares by repeated least squares on the still-positive columns."""
    active = np.ones(a.shape[1], bool)
    x = np.zeros(a.shape[1])
    for _ in range(iters):
        sol, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        x = np.zeros(a.shape[1])
        x[active] = sol
        if (x >= 0).all():
            return x
        active &= x > 0
        if not active.any():
            break
    return np.clip(x, 0, None)


@dataclass
class Fit:
    target: str
    precision: str
    points: int
    coef: list[float]
    median_abs_error: float
    errors: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.estimate_fit/1", **asdict(self)}


def fit(points: list[tuple[str, Any, float, int | None]], profile: Any, precision: str) -> Fit:
    """Fit the three coefficients to (name, inspection, measured ms, threads) points (relative error)."""
    if not points:
        raise EdgeMLError("no measurements to fit", hint="give edgeml bench --json results measured on the target")
    rows, extra, y = [], [], []
    for _, info, ms, threads in points:
        r, e = design_row(features(info), profile, precision, threads)
        rows.append(r)
        extra.append(e)
        y.append(ms)
    a, y_arr = np.array(rows), np.array(y) - np.array(extra)
    w = 1.0 / np.array(y)  # minimise relative error: every model counts the same
    if len(points) >= 3:
        coef = nnls(a * w[:, None], y_arr * w)
    else:  # too few points for three coefficients: rescale the current ones
        try:
            base, _ = coefficients(profile, precision)
        except EdgeMLError:
            base = [1.0, 1.0, 0.0]
        pred = a @ np.array(base)
        s = float(np.median(y_arr / np.maximum(pred, 1e-9)))
        coef = np.array(base) * s
    pred = a @ coef + np.array(extra)
    errors = [{"model": n, "measured_ms": m, "estimated_ms": float(p), "error": float(p / m - 1)}
              for (n, _, m, _), p in zip(points, pred)]
    return Fit(profile.name, precision, len(points), [float(round(c, 6)) for c in coef],
               float(np.median([abs(e["error"]) for e in errors])), errors)


def fit_from_bench(results: list[str | Path], target: str, precision: str | None = None) -> Fit:
    from edgeml.artifact import ModelArtifact
    from edgeml.targets import load_profile

    profile = load_profile(target)
    points, precisions = [], set()
    for path in results:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EdgeMLError(f"{path}: not a readable edgeml bench JSON result ({exc})",
                              hint="write one with edgeml bench ... --target T --host H --out results.json") from exc
        if data.get("schema") != "edgeml.bench/1" or not data.get("measured"):
            raise EdgeMLError(f"{path}: not a measured edgeml bench result (schema edgeml.bench/1, measured)")
        for m in data["models"]:
            if "latency_ms" not in m:
                continue
            model_path = Path(m["path"])
            if not model_path.exists():
                raise EdgeMLError(f"{path}: the benchmarked model {model_path} is not here",
                                  hint="fit where the models are (the graph is needed, not just the times)")
            info = ModelArtifact.open(model_path).inspect()
            precisions.add(precision or _default_precision(info, profile))
            points.append((model_path.name, info, float(m["latency_ms"]["p50"]), m.get("threads")))
    if len(precisions) > 1:
        raise EdgeMLError(f"results mix precisions ({', '.join(sorted(precisions))})",
                          hint="fit one precision at a time: --precision int8")
    return fit(points, profile, precisions.pop() if precisions else "fp32")


def profile_with_fit(profile: Any, result: Fit) -> str:
    """The profile's TOML text with the fitted coefficients in its [estimate] table."""
    text = Path(profile.path if Path(profile.path).exists() else
                Path(__file__).parent / "profiles" / f"{profile.name}.toml").read_text()
    lines = [f"coef_{result.precision} = [{', '.join(repr(c) for c in result.coef)}]",
             f'basis_{result.precision} = "3 coefficients fitted to {result.points} measured edgeml bench results, '
             f'median abs error {100 * result.median_abs_error:.1f}%"']
    if "\n[estimate]\n" not in text:
        return text.rstrip() + "\n\n[estimate]\n" + "\n".join(lines) + "\n"
    head, rest = text.split("\n[estimate]\n", 1)
    nxt = re.search(r"^\[", rest, flags=re.M)
    body, tail = (rest[:nxt.start()], rest[nxt.start():]) if nxt else (rest, "")
    keep = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith((f"coef_{result.precision}",
                                                                               f"basis_{result.precision}"))]
    return head + "\n[estimate]\n" + "\n".join(keep + lines) + "\n\n" + tail


__all__ = ["Estimate", "Fit", "estimate", "fit", "fit_from_bench"]
