"""The ``edgeml`` command line: a thin click layer over the library.

Each command lives in its own module, imported only when that command runs (so ``edgeml --help`` and
commands that need no TensorFlow stay fast). This module is the one place that turns errors into output:
``error: ...`` / ``hint: ...`` on stderr and an exit code (0 ok, 1 check failed, 2 usage, 3 known error,
4 unexpected).
"""

from __future__ import annotations

import copy
import functools
import importlib
import logging
import math
import os
import signal
import sys
import threading
import traceback

import click

from edgeml import __version__

# command name -> (module, function name, one-line help shown by `edgeml --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "inspect": ("edgeml.cli.inspect_cmd", "inspect_cmd", "Describe a model: IO, ops, params, MACs, weights."),
    "convert": ("edgeml.cli.convert_cmd", "convert_cmd", "Convert to TFLite or ONNX and verify the numbers match."),
    "data": ("edgeml.cli.data_cmd", "data", "Inspect calibration/evaluation data as a model would see it."),
    "demo": ("edgeml.cli.demo_cmd", "demo_cmd", "Run the built-in end-to-end example on builtin digits."),
    "optimize": ("edgeml.cli.optimize_cmd", "optimize_cmd",
                 "One command: prune, quantize, convert, bench, report, check."),
    "run": ("edgeml.cli.optimize_cmd", "run_cmd", "Run the optimize pipeline from a recipe TOML."),
    "prune": ("edgeml.cli.prune_cmd", "prune_cmd", "Prune a Keras model: magnitude or structured channels."),
    "quantize": ("edgeml.cli.quantize_cmd", "quantize_cmd", "Quantize to int8 with calibration data; per-layer error."),
    "bench": ("edgeml.cli.bench_cmd", "bench_cmd", "Measure latency/accuracy on the host or a board over SSH."),
    "doctor": ("edgeml.cli.doctor_cmd", "doctor_cmd", "What a machine (or a board over SSH) has to run models."),
    "check": ("edgeml.cli.check_cmd", "check_cmd", "CI gates: fail when a model is too big, slow or inaccurate."),
    "compile": ("edgeml.cli.compile_cmd", "compile_cmd", "Compile a full-int8 .tflite for the Edge TPU."),
    "estimate": ("edgeml.cli.estimate_cmd", "estimate_cmd", "Estimate latency and energy on a target without it."),
    "report": ("edgeml.cli.report_cmd", "report_cmd", "Training cost vs per-inference cost per target (HTML/MD)."),
    "targets": ("edgeml.cli.targets_cmd", "targets_cmd", "List target profiles (host, Pi, Coral, Jetson)."),
    "search": ("edgeml.cli.search_cmd", "search_cmd", "Search prune x quantize x format: Pareto front per target."),
}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from edgeml.cli.flags import to_flags

        msg = to_flags(record.getMessage())  # the library's log lines name parameters: shown as flags
        if record.levelno >= logging.ERROR:
            return f"error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"warning: {msg}"
        return msg


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logger = logging.getLogger("edgeml")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise_stop(signum, frame) -> None:
    """Raise the pending stop now, unless the main thread is importing a module: an exception raised inside
    a native extension's initialisation can crash the interpreter (seen with onnx), so retry shortly."""
    from edgeml._io import STOP

    if _importing(frame):
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return
    raise STOP["exc"]()


def _on_signal(signum, frame) -> None:
    """SIGTERM behaves like Ctrl-C: an exception unwinds the stack, so finally-blocks remove temp files."""
    from edgeml._io import STOP
    from edgeml.errors import Terminated

    STOP["exc"] = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during cleanup ends the process at once
    signal.signal(signal.SIGALRM, _raise_stop)
    _raise_stop(signum, frame)


def _install_signal_handlers() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)


def _finite_convert(convert, value, param, ctx):
    result = convert(value, param, ctx)
    if isinstance(result, float) and not math.isfinite(result):
        raise click.BadParameter(f"{value!r} is not a finite number", ctx=ctx, param=param)
    return result


