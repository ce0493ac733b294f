"""Report plots as inline SVG (matplotlib, the optional `report` extra): latency per variant and target,
accuracy vs size and vs latency (Pareto front), latency distribution per measured model.

Readable with 2-20 variants: every variant has a number (its row in the report's variants table, ``#``);
scatter plots mark each variant with its number, placed by :func:`place_labels` so that no two labels
overlap each other or a marker, and list ``number name`` in a key beside the plot. Axes are padded so no
marker sits on the frame; accuracy axes never leave 0-100 %.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

from edgeml._units import format_ms

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


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


def _hits(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(points: list[tuple[float, float]], sizes: list[tuple[float, float]], bounds: Box,
                 marker: float = 4.0, step: float | None = None, rings: int = 12) -> list[tuple[float, float]]:
    """Label centres (display pixels) for labels of ``sizes`` (w, h) beside ``points``, greedily: each label
    takes the first of 8 directions x growing distances whose box hits no placed label, no marker
    (radius ``marker``) and stays inside ``bounds``; when none is free, the least-overlapping one."""
    step = step or max(h for _, h in sizes) * 0.9 if sizes else 1.0
    markers = [(x - marker, y - marker, x + marker, y + marker) for x, y in points]
    dirs = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
    placed: list[Box] = []
    out = []
    for (px, py), (w, h) in zip(points, sizes):
        best, best_cost = None, math.inf
        for ring in range(rings):
            gap = 1 + ring * step * 0.6  # between the marker and the label's nearest edge
            for dx, dy in dirs:
                cx = px + dx * (marker + gap + w / 2)
                cy = py + dy * (marker + gap + h / 2)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                inside = bounds[0] <= box[0] and box[2] <= bounds[2] and bounds[1] <= box[1] and box[3] <= bounds[3]
                cost = sum(_hits(box, b) for b in placed) + sum(_hits(box, m) for m in markers) + (not inside) * 0.5
                if cost < best_cost:
                    best, best_cost = (cx, cy, box), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        assert best is not None
        out.append((best[0], best[1]))
        placed.append(best[2])
    return out


def _pad(lo: float, hi: float, frac: float = 0.1, floor: float | None = None) -> tuple[float, float]:
    span = hi - lo
    pad = span * frac if span > 0 else max(abs(hi) * 0.2, 1e-9)
    lo, hi = lo - pad, hi + pad
    return (max(lo, floor) if floor is not None else lo), hi


def _acc_limits(values: list[float]) -> tuple[float, float]:
    """Accuracy axis in %: padded, at least 1 point tall, never below 0 or above 100."""
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.12, 0.5)
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
    if hi - lo < 1.0:
        lo, hi = (max(0.0, hi - 1.0), hi) if hi >= 100.0 else (lo, min(100.0, lo + 1.0))
    return lo, hi


def _x_axis(ax: Any, values: list[float], is_ms: bool) -> None:
    """Linear axis with padding, log when the values span more than 10x; ms axes labelled in µs/ms/s."""
    from matplotlib import ticker

    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > 10:
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.35, hi * 1.35)
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.set_xlim(*_pad(lo, hi, 0.1, floor=0.0))
        ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    if is_ms:
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: format_ms(v)))
    elif ax.get_xscale() == "log":
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))


def _colors(n: int) -> list[tuple[float, ...]]:
    """n distinct colours: tab10, or for more, tab20's dark shades first, then its light ones."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](k) for k in range(n)]
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [colormaps["tab20"](order[k % 20]) for k in range(n)]


def _marker(name: str) -> str:
    return "o" if name.endswith(".tflite") else "s" if name.endswith(".onnx") else "D"


