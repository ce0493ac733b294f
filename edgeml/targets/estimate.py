"""Latency and energy estimates for a target without the device.

Cost model (coefficients are data in the profile's [estimate] table, overheads in its [overhead] table):

    ms = k_dense * F_dense + k_dw * F_dw + k_layer * L  +  floor                     (CPU / GPU)
    F_x   = 2 * MACs_x / (peak ops/s at the precision * threads ** alpha / cores)   in ms
    floor = invoke_ms + per_op_ms * L          (published / measured runtime overheads, never fitted)

``L`` is the number of compute layers (convolutions, fully connected, matmuls: counted the same in every
format). ``k_dense`` and ``k_dw`` are 1 / efficiency of dense and depthwise work, ``k_layer`` the per-layer
cost beyond the runtime's dispatch floor (memory-bound element-wise/pooling/padding work that rides along
with each layer). A tiny model therefore costs its compute plus the runtime's real floor (microseconds on
a Pi, the launch overhead on a GPU), never a fitted constant. The Edge TPU uses the compiler plan
(edgetpu_plan.py): ``ms = k_tpu * F_tpu + k_link * streamed_bytes / link + k_layer * L_tpu + floor +
CPU-fallback ms`` (the ops the Edge TPU cannot run, costed on the host CPU's profile), with the floor =
USB/PCIe round trip + the Edge TPU part's input/output bytes over the link. Coefficients are fitted
(estimate_fit.py) to published points (benchmarks/estimate_validate.py) or the user's own bench results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml._types import InputShapes, PathLike
from edgeml.errors import EdgeMLError, UsageError
from edgeml.options import EstimateOptions, Precision

DEPTHWISE = {"DEPTHWISE_CONV_2D", "DepthwiseConv2D", "DepthwiseConv1D", "Conv(depthwise)"}
RECURRENT = {"LSTM", "GRU", "RNN", "SimpleRNN", "Bidirectional", "UNIDIRECTIONAL_SEQUENCE_LSTM",
             "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"}
LOOPS = {"WHILE", "Loop", "Scan"}
PRECISIONS = Precision.values()
DEFAULT_ALPHA = 0.5  # thread scaling: ncnn 1 -> 4 threads gives ~2x on Pi 4/5 (targets.md section 5)
# the smallest / largest published model behind the fitted coefficients (benchmarks/estimate_validate.py)
FIT_SMALLEST_MACS = 56.5e6
EDGETPU_OP = "edgetpu-custom-op"


@dataclass
class Features:
    dense_macs: int
    dw_macs: int
    params: int
    ops: list[tuple[str, str, int]]  # (name, op, macs)
    layers: int = 0  # compute layers (MACs > 0)
    io_bytes: int = 0  # int8 bytes of the model's inputs + outputs (what crosses an accelerator's link)
    tpu_macs: int = 0
    tpu_layers: int = 0
    streamed_bytes: int | None = None  # Edge TPU: parameter bytes beyond the on-chip cache (None: from params)
    cpu_fallback: Any = None  # Edge TPU: Features of the ops left on the CPU


def _elements(specs: Any) -> int:
    total = 0
    for t in specs or []:
        n = 1
        for d in t.shape:
            n *= d or 1
        total += n
    return total


def features(inspection: Any) -> Features:
    dense = dw = layers = 0
    ops = []
    for layer in inspection.layers:
        if layer.op in DEPTHWISE:
            dw += layer.macs
        else:
            dense += layer.macs
        layers += layer.macs > 0
        ops.append((layer.name, layer.op, layer.macs))
    io = _elements(getattr(inspection, "inputs", [])) + _elements(getattr(inspection, "outputs", []))
    return Features(dense, dw, inspection.params, ops, layers, io, dense + dw, layers)


def refuse_unknown_cost(info: Any, path: Any) -> None:
    """Refuse models whose MACs edgeml cannot count right (never estimate from an invented number)."""
    if getattr(info, "macs_partial", False):
        why = next((n for n in getattr(info, "notes", []) if n.startswith("MACs partial")), "")
        raise EdgeMLError(f"{path}: cannot estimate: MACs are partial ({why.split(';')[0] or 'see edgeml inspect'})",
                          hint=why.split("; ", 1)[1] if "; " in why else
                          "give the unknown dims with `input_shapes=NAME=D0,D1,...` "
                          "(`edgeml.inspect(MODEL)` lists them)")
    counted_at_shapes = hasattr(info, "macs_shapes")  # the inspector resolves dims and loop trip counts itself
    for t in [] if counted_at_shapes else getattr(info, "inputs", []):
        unknown = [i for i, d in enumerate(t.shape) if d is None and i > 0]
        if unknown:
            raise EdgeMLError(f"{path}: input '{t.name}' {t.shape_str()} has unknown dims {unknown}: MACs would be "
                              "counted on an invented size", hint="export the model with fixed input dims (or give "
                                                                  "them with `input_shapes` where supported)")
    for layer in info.layers:
        # (an inspector that counts at resolved shapes marks uncountable recurrent ops as macs_partial; a
        # recurrent op at 0 MACs there sits in a branch that does not run, e.g. the other sample rate's)
        if layer.op in RECURRENT and not layer.macs and not counted_at_shapes:
            raise EdgeMLError(f"{path}: recurrent op {layer.op} ({layer.name}) has no MAC count: its cost is unknown",
                              hint="`edgeml.inspect(MODEL)`; recurrent MACs need the sequence length to be fixed")
        if layer.op in LOOPS and not counted_at_shapes:
            raise EdgeMLError(f"{path}: control-flow loop {layer.op} ({layer.name}): its iteration count, and so its "
                              "cost, is unknown before running", hint="measure it: `edgeml.bench(MODEL, target=T)`")


def default_precision(inspection: Any, profile: Any) -> str:
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
                          hint="estimates need [peak_gops]; the host is measured instead: `edgeml.bench(MODEL)`")
    return float(peak)


def floor_ms(f: Features, profile: Any, layers: int | None = None) -> float:
    """The runtime's own per-inference floor: invoke overhead + per-op dispatch (+ link transfer)."""
    o = profile.overhead
    if not o:
        return 0.0
    n = f.layers if layers is None else layers
    ms = float(o.get("invoke_ms", 0.0)) + float(o.get("per_op_ms", 0.0)) * n
    if profile.kind == "edgetpu":
        ms += f.io_bytes / ((profile.link_gbs or 0.35) * 1e9) * 1000
    return ms


