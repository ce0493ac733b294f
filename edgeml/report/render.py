"""Render a Report as Markdown or one self-contained HTML file (inline CSS and SVG plots, no network)."""

from __future__ import annotations

import html as _html
from typing import Any

from edgeml._units import format_ms
from edgeml.formats.common import human_bytes, human_count


def _n(x: float | None) -> str:
    return "—" if not x else human_count(x).strip()


def _ms(x: float | None) -> str:
    return format_ms(x)


def _mj(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1000:.3g} µJ" if x < 0.1 else f"{x:.3g} mJ"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def asymmetry_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    header = ["target", "kind", "latency / inference", "FLOPs / inference", "energy / inference",
              "training = N inferences (FLOPs)", "(time)", "(energy)"]
    def at_least(r: dict, text: str, sign: str) -> str:  # a lower-bound latency bounds what follows from it
        return f"{sign} {text}" if r.get("latency_lower_bound") and text != "—" else text

    rows = [[r["target"], r["kind"], at_least(r, _ms(r["latency_ms"]), "≥"), _n(r["flops"]),
             at_least(r, _mj(r["energy_mj"]), "≥"), _n(r["break_even_flops"]),
             at_least(r, _n(r["break_even_time"]), "≤"), at_least(r, _n(r["break_even_energy"]), "≤")]
            for r in report.asymmetry()]
    return header, rows


def variant_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    header = ["model", "size", "MACs", "top-1"] + [f"{t}" for t in report.targets]
    rows = []
    for v in report.variants:
        cells = [v.name, human_bytes(v.size_bytes) if v.size_bytes else "—", _n(v.macs), _pct(v.accuracy)]
        for t in report.targets:
            c = v.costs.get(t)
            if c is None:
                cells.append("—")
                continue
            mark = " (" + c.label.replace("estimated", "est.") + ")" if c.kind == "estimated" else ""
            cells.append("≥ " * c.lower_bound + _ms(c.ms) + mark)
        rows.append(cells)
    return header, rows


def training_line(report: Any) -> str:
    t = report.training
    bits = []
    if t.wall_s:
        bits.append(f"{t.wall_s:.1f} s" if t.wall_s < 3600 else f"{t.wall_s / 3600:.2f} h")
    if t.flops:
        bits.append(f"{_n(t.flops)}FLOPs")
    if t.energy_j:
        bits.append(f"{t.energy_j / 3.6e6:.3g} kWh")
    return ", ".join(bits) if bits else "unknown"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(report: Any) -> str:
    h, rows = asymmetry_rows(report)
    vh, vrows = variant_rows(report)
    out = ["# edgeml report", "",
           f"**Training cost:** {training_line(report)}", ""]
    out += [f"- {p}" for p in report.training.parts] + [""]
    out += [f"## The cheap-inference asymmetry ({report.deploy})", "",
            "How many inferences on each target cost as much as training did. *measured* = timed on that machine; "
            "*estimated* = edgeml's latency model (see its basis in the JSON), never a measurement.", "",
            _md_table(h, rows), "", "## Variants", "", _md_table(vh, vrows), ""]
    notes = report.notes + [f"{c.target}: {c.power_basis}" for v in report.variants for c in v.costs.values()
                            if c.power_basis and v.name == report.deploy]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Sources: " + ", ".join(f"`{s}`" for s in report.sources), ""]
    return "\n".join(out)


CSS = """body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d1d1f}table{border-collapse:collapse;margin:1em 0}th,td{padding:.35em .7em;border-bottom:1px solid #ddd;
text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}th{background:#f4f4f6}.est{color:#a15c00}
.meas{color:#17702f}.big{font-size:1.2em}.plots{display:flex;flex-wrap:wrap;gap:1em}.plots figure{margin:0}
small{color:#666}.scroll{overflow-x:auto}th{white-space:normal}
.numbered td:nth-child(2),.numbered th:nth-child(2){text-align:left}.est small{color:#a15c00}"""


def _html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    def cell(c: str) -> str:
        est = " (est." in c and c.endswith(")")
        kind = ' class="est"' if c.startswith("estimated") or est else ' class="meas"' if c == "measured" else ""
        if est:  # the value stays on one line, its label goes under it: narrow columns
            value, label = c.split(" (", 1)
            return f"<td{kind}>{_html.escape(value)}<br><small>({_html.escape(label)}</small></td>"
        return f"<td{kind}>{_html.escape(c)}</td>"

    head = "".join(f"<th>{_html.escape(x)}</th>" for x in header)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return (f"<div class='scroll'><table{f' class={cls!r}' if cls else ''}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def html(report: Any) -> str:
    from edgeml.report.plots import svgs

    h, rows = asymmetry_rows(report)
    vh, vrows = variant_rows(report)
    e = _html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>edgeml report</title><style>{CSS}</style>"
             "</head><body><h1>edgeml report</h1>",
             f"<p class='big'><b>Training cost:</b> {e(training_line(report))}</p><ul>"
             + "".join(f"<li><small>{e(p)}</small></li>" for p in report.training.parts) + "</ul>",
             f"<h2>The cheap-inference asymmetry <small>({e(report.deploy)})</small></h2>",
             "<p>How many inferences on each target cost as much as training did. <span class='meas'>measured</span> = "
             "timed on that machine; <span class='est'>estimated</span> = edgeml's latency model, never a "
             "measurement.</p>", _html_table(h, rows), "<h2>Variants</h2>",
             _html_table(["#"] + vh, [[str(k + 1)] + r for k, r in enumerate(vrows)], "numbered")]  # plots' numbers
    plots, why = svgs(report)
    if plots:
        parts.append("<h2>Plots</h2><div class='plots'>" + "".join(f"<figure>{svg}</figure>" for svg in plots)
                     + "</div>")
    notes = report.notes + ([why] if why else [])
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    parts.append("<p><small>Sources: " + ", ".join(e(s) for s in report.sources) + "</small></p></body></html>")
    return "\n".join(parts)
