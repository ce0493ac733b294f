"""Report plots as inline SVG (matplotlib, the optional `report` extra): latency per target, accuracy vs
size and vs latency (Pareto front), latency distribution per measured model."""

from __future__ import annotations

import io
import re
from typing import Any


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both axes (lower x, higher y)."""
    front, best = [], -1.0
    for x, y in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    return front


def svgs(report: Any) -> tuple[list[str], str | None]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots need matplotlib: pip install 'edgeml[report]'"
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    out = []
    names = [v.name for v in report.variants]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    width = 0.8 / max(1, len(report.variants))
    for i, v in enumerate(report.variants):
        xs = [j + i * width for j, t in enumerate(report.targets) if t in v.costs]
        ys = [v.costs[t].ms for t in report.targets if t in v.costs]
        hatch = ["//" if v.costs[t].kind == "estimated" else "" for t in report.targets if t in v.costs]
        bars = ax.bar(xs, ys, width, label=v.name)
        for b, h in zip(bars, hatch):
            b.set_hatch(h)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(report.targets))], report.targets)
    ax.set_yscale("log")
    ax.set_ylabel("latency per inference (ms, log)")
    ax.set_title("Latency per target (hatched = estimated)")
    ax.legend(fontsize=7)
    out.append(_svg(fig))
    acc = [v for v in report.variants if v.accuracy is not None]
    if acc:
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        for v in acc:
            if v.size_bytes:
                ax.scatter(v.size_bytes / 1024, v.accuracy * 100)
                ax.annotate(v.name, (v.size_bytes / 1024, v.accuracy * 100), fontsize=7)
        ax.set_xlabel("size (KiB)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title("Accuracy vs size")
        out.append(_svg(fig))
        target = next((t for t in report.targets if any(t in v.costs for v in acc)), None)
        if target:
            fig, ax = plt.subplots(figsize=(4.2, 3.2))
            pts = [(v.costs[target].ms, v.accuracy * 100) for v in acc if target in v.costs]
            for v in acc:
                if target in v.costs:
                    ax.scatter(v.costs[target].ms, v.accuracy * 100)
                    ax.annotate(v.name, (v.costs[target].ms, v.accuracy * 100), fontsize=7)
            front = _pareto(pts)
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="grey", label="Pareto front")
            ax.set_xlabel(f"latency on {target} (ms)")
            ax.set_ylabel("top-1 (%)")
            ax.set_title("Accuracy vs latency")
            ax.legend(fontsize=7)
            out.append(_svg(fig))
    measured = [(v.name, c) for v in report.variants for c in v.costs.values() if c.stats]
    if measured:
        fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(measured)))
        for i, (name, c) in enumerate(measured):
            s = c.stats
            ax.plot([s["min"], s["max"]], [i, i], color="grey", lw=1)
            ax.plot([s["p50"], s["p90"]], [i, i], color="C0", lw=6, solid_capstyle="butt")
            ax.plot([s["p99"]], [i], "|", color="C3", ms=12)
        ax.set_yticks(range(len(measured)), [f"{n} @ {c.target}" for n, c in measured])
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log): line min..max, bar p50..p90, tick p99")
        ax.set_title("Latency distribution (measured)")
        out.append(_svg(fig))
    return out, None