def design_row(f: Features, profile: Any, precision: str, threads: int | None) -> tuple[list[float], float]:
    """Feature row for the target's three coefficients, and the fixed ms (floor + Edge TPU CPU fallback)."""
    if profile.kind == "edgetpu":
        peak = _peak(profile, "int8") * 1e9
        cache = (profile.param_cache_mib or 8.0) * 2**20
        streamed = f.streamed_bytes if f.streamed_bytes is not None else max(0.0, f.params - cache)
        link = (profile.link_gbs or 0.35) * 1e9
        fixed = floor_ms(f, profile, f.tpu_layers) + cpu_fallback_ms(f.cpu_fallback, profile)
        return [2 * f.tpu_macs / peak * 1000, streamed / link * 1000, float(f.tpu_layers)], fixed
    peak = _peak(profile, precision) * 1e9
    if profile.kind == "cpu":
        cores = max(1, profile.cores or 1)
        t = min(threads or cores, cores)
        alpha = float(profile.estimate.get("thread_alpha", DEFAULT_ALPHA))
        peak = peak / cores * t ** alpha  # per-core peak, sub-linear in threads
    return [2 * f.dense_macs / peak * 1000, 2 * f.dw_macs / peak * 1000, float(f.layers)], floor_ms(f, profile)


def cpu_fallback_ms(f: Features | None, profile: Any) -> float:
    """Ops the Edge TPU leaves on the CPU, costed on the host CPU's own profile (int8)."""
    if f is None or (not f.layers and not f.dense_macs and not f.dw_macs):
        return 0.0
    from edgeml.targets import load_profile

    host = load_profile(profile.host) if profile.host else None
    if host is None or host.kind != "cpu":
        raise EdgeMLError(f"target {profile.name} has ops on the CPU but no host CPU profile to cost them",
                          hint="set host = \"rpi4\" (or your board's profile) in the target profile")
    row, fixed = design_row(f, host, "int8", None)
    coef, _ = coefficients(host, "int8")
    scale = float(profile.overhead.get("cpu_fallback_scale", 1.0))  # the Edge TPU host CPU vs the host profile
    return (sum(c * x for c, x in zip(coef, row)) + fixed) * scale


