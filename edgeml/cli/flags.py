"""Library text -> CLI text, in one place. The library is CLI-agnostic: its messages, hints, notes, warnings
and progress lines speak Python, marking what a caller passes in backticks. The CLI renders every such text
through :func:`to_flags` exactly once before printing it, so a shell user reads flags instead.

The markup (inside single backticks, on one line):

``name``
    A parameter: `` `calib` `` -> ``--calib``, `` `input_shapes` `` -> ``--input-shape``, `` `out` `` -> ``-o``.
``name=value``
    A parameter with a value: `` `mode="dynamic"` `` -> ``--mode dynamic``, `` `calib=SPEC` `` -> ``--calib SPEC``
    (a quoted Python string is unquoted, anything else is shown as written). Booleans go through
    :data:`BOOL_FLAGS`: `` `simplify=False` `` -> ``--no-simplify``, `` `per_channel=False` `` -> ``--per-tensor``;
    any other ``name=True`` is the bare flag (`` `strict=True` `` -> ``--strict``).
`` `to_dict()` ``, `` `traceback.print_exc()` ``
    What the CLI spells as a flag of its own (:data:`PHRASES`): a result as JSON (``--json``), the traceback
    of an error (``--debug``), an SSH option (`` `SSHTarget.identity` `` -> ``--identity``), a command's help.
``edgeml.FUNC(ARGS)``
    A suggested call of a stage, as valid Python: `` `edgeml.convert(MODEL, to="tflite", out="model.tflite")` ``
    -> ``edgeml convert MODEL --to tflite -o model.tflite``. ``FUNC`` is an API function (``run_pipeline`` is the
    ``run`` command) or, for commands with no API function (``compile``, ``doctor``, ...), the command's name.
    Positional arguments are shown as written (a name such as ``MODEL``, ``...``) or unquoted (a string; a list
    gives its items: `` `edgeml.bench([MODEL, ...])` `` -> ``edgeml bench MODEL ...``); keyword
    arguments become flags by the rules above (a list repeats the flag). Write paths with ``!r`` in f-strings
    (``{str(path)!r}``) so the call stays valid Python.

A name not in the tables (and anything else in backticks, e.g. `` `edgeml search --help` ``) is printed
as written. Every flag of the tables is an option of some command, and every name the library uses in this
markup is in a table (tests/test_cli_flags.py). ``--json`` output keeps the library's text unchanged.
"""

from __future__ import annotations

import ast
import re
import shlex

PARAM_FLAGS: dict[str, str] = {
    "atol": "--atol",
    "baseline": "--baseline",
    "batch_size": "--batch-size",
    "board": "--board",
    "budget": "--budget",
    "calib": "--calib",
    "calib_samples": "--calib-samples",
    "criterion": "--criterion",
    "data": "--data",
    "deploy": "--deploy",
    "dry_run": "--dry-run",
    "epochs": "--epochs",
    "eval": "--eval",
    "exclude": "--exclude",
    "executor": "--executor",
    "fallback": "--fallback",
    "fit": "--fit",
    "fleet": "--fleet",
    "float16": "--float16",
    "force": "--force",
    "format": "--format",
    "host": "--host",
    "identity": "--identity",
    "input_shapes": "--input-shape",
    "io": "--io",
    "keep_best": "--keep-best",
    "keep_degraded": "--keep-degraded",
    "lr": "--lr",
    "max_accuracy_drop": "--max-accuracy-drop",
    "max_trials": "--max-trials",
    "method": "--method",
    "min_fidelity": "--min-fidelity",
    "min_time": "--min-time",
    "mode": "--mode",
    "num_cpus": "--num-cpus",
    "opset": "--opset",
    "out": "-o",
    "per_channel": "--per-channel",
    "plan": "--plan",
    "precision": "--precision",
    "prune": "--prune",
    "ray_address": "--ray-address",
    "reference": "--reference",
    "remote_python": "--remote-python",
    "results": "--results",
    "runs": "--runs",
    "schedule": "--schedule",
    "scope": "--scope",
    "seed": "--seed",
    "space": "--space",
    "sparsity": "--sparsity",
    "speed_seconds": "--speed-seconds",
    "strict": "--strict",
    "target": "--target",
    "targets": "--target",
    "threads": "--threads",
    "timeout": "--timeout",
    "to": "--to",
    "train": "--train",
    "train_flops": "--train-flops",
    "train_gpu_hours": "--train-gpu-hours",
    "train_power_w": "--train-power-w",
    "train_samples": "--train-samples",
    "val": "--val",
    "verify": "--verify",
    "warmup": "--warmup",
}

