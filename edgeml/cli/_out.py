"""Shared rendering helpers for commands: JSON on stdout, tables, stderr status lines."""

from __future__ import annotations

from typing import Any

import click

from edgeml._io import json_text


def emit_json(data: dict[str, Any]) -> None:
    """Machine output: one JSON document on stdout (NaN/Inf become null, so it is strict JSON)."""
    click.echo(json_text(data))


def status(message: str) -> None:
    """A progress/status line on stderr (never mixed into --json output)."""
    click.echo(message, err=True)


def table(rows: list[list[str]], header: list[str] | None = None, align: str | None = None) -> str:
    """A plain-text table; ``align`` is a string of 'l'/'r' per column."""
    all_rows = ([header] if header else []) + rows
    if not all_rows:
        return ""
    widths = [max(len(str(r[i])) for r in all_rows) for i in range(len(all_rows[0]))]
    align = align or "l" * len(widths)
    lines = []
    for n, row in enumerate(all_rows):
        cells = [str(c).rjust(w) if a == "r" else str(c).ljust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(cells).rstrip())
        if header and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
