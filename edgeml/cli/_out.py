"""Shared rendering helpers for commands: JSON on stdout, tables, stderr status lines."""

from __future__ import annotations

from typing import Any

import click

from edgeml._io import json_text


def emit_json(data: dict[str, Any]) -> None:
    """Machine output: one JSON document on stdout (NaN/Inf become null, so it is strict JSON)."""
    click.echo(json_text(data))


def status(message: str) -> None:
    """A progress/status line on stderr (never mixed into --json output). It is the progress callback every
    command hands the library, so the line is rendered through :func:`edgeml.cli.flags.to_flags`."""
    from edgeml.cli.flags import to_flags

    click.echo(to_flags(message), err=True)


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


class spinner:
    """A progress line on stderr for a long step: ``with spinner("loading model.keras"): ...``.

    Shown only when stderr is a terminal (pipes, files, CI logs and --json output stay clean) and only once
    the step has taken ``delay`` seconds (``delay=0``: at once, for steps known to be slow -- an import of
    TensorFlow holds the GIL and can keep the drawing thread waiting for seconds); it redraws ``| / - \\``
    and the elapsed seconds in place, then erases itself. ``stream`` is for tests.
    """

    FRAMES = "|/-\\"

    def __init__(self, message: str, *, stream: Any = None, delay: float = 0.5, interval: float = 0.1):
        import sys

        self.message, self.delay, self.interval = message, delay, interval
        self.stream = stream if stream is not None else sys.stderr
        self._stop: Any = None
        self._thread: Any = None
        self._shown = 0  # width of the last line drawn

    def _enabled(self) -> bool:
        try:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and (ctx.find_root().obj or {}).get("quiet"):
                return False
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):  # closed or not a real stream
            return False

    def _draw(self, n: int) -> None:
        import time

        line = f"{self.FRAMES[n % 4]} {self.message} ({time.monotonic() - self._start:.0f} s)"
        self.stream.write("\r" + line.ljust(self._shown))
        self.stream.flush()
        self._shown = len(line)

    def _run(self) -> None:
        n = 1 if self._shown else 0
        if not self._shown and self._stop.wait(self.delay):
            return
        while True:
            self._draw(n)
            n += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> spinner:
        import threading

        if self._enabled():
            import time

            self._start = time.monotonic()
            if self.delay <= 0:  # drawn now: a step that holds the GIL (loading TensorFlow) starves the thread
                self._draw(0)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="edgeml-spinner", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        if self._shown:  # erase the line: what follows starts on a clean line
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
