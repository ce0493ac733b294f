"""quantize's accuracy-budget steps: load the --eval data early, run the search (``budget.search``) on the
builders the quantizer left (``fallback``), say why a budget cannot be met, time the models
(``speed.compare_speed``), and the summary / report lines for all of it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeml.errors import EdgeMLError

if TYPE_CHECKING:
    from edgeml.quantize.result import QuantizeResult


def load_eval(budget: Any, eval_spec: Any, inputs: list) -> Any:
    """The --eval data for a budget, loaded before any quantization: no labels for an accuracy budget is a
    usage error (exit 2) naming --min-fidelity."""
    from edgeml.bench.accuracy import float_inputs
    from edgeml.calibration import load_dataset
    from edgeml.quantize.budget import no_labels_error

    ds = load_dataset(eval_spec, inputs=float_inputs(inputs))
    if budget.kind == "accuracy" and not ds.has_labels:
        raise no_labels_error(ds.spec.origin or ds.spec.source)
    return ds


def run(budget: Any, float_path: Path, plain: Path, layers: list, ctx: dict[str, Any], ds: Any, eval_ds: Any,
        eval_spec: Any, fmt: str, mode: str, profile: Any, say) -> tuple[dict[str, Any], Path]:
    """Measure the plain model against the budget and fall back layers until it holds (see budget.search)."""
    from edgeml.quantize import budget as qb

    if eval_ds is not None:
        feeds = [eval_ds.sample(j).batch1() for j in range(len(eval_ds))]
        where = f"{len(eval_ds)} samples of `eval` {eval_ds.spec.origin or eval_ds.spec.source}"
    else:
        n = min(qb.FIDELITY_SAMPLES, len(ds))
        feeds = [ds.sample(j).batch1() for j in range(n)]
        where = f"the first {n} calibration samples (in-sample: pass `eval` for held-out data)"
    say(f"budget {budget.describe()}: measuring on {where}")
    scorer = qb.Scorer(budget, float_path, feeds if budget.kind == "fidelity" else None, eval_ds, where)
    allow = not profile.full_int8 and "make" in ctx

    def make():
        if "make" not in ctx:  # no per-layer builder here: measure nothing more, say why
            from edgeml.quantize.fallback import Builder

            return Builder(lambda keys: plain, {}, {})
        return ctx["make"]()

    if not layers:  # the per-layer report failed on this graph: rank without SQNR
        from edgeml.quantize.fallback import plain_rows

        layers = plain_rows(plain, fmt)
    res = qb.search(budget, scorer, layers, make, plain=plain, allow_fallback=allow, scheme=ctx.get("scheme", "float"),
                    say=say)
    if profile.full_int8 and not res.met:
        res.decisions.append(f"target {profile.name} runs full-int8 models only: fallback is not allowed; "
                             "quantization-aware training is the remedy")
    elif not res.met and ctx.get("why_no_fallback"):
        res.decisions.append(f"no fallback: {ctx['why_no_fallback']}")
    info = res.to_dict()
    info["layers_in_float"] = res.nodes
    info["target"] = profile.name
    info["why_no_fallback"] = ("target runs full-int8 models only" if profile.full_int8
                               else ctx.get("why_no_fallback"))
    return info, (res.path or plain)


def budget_error(info: dict[str, Any], path: Path | str, fmt: str, *, written: bool) -> EdgeMLError:
    """BudgetNotMet for a search that did not meet its budget: the best reached and the layers responsible."""
    from edgeml.errors import BudgetNotMet

    reached = budget_value(info, info["reached"])
    who = ", ".join(info["responsible"][:5]) or "none identified"
    where = "the best reached was written (`keep_best`)" if written else "nothing was written"
    if info.get("why_no_fallback") and "full-int8" in info["why_no_fallback"]:
        return BudgetNotMet(f"{path}: int8 misses the budget ({info['budget']}): {reached} on {info['data']}; "
                            f"target {info['target']} runs full-int8 models only, so no layer may stay float; "
                            f"layers that break it: {who}; {where}",
                            hint="train with quantization in the loop (quantization-aware training) so that these "
                                 "layers learn int8-friendly ranges: `edgeml.quantize(\"MODEL.keras\", method=\"qat\", "
                                 "train=SPEC, epochs=N)`; or pick a target that allows float fallback")
    tried = f"{len(info['fallback'])} layer(s) in {info['fallback_scheme']}" if info["fallback"] else "no fallback"
    hint = ("loosen the budget, try more representative `calib` data or `method=\"percentile\"`/entropy (ONNX), or "
            "quantization-aware training; `keep_best=True` writes the best reached (still exit 1)")
    if info.get("why_no_fallback"):
        hint = f"{info['why_no_fallback']}; or {hint}"
    return BudgetNotMet(f"{path}: the budget ({info['budget']}) cannot be met: best reached {reached} with {tried} "
                        f"on {info['data']} after {info['evaluations']} model evaluations; layers responsible "
                        f"(worst first): {who}; {where}", hint=hint)


def budget_value(info: dict[str, Any], s: dict[str, Any]) -> str:
    if info["kind"] == "accuracy":
        return f"top-1 drop {100 * s['value']:.2f} pt"
    per = s.get("per_output") or {}
    worst = f" (output {min(per, key=lambda n: per[n])!r}, worst of {len(per)})" if len(per) > 1 else \
        (f" (output {next(iter(per))!r})" if per else "")
    return f"cosine {s['value']:.{info.get('places', 5)}f}{worst}"


def budget_unmet_error(r: QuantizeResult) -> EdgeMLError | None:
    """The BudgetNotMet for a result kept with ``keep_best`` whose budget was not met, else None."""
    if not r.budget or r.budget["met"]:
        return None
    return budget_error(r.budget, r.source, r.format, written=True)


def time_models(float_path: Path, quant: Path, plain: Path | None, ds: Any, eval_ds: Any, mode: str, seconds: float,
           say, input_shapes: Any, warnings: list[str]) -> dict[str, Any] | None:
    from edgeml.quantize.speed import compare_speed

    data = ds if ds is not None else eval_ds
    if data is None:  # dynamic/float16 without data: nothing to feed (a made-up input would time another path)
        warnings.append(f"speed not measured: `mode` {mode} was given no data to feed; pass `calib` or `eval` "
                        "to time float and quantized side by side")
        return None
    feed = data.sample(0).batch1()
    models = {"float": float_path, mode: quant}
    if plain is not None:
        models["plain"] = plain
    say(f"timing {' vs '.join(models)} on this host (interleaved, <= {seconds:g} s)")
    try:
        return compare_speed(models, feed, seconds=seconds)
    except Exception as exc:  # a model that runs in the comparison but not timed alone: say so, claim nothing
        warnings.append(f"speed not measured: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        return None


def budget_lines(r: QuantizeResult) -> list[str]:
    """The budget's outcome, its price and the measured speed (empty without a budget or timing)."""
    from edgeml.formats.common import human_bytes

    lines = []
    b = r.budget
    if b:
        plain, reached = budget_value(b, b["plain"]), budget_value(b, b["reached"])
        outcome = "MET" if b["met"] else "NOT MET"
        kept = b.get("layers_in_float") or b["fallback"]
        how = (f"{len(kept)} layer(s) in {b['fallback_scheme']} around {len(b['fallback'])} tensor(s): "
               f"{', '.join(kept[:6])}" + (" ..." if len(kept) > 6 else "")) if b["fallback"] else "no fallback"
        lines.append(f"budget    {b['budget']}: {outcome}; plain {plain} -> {reached} with {how} "
                     f"({b['evaluations']} model evaluations, {b['seconds']:.1f} s; on {b['data']})")
        if b["fallback"] and b.get("plain_size_bytes"):
            price = (f"price     size {human_bytes(b['plain_size_bytes'])} plain int8 -> "
                     f"{human_bytes(b['size_bytes'])}")
            lat = b.get("latency_p50_ms")
            price += (f"; p50 {lat['plain']:.3g} -> {lat['budgeted']:.3g} ms on this host" if lat
                      else "; latency not measured (`speed_seconds=0`)")
            lines.append(price)
    if r.speed:
        from edgeml.quantize.speed import verdict

        line, _ = verdict(r.speed, r.format, r.mode)
        lines.append(line)
    return lines