def _scatter(plt: Any, items: list[tuple[int, str, float, float]], xlabel: str, title: str, is_ms: bool,
             pareto: bool = False) -> Any:
    """items: (number, name, x, accuracy %). Numbered markers, labels placed apart, key on the right."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(4.4, 3.3) if len(items) <= 8 else (5.6, 4.2))  # room to spread labels
    xs, ys = [i[2] for i in items], [i[3] for i in items]
    _x_axis(ax, xs, is_ms)
    ax.set_ylim(*_acc_limits(ys))
    colors = _colors(len(items))
    for (n, name, x, y), c in zip(items, colors):
        ax.scatter([x], [y], s=22, color=c, marker=_marker(name), zorder=3, clip_on=False)
    if pareto:
        front = _pareto(list(zip(xs, ys)))
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="grey", lw=1, zorder=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.25)
    fig.canvas.draw()  # final axes position: the display coordinates below are the saved ones
    to_px = ax.transData.transform
    pts = [tuple(to_px((x, y))) for _, _, x, y in items]
    fs = 7.5
    px_per_pt = fig.dpi / 72
    sizes = [((len(str(n)) * 0.62 * fs + 3) * px_per_pt, (fs * 1.25) * px_per_pt) for n, *_ in items]
    bb = ax.get_window_extent()
    centres = place_labels(pts, sizes, (bb.x0, bb.y0, bb.x1, bb.y1), marker=4 * px_per_pt)
    for (n, _, x, y), (cx, cy), (px, py), c in zip(items, centres, pts, colors):
        dark = tuple(0.6 * ch for ch in c[:3])  # light palette colours are too pale for text
        ax.annotate(str(n), (x, y), xytext=((cx - px) / px_per_pt, (cy - py) / px_per_pt),
                    textcoords="offset points", ha="center", va="center", fontsize=fs, color=dark,
                    fontweight="bold", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": dark, "lw": 0.5, "shrinkA": 1, "shrinkB": 3})
    handles = [Line2D([], [], ls="", marker=_marker(name), color=c, ms=5, label=f"{n}  {name}")
               for (n, name, _, _), c in zip(items, colors)]
    if pareto:
        handles.append(Line2D([], [], ls="--", color="grey", lw=1, label="Pareto front"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
              handletextpad=0.3, borderaxespad=0, ncol=1 if len(handles) <= 14 else 2, columnspacing=0.8)
    return fig


def svgs(report: Any) -> tuple[list[str], str | None]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
        from matplotlib.lines import Line2D
    except ImportError:
        return [], "plots need matplotlib: pip install 'edgeml-toolchain[report]'"
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    out = []
    number = {v.name: k + 1 for k, v in enumerate(report.variants)}

    # latency of every variant on every target: one row per variant, one marker per target
    rows = [v for v in report.variants if v.costs]
    if rows:
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.24 * len(rows)))
        all_ms = [c.ms for v in rows for c in v.costs.values() if c.ms > 0]
        for k, t in enumerate(report.targets):
            for i, v in enumerate(rows):
                c = v.costs.get(t)
                if c is None or c.ms <= 0:
                    continue
                est = c.kind == "estimated"
                ax.plot([c.ms], [i], marker="os^Dv"[k % 5], ms=6, color=f"C{k % 10}", ls="",
                        markerfacecolor="white" if est else f"C{k % 10}", zorder=3, clip_on=False)
        ax.set_yticks(range(len(rows)), [f"{number[v.name]}  {v.name}" for v in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        if all_ms:
            _x_axis(ax, all_ms, is_ms=True)
        ax.grid(axis="x", alpha=0.25)
        ax.set_xlabel("latency per inference" + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.set_title("Latency per variant and target")
        handles = [Line2D([], [], ls="", marker="os^Dv"[k % 5], color=f"C{k % 10}", ms=6, label=t)
                   for k, t in enumerate(report.targets)]
        handles.append(Line2D([], [], ls="", marker="o", color="grey", markerfacecolor="white", ms=6,
                              label="hollow = estimated"))
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                  borderaxespad=0)
        out.append(_svg(fig))

    acc = [v for v in report.variants if v.accuracy is not None]
    sizes = [v.size_bytes for v in acc if v.size_bytes]
    unit, scale = ("MiB", 1024 ** 2) if sizes and max(sizes) >= 2 * 1024 ** 2 else ("KiB", 1024)
    sized = [(number[v.name], v.name, v.size_bytes / scale, v.accuracy * 100) for v in acc if v.size_bytes]
    if sized:
        out.append(_svg(_scatter(plt, sized, f"size ({unit})", "Accuracy vs size", is_ms=False)))
    target = next((t for t in report.targets if any(t in v.costs for v in acc)), None)
    if target:
        kind = next(v.costs[target].kind for v in acc if target in v.costs)
        timed = [(number[v.name], v.name, v.costs[target].ms, v.accuracy * 100) for v in acc
                 if target in v.costs and v.costs[target].ms > 0]
        if timed:
            out.append(_svg(_scatter(plt, timed, f"latency on {target} ({kind})", "Accuracy vs latency", is_ms=True,
                                     pareto=True)))
    measured = [(v.name, c) for v in report.variants for c in v.costs.values() if c.stats]
    if measured:
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.26 * len(measured)))
        for i, (name, c) in enumerate(measured):
            s = c.stats
            ax.plot([s["min"], s["max"]], [i, i], color="grey", lw=1)
            ax.plot([s["p50"], s["p90"]], [i, i], color="C0", lw=6, solid_capstyle="butt")
            ax.plot([s["p99"]], [i], "|", color="C3", ms=12)
        ax.set_yticks(range(len(measured)), [f"{number[n]}  {n} @ {c.target}" for n, c in measured])
        ax.set_ylim(len(measured) - 0.5, -0.5)
        _x_axis(ax, [x for _, c in measured for x in (c.stats["min"], c.stats["max"]) if x > 0] or [1.0], True)
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(axis="x", alpha=0.25)
        ax.set_xlabel("latency: line min..max, bar p50..p90, tick p99")
        ax.set_title("Latency distribution (measured)")
        out.append(_svg(fig))
    return out, None