def _finite_floats(cmd: click.Command) -> click.Command:
    """Every float option refuses nan/inf with a usage error (click's FloatRange lets nan through)."""
    if getattr(cmd, "_edgeml_finite", False):
        return cmd
    for p in cmd.params:
        if isinstance(p.type, (click.types.FloatParamType, click.FloatRange)):
            p.type = copy.copy(p.type)  # click.FLOAT is shared: patch a copy
            p.type.convert = functools.partial(_finite_convert, p.type.convert)  # type: ignore[method-assign]
    for sub in getattr(cmd, "commands", {}).values():
        _finite_floats(sub)
    cmd._edgeml_finite = True  # type: ignore[attr-defined]
    return cmd


# distributions whose versions decide edgeml's numbers (read from metadata: nothing is imported)
_RUNTIMES = ("numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxsim", "ai-edge-litert", "ai-edge-quantizer",
             "tensorflow", "tf2onnx", "keras")


def _version(ctx: click.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import platform
    from importlib import metadata

    from edgeml import DISTRIBUTION

    click.echo(f"edgeml {__version__} ({DISTRIBUTION}), Python {platform.python_version()} on "
               f"{platform.system()} {platform.machine()}")
    for dist in _RUNTIMES:
        try:
            click.echo(f"  {dist:<18} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            click.echo(f"  {dist:<18} not installed")
    ctx.exit()


class EdgeMLGroup(click.Group):
    """Loads commands lazily and renders every error the same way."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return _finite_floats(getattr(importlib.import_module(module), attr))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        from edgeml.errors import EdgeMLError

        debug = bool(ctx.params.get("debug")) or bool(os.environ.get("EDGEML_DEBUG"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except EdgeMLError as exc:
            if debug:
                traceback.print_exc()
            from edgeml.cli.flags import to_flags

            click.echo(f"error: {to_flags(exc.message)}", err=True)
            if exc.hint:
                click.echo(f"hint: {to_flags(exc.hint)}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see main): finally-blocks have cleaned up
            from edgeml.errors import Terminated

            terminated = isinstance(exc, Terminated)
            click.echo(f"error: {'terminated' if terminated else 'interrupted'}", err=True)
            ctx.exit(143 if terminated else 130)
        except Exception as exc:  # a bug: say so, keep the traceback behind --debug
            if debug:
                traceback.print_exc()
            click.echo(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", err=True)
            click.echo("hint: this is a bug in edgeml; re-run with --debug and report the traceback", err=True)
            ctx.exit(4)


@click.group(cls=EdgeMLGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=lambda c, p, v: _version(c, v),
              help="Show edgeml's version and the runtimes it would use, then exit.")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: bool) -> None:
    """edgeml: prune, quantize, convert, benchmark and gate models for small devices.

    \b
    Pipeline: inspect -> prune -> quantize -> convert -> bench / estimate -> report / check.
    Results go to stdout (--json for machines); progress, warnings and errors go to stderr.
    """
    ctx.obj = {"debug": debug, "verbose": verbose, "quiet": quiet}
    _setup_logging(verbose, quiet)


_GLOBAL_FLAGS = ("--debug", "--quiet", "-q", "--verbose", "-v", "-vv", "-vvv")


def hoist_global_flags(args: list[str]) -> list[str]:
    """``edgeml CMD ... --debug`` means ``edgeml --debug CMD ...``: the global flags (--debug, -q, -v) are
    accepted after the subcommand too, as every hint suggests adding them at the end (no subcommand defines
    them; nothing after ``--`` moves)."""
    cmd_at = next((i for i, a in enumerate(args) if a in COMMANDS), None)
    if cmd_at is None:
        return args
    end = args.index("--") if "--" in args[cmd_at:] else len(args)
    moved = [a for a in args[cmd_at + 1:end] if a in _GLOBAL_FLAGS]
    if not moved:
        return args
    rest = [a for a in args[cmd_at + 1:end] if a not in _GLOBAL_FLAGS]
    return args[:cmd_at] + moved + [args[cmd_at]] + rest + args[end:]


def main() -> None:
    from edgeml._io import STOP
    from edgeml.errors import Terminated

    _install_signal_handlers()
    try:
        cli.main(args=hoist_global_flags(sys.argv[1:]), prog_name="edgeml")
    except SystemExit as exc:  # a library swallowed the interrupt (finished, or failed from it): report the signal
        if STOP["exc"] is not None and exc.code not in (130, 143):
            click.echo("error: " + ("terminated" if STOP["exc"] is Terminated else "interrupted"), err=True)
            raise SystemExit(143 if STOP["exc"] is Terminated else 130) from None
        raise
