"""Pareto front of search variants on one target: higher top-1, lower latency, smaller file.

A variant is on the front when no other variant is at least as good on all three axes and strictly better
on one. Latencies are a measured median or an estimate, as the target has them; two measured medians whose
95 % confidence intervals overlap are equal (the measurement cannot order them -- the rule of
``edgeml.report.rank``). Variants missing an axis are left out by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    name: str
    accuracy: float | None  # None: no eval data -> the front is latency x size only
    ms: float
    size: int
    ci95: tuple[float, float] | None = None  # of a measured median


def _same_ms(a: Point, b: Point) -> bool:
    if a.ms == b.ms:
        return True
    return a.ci95 is not None and b.ci95 is not None and a.ci95[0] <= b.ci95[1] and b.ci95[0] <= a.ci95[1]


def dominates(a: Point, b: Point) -> bool:
    acc_a = a.accuracy if a.accuracy is not None else 0.0
    acc_b = b.accuracy if b.accuracy is not None else 0.0
    same = _same_ms(a, b)
    ge = acc_a >= acc_b and (same or a.ms < b.ms) and a.size <= b.size
    gt = acc_a > acc_b or (not same and a.ms < b.ms) or a.size < b.size
    return ge and gt


def front(points: list[Point]) -> list[Point]:
    """The non-dominated points, fastest first (ties: smaller, then by name)."""
    keep = [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
    return sorted(keep, key=lambda p: (p.ms, p.size, p.name))


def first_complete(order: list[str], front_names: set[str]) -> int | None:
    """How many trials of ``order`` (as run) it took until every front member had been built."""
    missing = set(front_names)
    if not missing:
        return None
    for k, name in enumerate(order, 1):
        missing.discard(name)
        if not missing:
            return k
    return None
