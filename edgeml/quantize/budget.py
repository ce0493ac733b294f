"""Accuracy budgets for quantize: measure, rank layers, fall the worst back until the budget holds.

Two budgets, one per kind of data:

- ``max_accuracy_drop`` D: absolute top-1 drop (float top-1 minus quantized top-1, as a fraction: 0.01 is one
  point) on labelled ``eval`` data. Needs labels; without them it is a usage error naming ``min_fidelity``.
- ``min_fidelity`` C: for every output of the model, the cosine similarity between the float and the quantized
  output over all samples (each output's values on every sample as one vector, as quantize's own comparison
  computes it; a per-sample mean would say nothing for a one-value output such as a sigmoid score, whose
  per-sample cosine is only its sign). The budget holds when the *worst* output's cosine is >= C. Outputs that
  are zero on every sample are skipped. Samples: the ``eval`` data when given (labels not needed), else the first
  ``FIDELITY_SAMPLES`` calibration samples (in-sample: said in the result).

The search (``search``), given a ``build(excluded) -> Path`` that quantizes with the named layers left out
(kept float, or int16 activations where that is the fallback), is:

1. plain quantization (nothing excluded): done when the budget holds;
2. sensitivity: the per-layer SQNR report ranks the layers (worst first, the cheap signal); the worst
   ``PROBE`` of them are each left out alone and measured (the gain in the metric from that one layer);
   the ranking is measured gain first, then SQNR for the layers not probed;
3. greedy: add layers in ranking order (one at a time for the probed ones, then in doubling chunks) and
   re-measure until the budget holds;
4. minimise: try re-quantizing the chosen layers in chunks (halves, then quarters, ... then one by one, last
   added first); a chunk goes back to int8 when the budget still holds without it. When the search ends within
   ``max_evals`` the result is 1-minimal: no single fallen-back layer can be re-quantized.

When the per-layer SQNR report is unavailable (the every-tensor run fails on some graphs), the units are the
plain model's quantized activations in reverse graph order (the output side first), and the decisions say so.

Every model evaluation is counted; the search stops at ``max_evals`` with the best reached. Full-int8 targets
(Coral) allow no fallback: the search stops after step 2 and names the layers that break the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import BudgetError, BudgetNotMet, EdgeMLError

FIDELITY_SAMPLES = 64
PROBE = 8
MAX_EVALS = 60


@dataclass
class Budget:
    max_accuracy_drop: float | None = None
    min_fidelity: float | None = None
    keep_best: bool = False
    max_evals: int = MAX_EVALS

    @property
    def active(self) -> bool:
        return self.max_accuracy_drop is not None or self.min_fidelity is not None

    @property
    def kind(self) -> str:
        return "accuracy" if self.max_accuracy_drop is not None else "fidelity"

    def describe(self) -> str:
        if self.max_accuracy_drop is not None:
            return f"top-1 drop <= {100 * self.max_accuracy_drop:.2f} pt"
        return f"output cosine >= {self.min_fidelity!r} (worst output)"  # as given: 0.9999999 is not "1"

    def check_options(self, *, eval_spec: Any, mode: str) -> None:
        """Usage errors (exit 2) that need no data loaded."""
        if self.max_accuracy_drop is not None and self.min_fidelity is not None:
            raise BudgetError("`max_accuracy_drop` and `min_fidelity`: give one budget",
                              hint="`max_accuracy_drop` with labelled `eval` data, or `min_fidelity` without labels")
        d, c = self.max_accuracy_drop, self.min_fidelity
        if d is not None and not (isinstance(d, (int, float)) and math.isfinite(d) and 0 <= d < 1):
            raise BudgetError(f"`max_accuracy_drop` {d}: a top-1 drop as a fraction in [0, 1)",
                              hint="e.g. `max_accuracy_drop` 0.01 for one point")
        if c is not None and not (isinstance(c, (int, float)) and math.isfinite(c) and -1 <= c <= 1):
            raise BudgetError(f"`min_fidelity` {c}: a cosine similarity in [-1, 1]",
                              hint="e.g. `min_fidelity` 0.99")
        if d is not None and eval_spec is None:
            raise BudgetError("`max_accuracy_drop` needs labelled data to measure top-1: pass `eval` SPEC",
                              hint="without labels, budget the output fidelity instead: `min_fidelity` 0.99")
        if mode not in ("int8", "int16x8"):
            raise BudgetError(f"`mode` {mode}: accuracy budgets apply to calibrated int8/int16x8 quantization",
                              hint="drop the budget, or use `mode` int8")
        if self.max_evals < 1:
            raise BudgetError("max_evals must be >= 1")


def no_labels_error(origin: str) -> BudgetError:
    return BudgetError(f"`max_accuracy_drop` needs labelled data, but '{origin}' has no labels",
                       hint="use labelled `eval` data (an .npz with 'y', class subfolders), or budget the output "
                            "fidelity instead: `min_fidelity` 0.99")


class Scorer:
    """Measures one candidate model against the budget; the float side is computed once."""

    def __init__(self, budget: Budget, float_path: Path, feeds: list[dict[str, np.ndarray]] | None,
                 eval_ds: Any, data: str):
        self.budget, self.data, self.evaluations = budget, data, 0
        self.eval_ds, self.feeds = eval_ds, feeds
        from edgeml.runtimes.session import open_session

        ref = open_session(float_path)
        if budget.kind == "accuracy":
            from edgeml.bench.accuracy import evaluate

            self.float_top1 = evaluate(ref, eval_ds)["top1"]
        else:
            assert feeds is not None, "a fidelity budget needs its samples"
            self.runner_float = RealSession(ref)
            self.reference = [self.runner_float.run(f) for f in feeds]
            self.output_names = self.runner_float.outputs
            usable = [any(np.any(r[k] != 0) for r in self.reference) for k in range(len(self.output_names))]
            if not any(usable):
                raise EdgeMLError(f"`min_fidelity`: every output of the float model is zero on {data}: cosine "
                                  "says nothing", hint="use other samples (`eval` SPEC), or `max_accuracy_drop`")

    def score(self, path: Path) -> dict[str, Any]:
        """{'value': metric, 'ok': budget holds, ...}; value is the drop (accuracy) or worst output cosine."""
        from edgeml.runtimes.session import open_session

        self.evaluations += 1
        test = open_session(path)
        if self.budget.kind == "accuracy":
            from edgeml.bench.accuracy import evaluate

            top1 = evaluate(test, self.eval_ds)["top1"]
            drop = self.float_top1 - top1
            limit = self.budget.max_accuracy_drop
            assert limit is not None
            return {"value": drop, "ok": bool(drop <= limit + 1e-12), "top1": top1}
        runner = RealSession(test)
        assert self.feeds is not None and self.budget.min_fidelity is not None
        k_out = len(self.output_names)
        dot, fa, qa = np.zeros(k_out), np.zeros(k_out), np.zeros(k_out)
        for feed, ref in zip(self.feeds, self.reference):
            for k, (a, b) in enumerate(zip(ref, runner.run(feed))):
                b = b.reshape(a.shape)
                dot[k] += float(a @ b)
                fa[k] += float(a @ a)
                qa[k] += float(b @ b)
        per = {n: (float(dot[k] / math.sqrt(fa[k] * qa[k])) if qa[k] > 0 else 0.0)
               for k, n in enumerate(self.output_names) if fa[k] > 0}
        worst = min(per.values())
        return {"value": float(worst), "ok": bool(worst >= self.budget.min_fidelity - 1e-12), "per_output": per}

    def better(self, a: dict[str, Any], b: dict[str, Any] | None) -> bool:
        """Is score ``a`` better than ``b``?"""
        if b is None:
            return True
        return a["value"] < b["value"] if self.budget.kind == "accuracy" else a["value"] > b["value"]

    def gain(self, base: dict[str, Any], new: dict[str, Any]) -> float:
        """How much ``new`` improves on ``base`` (positive = better)."""
        d = new["value"] - base["value"]
        return -d if self.budget.kind == "accuracy" else d


class RealSession:
    """Run a session on real-valued feeds; real-valued, flattened float64 outputs (IO (de)quantized as the
    model's own scales say)."""

    def __init__(self, session: Any):
        from edgeml.convert.ioquant import session_io

        self.session = session
        self.iq, self.oq = session_io(session)
        self.specs = {t.name: t for t in session.inputs}
        self.outputs = [t.name for t in session.outputs]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        from edgeml.convert.verify import to_domain, to_real

        names = list(self.specs)
        feed = dict(zip(names, feed.values())) if set(feed) != set(names) else feed
        x = {k: to_domain(v, self.specs[k], self.iq.get(k), "quantized") for k, v in feed.items()}
        out = self.session.run(x, raw=True)
        return [to_real(out[n], self.oq.get(n)).ravel() for n in self.outputs]


@dataclass
class Layer:
    """A unit of fallback: ``key`` is what the builder excludes (ONNX node name, TFLite tensor name)."""

    key: str
    tensor: str
    op: str
    sqnr_db: float
    gain: float | None = None  # measured improvement of the metric when this layer alone falls back


def cosine_places(threshold: float | None) -> int:
    """Decimals that show a cosine beside ``threshold``: 5, or one more than the threshold has (at most 9), so
    that a value missing a 0.9999999 budget is not printed as 1.00000."""
    if threshold is None:
        return 5
    text = repr(float(threshold))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 9
    return min(9, max(5, decimals + 1))


@dataclass
class SearchResult:
    budget: str
    kind: str
    data: str
    plain: dict[str, Any]
    reached: dict[str, Any]
    met: bool
    fallback: list[str]
    fallback_scheme: str
    ranking: list[Layer]
    decisions: list[str]
    evaluations: int
    seconds: float
    path: Path | None = None
    responsible: list[str] = field(default_factory=list)
    allowed: bool = True
    nodes: list[str] = field(default_factory=list)  # the layers computing in float (producers + consumers)
    places: int = 5  # decimals that show a cosine against this budget (cosine_places)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return d


def search(budget: Budget, scorer: Scorer, rows: list[Any], make_builder: Callable[[], Any],
           *, plain: Path, allow_fallback: bool, scheme: str, say: Callable[[str], None]) -> SearchResult:
    """See the module docstring. ``rows``: the plain model's per-layer SQNR report (worst first);
    ``make_builder()`` -> a ``fallback.Builder``, made only when plain quantization misses the budget:
    ``build(keys)`` writes a candidate with those units left out and returns its path (a new file each
    call), ``key_of(tensor)`` names the fallback unit of an SQNR row's tensor (None: none), ``nodes(keys)``
    the layers that computes in float.
    ``plain`` is the model quantized with nothing excluded."""
    t0 = time.perf_counter()
    decisions: list[str] = []
    layers: list[Layer] = []
    base = scorer.score(plain)
    decisions.append(f"plain quantization: {_fmt(scorer, base)} ({'meets' if base['ok'] else 'misses'} the budget)")

    builder: Any = None

    def result(met: bool, reached: dict, chosen: list[str], path: Path | None,
               responsible: list[str] | None = None) -> SearchResult:
        return SearchResult(nodes=builder.nodes(chosen) if builder is not None and chosen else [],
                            budget=budget.describe(), kind=budget.kind, data=scorer.data, plain=_clean(base),
                            reached=_clean(reached), met=met, fallback=list(chosen), fallback_scheme=scheme,
                            ranking=layers, decisions=decisions, evaluations=scorer.evaluations,
                            seconds=round(time.perf_counter() - t0, 3), path=path, responsible=list(responsible or []),
                            allowed=allow_fallback, places=cosine_places(budget.min_fidelity))

    if base["ok"]:
        return result(True, base, [], plain)
    say("plain quantization misses the budget: ranking layers")
    builder = make_builder()
    build = builder.build
    layers = layers_from_report(rows, builder.key_of)
    if not layers:
        decisions.append("no layer to fall back: the per-layer report found no quantized tensor to rank")
        return result(False, base, [], plain, [])
    # sensitivity: the cheap signal (SQNR, already sorted worst first) picks whom to probe
    probe = layers[:min(PROBE, len(layers))]
    say(f"sensitivity: leaving each of the {len(probe)} worst-SQNR layers in {scheme} alone")
    best, best_keys, best_path = base, [], plain
    for layer in probe:
        if scorer.evaluations >= budget.max_evals:
            break
        path = build([layer.key])
        s = scorer.score(path)
        layer.gain = scorer.gain(base, s)
        if allow_fallback and s["ok"] and (not best["ok"] or scorer.better(s, best)):
            best, best_keys, best_path = s, [layer.key], path
    ranked = sorted(probe, key=lambda x: -(x.gain if x.gain is not None else -math.inf)) + layers[len(probe):]
    layers[:] = ranked
    if rows and all(math.isnan(float(r.sqnr_db)) for r in rows):
        decisions.append("per-layer SQNR unavailable on this graph: layers probed in reverse graph order")
    decisions.append("ranking: " + ", ".join(f"{x.tensor} ({x.op}, SQNR {_db(x.sqnr_db)}"
                                             + (f", gain {_fmt_gain(scorer, x.gain)}" if x.gain is not None else "")
                                             + ")" for x in ranked[:PROBE]))
    responsible = [x.tensor for x in ranked if x.gain is not None and x.gain > 0][:5] or \
        [x.tensor for x in ranked[:3]]
    if not allow_fallback:
        decisions.append("the target runs full-int8 models only: no layer may fall back")
        return result(False, base, [], None, responsible)
    if best["ok"]:  # one layer was enough: the best single one
        decisions.append(f"one layer is enough: {best_keys[0]} -> {_fmt(scorer, best)}")
        return result(True, best, best_keys, best_path, responsible)
    # greedy: add in ranking order, one at a time over the probed layers, then doubling chunks
    chosen: list[str] = []
    i, step = 0, 1
    met = False
    while i < len(ranked) and scorer.evaluations < budget.max_evals:
        take = ranked[i:i + step]
        chosen += [x.key for x in take]
        i += len(take)
        if i > len(probe):
            step *= 2
        path = build(chosen)
        s = scorer.score(path)
        decisions.append(f"fall back {len(chosen)} layer(s) (+{', '.join(x.tensor for x in take)}): "
                         f"{_fmt(scorer, s)}")
        if scorer.better(s, best) or s["ok"]:
            best, best_keys, best_path = s, list(chosen), path
        if s["ok"]:
            met = True
            break
    if not met:
        decisions.append(f"budget not met with {len(chosen)} of {len(ranked)} layers in {scheme}"
                         + (f" (stopped at {budget.max_evals} evaluations)" if scorer.evaluations >= budget.max_evals
                            else ""))
        return result(False, best, best_keys, best_path, responsible)
    # minimise: drop what is not needed, in chunks (halves, quarters, ... single layers), last added first
    size = max(1, len(best_keys) // 2)
    while best_keys and scorer.evaluations < budget.max_evals:
        chunks = [best_keys[max(0, j - size):j] for j in range(len(best_keys), 0, -size)]
        for chunk in chunks:
            chunk = [k for k in chunk if k in best_keys]
            if not chunk or len(chunk) == len(best_keys) or scorer.evaluations >= budget.max_evals:
                continue
            trial = [k for k in best_keys if k not in chunk]
            path = build(trial)
            s = scorer.score(path)
            what = chunk[0] if len(chunk) == 1 else f"{len(chunk)} layers ({chunk[0]} ...)"
            if s["ok"]:
                decisions.append(f"re-quantize {what}: still meets the budget ({_fmt(scorer, s)}): kept int8")
                best, best_keys, best_path = s, trial, path
            else:
                decisions.append(f"re-quantize {what}: misses ({_fmt(scorer, s)}): stays in {scheme}")
        if size == 1:
            break
        size = max(1, size // 2)
    return result(True, best, best_keys, best_path, responsible)


def _db(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.1f} dB"


def _clean(s: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 9) if isinstance(v, float) else {n: round(x, 9) for n, x in v.items()}
                if isinstance(v, dict) else v) for k, v in s.items()}


def _fmt(scorer: Scorer, s: dict[str, Any]) -> str:
    if scorer.budget.kind == "accuracy":
        return f"top-1 {100 * s['top1']:.2f}% (drop {100 * s['value']:+.2f} pt)"
    return f"cosine {s['value']:.{cosine_places(scorer.budget.min_fidelity)}f}"


def _fmt_gain(scorer: Scorer, g: float) -> str:
    g = round(g, 9) + 0.0  # no "-0.00"
    return f"{100 * g:+.2f} pt" if scorer.budget.kind == "accuracy" else f"{g:+.5f}"


def layers_from_report(rows: list[Any], key_of: Callable[[str], str | None]) -> list[Layer]:
    """Fallback units from the per-layer SQNR rows (worst first): one per distinct key, finite SQNR first."""
    out: list[Layer] = []
    seen: set[str] = set()
    for r in rows:
        key = key_of(r.name)
        if key is None or key in seen:
            continue
        seen.add(key)
        out.append(Layer(key=key, tensor=r.name.split(";")[0], op=r.op, sqnr_db=float(r.sqnr_db)))
    return out


__all__ = ["Budget", "BudgetNotMet", "Layer", "Scorer", "SearchResult", "search"]
