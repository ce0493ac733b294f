"""Which variant of a run is the best one to deploy (what ``edgeml optimize`` headlines and gates).

The rule, in order:

1. it meets every budget (size, latency on the first target, accuracy), as far as the run's own bench
   results show (``edgeml check`` then re-measures the chosen one); when none does, the one that blows the
   fewest budgets;
2. the lowest latency on the first target; two measured latencies whose 95 % confidence intervals of the
   median overlap are a tie (the measurement cannot tell them apart);
3. on a tie, the smaller file.

Variants without a latency on the first target cannot be ranked and are listed last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RULE = ("meets the budgets, then lowest latency on the first target (overlapping 95 % confidence intervals "
        "of the median are a tie), then the smaller file")


@dataclass
class Ranked:
    name: str
    latency_ms: float | None
    kind: str | None  # measured | estimated | ...
    size_bytes: int | None
    accuracy: float | None
    budgets: dict[str, bool | None] = field(default_factory=dict)  # budget -> met (None: not known)
    ci95: tuple[float, float] | None = None

    @property
    def blown(self) -> int:
        """Budgets not shown to be met (failed or unknown)."""
        return sum(v is not True for v in self.budgets.values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "latency_ms": self.latency_ms, "kind": self.kind, "size_bytes": self.size_bytes,
                "accuracy": self.accuracy, "budgets": self.budgets}


@dataclass
class Ranking:
    target: str
    rows: list[Ranked]  # best first, then by budgets blown and latency
    best: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "best": self.best, "rule": RULE, "variants": [r.to_dict() for r in self.rows]}


def _budget_status(v: Any, cost: Any, budget: dict[str, Any], baseline_acc: float | None) -> dict[str, bool | None]:
    from edgeml.check import parse_size

    out: dict[str, bool | None] = {}
    if budget.get("max_size") is not None:
        out["max_size"] = None if v.size_bytes is None else v.size_bytes <= parse_size(budget["max_size"])
    if budget.get("max_latency_ms") is not None:
        pct = budget.get("percentile", "p50")
        if cost is None:
            ms = None
        elif cost.stats and pct in cost.stats:
            ms = cost.stats[pct]
        else:
            ms = cost.ms if pct == "p50" or cost.kind == "estimated" else None
        out["max_latency_ms"] = None if ms is None else ms <= float(budget["max_latency_ms"])
    if budget.get("min_accuracy") is not None:
        out["min_accuracy"] = None if v.accuracy is None else v.accuracy >= float(budget["min_accuracy"])
    if budget.get("max_accuracy_drop") is not None:
        ok = None
        if v.accuracy is not None and baseline_acc is not None:
            ok = baseline_acc - v.accuracy <= float(budget["max_accuracy_drop"])
        out["max_accuracy_drop"] = ok
    return out


def _overlap(a: Ranked, b: Ranked) -> bool:
    if a.latency_ms == b.latency_ms:
        return True
    if a.ci95 is None or b.ci95 is None:
        return False
    return a.ci95[0] <= b.ci95[1] and b.ci95[0] <= a.ci95[1]


def rank_variants(report: Any, budget: dict[str, Any] | None = None, target: str | None = None) -> Ranking:
    """Rank ``report``'s variants by :data:`RULE` on ``target`` (default: the report's first target)."""
    budget = budget or {}
    target = target or (report.targets[0] if report.targets else "host")
    by_name = {v.name: v for v in report.variants}
    rows = []
    for v in report.variants:
        c = v.costs.get(target)
        base = by_name.get("fp32" + Path(v.name).suffix)
        rows.append(Ranked(v.name, c.ms if c else None, c.label if c else None, v.size_bytes, v.accuracy,
                           _budget_status(v, c, budget, base.accuracy if base else None),
                           tuple(c.ci95) if c is not None and c.ci95 else None))
    inf = float("inf")
    rows.sort(key=lambda r: (r.latency_ms is None, r.blown, r.latency_ms if r.latency_ms is not None else inf,
                             r.size_bytes or inf, r.name))
    best = None
    if rows and rows[0].latency_ms is not None:
        group = [r for r in rows if r.latency_ms is not None and r.blown == rows[0].blown]
        fastest = group[0]
        tied = [r for r in group if _overlap(r, fastest)]
        chosen = min(tied, key=lambda r: (r.size_bytes or inf, r.latency_ms, r.name))
        best = chosen.name
        rows.remove(chosen)
        rows.insert(0, chosen)
    return Ranking(target=target, rows=rows, best=best)