# booleans whose flag is not simply PARAM_FLAGS[name] for True
BOOL_FLAGS: dict[tuple[str, bool], str] = {
    ("per_channel", False): "--per-tensor",
    ("simplify", False): "--no-simplify",
}

# Python spellings of what the CLI offers as a flag of its own
PHRASES: dict[str, str] = {
    "to_dict()": "--json",
    "traceback.print_exc()": "--debug",
    "SSHTarget.identity": "--identity",
    "SSHTarget.python": "--remote-python",
    "help(edgeml.search.space)": "edgeml search --help",
}

# API function -> command, where they differ
COMMANDS: dict[str, str] = {"run_pipeline": "run"}

_MARKUP = re.compile(r"`([^`\n]+)`")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_ASSIGN = re.compile(r"([a-z][a-z0-9_]*)=(.+)")
_CALL = re.compile(r"edgeml\.([a-z][a-z0-9_]*)\(.*\)")


def _value(node: ast.expr) -> str | None:
    """A positional argument or a flag's value as shell text; None when it is not a simple value."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant):
        if node.value is Ellipsis:
            return "..."
        if isinstance(node.value, str):
            return shlex.quote(node.value)
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return repr(node.value)
    return None


def _flag(name: str, node: ast.expr) -> str | None:
    """``name=<node>`` as flags; None when it cannot be rendered."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return BOOL_FLAGS.get((name, node.value)) or (PARAM_FLAGS.get(name) if node.value else None)
    flag = PARAM_FLAGS.get(name)
    if flag is None:
        return None
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_value(e) for e in node.elts]
        return None if not values or None in values else " ".join(f"{flag} {v}" for v in values)
    value = _value(node)
    return None if value is None else f"{flag} {value}"


def _call(text: str) -> str | None:
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "edgeml"):
        return None
    words = ["edgeml", COMMANDS.get(node.func.attr, node.func.attr)]
    for arg in node.args:
        values = [_value(e) for e in arg.elts] if isinstance(arg, (ast.List, ast.Tuple)) else [_value(arg)]
        if not values or None in values:
            return None
        words += values  # type: ignore[arg-type]
    for kw in node.keywords:
        flag = _flag(kw.arg, kw.value) if kw.arg else None
        if flag is None:
            return None
        words.append(flag)
    return " ".join(words)


def _assign(name: str, value: str) -> str | None:
    if value in ("True", "False"):
        return _flag(name, ast.Constant(value == "True"))
    flag = PARAM_FLAGS.get(name)
    if flag is None:
        return None
    if value[:1] in "\"'":
        try:
            literal = ast.literal_eval(value)
        except (SyntaxError, ValueError):
            return None
        if not isinstance(literal, str):
            return None
        value = shlex.quote(literal)
    return f"{flag} {value}"


def render(markup: str) -> str | None:
    """One backticked piece of library markup (without the backticks) as CLI text; None: not markup we map."""
    if markup in PHRASES:
        return PHRASES[markup]
    if _NAME.fullmatch(markup):
        return PARAM_FLAGS.get(markup)
    if _CALL.fullmatch(markup):
        return _call(markup)
    m = _ASSIGN.fullmatch(markup)
    return _assign(m[1], m[2]) if m else None


def to_flags(text: str) -> str:
    """``text`` (library markup, see the module docstring) as a shell user reads it: parameters as flags,
    suggested calls as command lines. Text that is not markup is returned unchanged."""
    def sub(m: re.Match[str]) -> str:
        rendered = render(m[1])
        return m[0] if rendered is None else rendered

    return _MARKUP.sub(sub, text)
