"""edgeml.cli._out: the stderr spinner shows on a terminal only, and erases itself."""

from __future__ import annotations

import io
import threading

import click
from click.testing import CliRunner

from edgeml.cli import cli
from edgeml.cli._out import spinner


class _Tty(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty
        self.drawn = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        if "inspecting" in s:
            self.drawn.set()
        return super().write(s)


def test_spinner_draws_on_a_terminal_then_erases_its_line():
    tty = _Tty(True)
    with spinner("inspecting m.keras", stream=tty, delay=0, interval=0.01):
        assert tty.drawn.wait(5)  # waits on the spinner thread, not on the clock
    text = tty.getvalue()
    assert "| inspecting m.keras (0 s)" in text
    assert text.endswith("\r") and text.rstrip("\r").split("\r")[-1].strip() == ""  # last draw: blanks


def test_spinner_is_silent_when_stderr_is_not_a_terminal():
    pipe = _Tty(False)
    with spinner("inspecting m.keras", stream=pipe, delay=0, interval=0.01):
        pass
    assert pipe.getvalue() == ""


def test_spinner_is_silent_with_quiet():
    tty = _Tty(True)

    @click.command()
    @click.pass_context
    def cmd(ctx):
        ctx.obj = {"quiet": True}
        with spinner("inspecting m.keras", stream=tty, delay=0, interval=0.01):
            pass

    assert CliRunner().invoke(cmd).exit_code == 0 and tty.getvalue() == ""


def test_inspect_json_stays_clean_under_a_pipe(tiny_tflite):
    res = CliRunner().invoke(cli, ["inspect", str(tiny_tflite), "--json"])
    assert res.exit_code == 0 and res.output.lstrip().startswith("{") and "inspecting" not in res.output