def coefficients(profile: Any, precision: str) -> tuple[list[float], str]:
    est = profile.estimate
    key = f"coef_{precision}" if f"coef_{precision}" in est else "coef"
    coef = est.get(key)
    if not coef and key == "coef":  # no coefficients for this precision, but for others: say which
        fitted = sorted(k.removeprefix("coef_") for k in est if k.startswith("coef_"))
        if fitted:
            raise EdgeMLError(f"target {profile.name} has no published figures for {precision} to estimate from "
                              f"(fitted: {', '.join(fitted)})",
                              hint=f"use {' or '.join(f'`precision={f!r}`' for f in fitted)}, or fit {precision} "
                                   f"from your measurements: `edgeml.estimate(fit=\"results.json\", "
                                   f"target={profile.name!r}, out=\"my-{profile.name}.toml\")`")
    if not coef or len(coef) != 3:
        raise EdgeMLError(f"target {profile.name} has no fitted estimate coefficients ([estimate] {key})",
                          hint="fit them from your measurements: `edgeml.estimate(fit=\"results.json\", "
                               f"target={profile.name!r}, out=\"my-{profile.name}.toml\")`")
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
    floor_ms: float = 0.0  # the runtime overhead the estimate rests on (never undercut)
    lower_bound: bool = False  # ms is a lower bound (compiled Edge TPU model: its MACs are not visible)
    plan: dict[str, Any] | None = None  # Edge TPU: the op-mapping plan summary

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.estimate/1", "kind": "estimated", **asdict(self)}


def _inspect(art: Any, input_shapes: Any) -> Any:
    return art.inspect() if input_shapes is None else art.inspect(input_shapes=input_shapes)


def estimate(model: PathLike, *, target: str | None = None, precision: str | None = None,
             threads: int | None = None, top: int = 8, input_shapes: InputShapes | None = None,
             options: EstimateOptions | None = None) -> Estimate:
    """Estimate ``model`` on ``target`` (see the module docstring). ``options`` (an
    :class:`~edgeml.options.EstimateOptions`) gives every option at once, in place of the keyword arguments of
    the same names (a UsageError when both are given); the work reads that one object."""
    o = EstimateOptions.build("estimate", options, locals())
    return _estimate(model, o)


def _estimate(model: PathLike, o: EstimateOptions) -> Estimate:
    """:func:`estimate` with its options in one object."""
    from edgeml.artifact import ModelArtifact
    from edgeml.targets import load_profile

    profile = load_profile(o.target)
    if profile.is_host:
        raise EdgeMLError("the host is measured, not estimated", hint="`edgeml.bench(MODEL)`")
    art = ModelArtifact.open(model)
    info = _inspect(art, o.input_shapes)
    if EDGETPU_OP in (info.custom_ops or []):
        if profile.kind != "edgetpu":
            raise EdgeMLError(f"{art.path}: compiled for the Edge TPU; it runs only on Coral targets",
                              hint="estimate the .tflite it was compiled from for this target")
        return estimate_from(info, profile, precision=o.precision, threads=o.threads, top=o.top, name=str(art.path))
    refuse_unknown_cost(info, art.path)
    if not info.macs:
        raise EdgeMLError(f"{art.path}: no MACs found in the graph, nothing to estimate from",
                          hint="`edgeml.inspect(MODEL)` shows what edgeml sees")
    return estimate_from(info, profile, precision=o.precision, threads=o.threads, top=o.top, name=str(art.path))