def speed_advice(r: QuantizeResult) -> str | None:
    if not r.speed:
        return None
    from edgeml.quantize.speed import verdict

    return verdict(r.speed, r.format, r.mode)[1]


def budget_markdown(b: dict[str, Any] | None) -> list[str]:
    """The --report (.md) section: the ranking table and every decision of the search."""
    lines: list[str] = []
    if b:
        lines += ["", f"## Accuracy budget: {b['budget']} ({'met' if b['met'] else 'NOT met'})", "",
                  f"Measured on {b['data']}; {b['evaluations']} model evaluations, {b['seconds']:.1f} s.", ""]
        if b["ranking"]:
            lines += ["| rank | layer | op | SQNR dB (plain) | measured gain alone | fell back |",
                      "|---:|---|---|---:|---:|---|"]
            gain = (lambda g: "-" if g is None else f"{round(100 * g, 6) + 0.0:+.2f} pt") \
                if b["kind"] == "accuracy" else \
                (lambda g: "-" if g is None else f"{round(g, 9) + 0.0:+.5f}")
            for k, x in enumerate(b["ranking"][:30], 1):
                db = "n/a" if math.isnan(x["sqnr_db"]) else f"{x['sqnr_db']:.1f}"
                lines.append(f"| {k} | `{x['tensor']}` | {x['op']} | {db} | {gain(x['gain'])} | "
                             f"{'yes' if x['key'] in b['fallback'] else ''} |")
            lines.append("")
        lines += ["Decisions:", ""] + [f"{k}. {d}" for k, d in enumerate(b["decisions"], 1)]
    return lines


__all__ = ["budget_error", "budget_lines", "budget_markdown", "budget_unmet_error", "load_eval", "run", "speed_advice",
           "time_models"]