def edgetpu_features(info: Any, profile: Any, f: Features, notes: list[str]) -> tuple[Features, dict | None, bool]:
    """Features split by the compiler plan (for a .tflite), or the all-on-TPU assumption (other formats)."""
    if info.format != "tflite" or not Path(str(info.path)).is_file():
        notes.append("not a .tflite: assumes every op maps to the Edge TPU after quantization (no compiler plan)")
        return f, None, False
    if not any(d in ("int8", "uint8") for d in info.weight_dtypes) and EDGETPU_OP not in (info.custom_ops or []):
        notes.append(f"float .tflite: assumes every op maps after full-int8 quantization; quantize with "
                     f"`target={profile.name!r}`, then `edgeml.compile(MODEL, plan=True)` shows the real mapping")
        return f, None, False
    from edgeml.targets.edgetpu_plan import plan

    p = plan(info.path, target=profile.name)
    cpu_ops = [o for o in p.ops if o.where == "cpu"]
    cpu = Features(sum(o.macs for o in cpu_ops if o.op not in DEPTHWISE),
                   sum(o.macs for o in cpu_ops if o.op in DEPTHWISE), 0,
                   [(o.name, o.op, o.macs) for o in cpu_ops], len(cpu_ops))  # every CPU op dispatches
    f.tpu_macs, f.tpu_layers = p.edgetpu_macs, sum(o.macs > 0 for o in p.ops if o.where == "edgetpu")
    f.streamed_bytes, f.io_bytes = p.streamed_weight_bytes, p.io_bytes
    f.cpu_fallback = cpu if cpu_ops else None
    notes.append(p.summary())
    if not p.compiles:
        raise EdgeMLError(f"{info.path}: edgetpu_compiler would not compile it: {'; '.join(p.blockers)}",
                          hint="quantize to full int8 with static shapes (`edgeml.quantize(MODEL, calib=SPEC, "
                               f"target={profile.name!r})`); `edgeml.compile({str(info.path)!r}, "
                               f"target={profile.name!r}, plan=True)` shows each op")
    lower = False
    if p.compiled:
        lower = True
        f.tpu_layers = max(1, f.tpu_layers)
        # parameters are used at least once per inference: MACs >= parameter bytes (a lower bound)
        f.tpu_macs = max(f.tpu_macs, p.compiled_blob_bytes)
        notes.append("compiled model: the MACs inside the Edge TPU op are not visible; estimated from the compiled "
                     "blob (parameters used at least once), its input/output tensors and the CPU ops around it, so "
                     "this is a LOWER BOUND; estimate the source .tflite for a full estimate")
    return f, p.to_dict(), lower


def check_threads(threads: int | None, profile: Any) -> None:
    """``threads`` the estimate can honour: CPU targets only, at most the board's cores (the thread scaling
    stops there). Anything else is refused, never estimated at other threads than the ones reported."""
    if threads is None:
        return
    if profile.kind != "cpu":
        raise UsageError(f"`threads` {threads}: target {profile.name} is {profile.kind}, not a CPU; its estimate "
                         "does not depend on threads", hint="drop `threads`")
    cores = max(1, profile.cores or 1)
    if threads > cores:
        raise UsageError(f"`threads` {threads}: target {profile.name} has {cores} cores; the estimate scales "
                         f"up to {cores} threads", hint=f"use `threads` 1 to {cores}, or drop it (all cores)")


def estimate_from(info: Any, profile: Any, *, precision: str | None, threads: int | None, top: int = 8,
                  name: str = "") -> Estimate:
    if getattr(info, "macs_partial", False):
        refuse_unknown_cost(info, name or info.path)
    notes: list[str] = []
    if precision is None:
        precision = default_precision(info, profile)
        est = profile.estimate
        if profile.kind == "gpu" and precision == "int8" and "coef_int8" not in est and "coef_fp16" in est:
            precision = "fp16"
            notes.append("no published int8 latency for this target to fit: estimated at its fp16 cost (TensorRT "
                         "int8 is usually no slower than fp16, so read this as an upper bound)")
    check_threads(threads, profile)
    f = features(info)
    plan_d, lower = None, False
    if profile.kind == "edgetpu":
        if precision != "int8":
            raise EdgeMLError(f"target {profile.name} runs int8 only", hint="use `precision` int8")
        if not any(d in ("int8", "uint8") for d in info.weight_dtypes) and EDGETPU_OP not in (info.custom_ops or []):
            notes.append("the model is float: the estimate assumes it is quantized to int8 and compiled")
        f, plan_d, lower = edgetpu_features(info, profile, f, notes)
    row, fixed = design_row(f, profile, precision, threads)
    coef, basis = coefficients(profile, precision)
    parts = [c * x for c, x in zip(coef, row)]
    ms = sum(parts) + fixed
    floor = floor_ms(f, profile, f.tpu_layers if profile.kind == "edgetpu" else None)
    if profile.kind == "edgetpu":
        cpu_ms = fixed - floor
        breakdown = {"edgetpu_compute_ms": parts[0], "weight_streaming_ms": parts[1], "per_layer_ms": parts[2],
                     "floor_ms": floor, "cpu_fallback_ms": cpu_ms}
        cache = (profile.param_cache_mib or 8.0) * 2**20
        if plan_d is None:
            notes.append(f"weights {f.params / 2**20:.1f} MiB int8 {'fit' if f.params <= cache else 'do not fit'} the "
                         f"~{cache / 2**20:.0f} MiB parameter cache ({profile.link or 'link'})")
    else:
        breakdown = {"dense_ms": parts[0], "depthwise_ms": parts[1], "per_layer_ms": parts[2], "floor_ms": floor}
    if profile.overhead.get("source"):
        notes.append(f"floor {floor:.3f} ms = runtime overheads ({profile.overhead['source']})")
    total_macs = max(1, f.dense_macs + f.dw_macs)
    extrapolated = total_macs < FIT_SMALLEST_MACS / 4 or lower
    if total_macs < FIT_SMALLEST_MACS / 4:
        notes.append(f"under {FIT_SMALLEST_MACS / 4e6:.0f} M MACs, far smaller than every published model the "
                     f"coefficients were fitted on ({FIT_SMALLEST_MACS / 1e6:.0f} M - 15.5 G MACs): the compute part "
                     "is extrapolated; the floor it rests on is the runtime's published/measured overhead")
    compute_ms = max(0.0, ms - floor - breakdown.get("weight_streaming_ms", 0.0))
    ranked = sorted(f.ops, key=lambda o: -o[2])[:top]
    top_ops = [{"name": n, "op": op, "macs": m, "share": m / total_macs,
                "ms": compute_ms * m / total_macs} for n, op, m in ranked if m]
    power = profile.load_w
    return Estimate(model=name or info.path, target=profile.name, precision=precision,
                    threads=threads or (profile.cores if profile.kind == "cpu" else None), ms=ms,
                    energy_mj=ms * power if power else None, power_w=power,
                    basis=f"estimate from profile {profile.name}: {basis}", breakdown=breakdown, top_ops=top_ops,
                    notes=notes, extrapolated=extrapolated, floor_ms=floor, lower_bound=lower,
                    plan=None if plan_d is None else {k: plan_d[k] for k in (
                        "ops_on_edgetpu", "ops_on_cpu", "cpu_ops", "cached_weight_bytes", "streamed_weight_bytes",
                        "compiled")})
