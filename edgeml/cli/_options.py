"""Click options shared by several commands."""

from __future__ import annotations

import click

INPUT_SHAPE_HELP = ("Shape of a dynamic input, NAME=D0,D1,... (repeatable; no NAME= for a single-input model). "
                    "Batch dims default to 1; other unknown dims are refused, never guessed.")


def _parse_input_shapes(ctx, param, value):
    if not value:
        return None
    from edgeml.cli.flags import to_flags
    from edgeml.formats.shapes import ShapeError, parse_input_shapes

    try:
        return parse_input_shapes(list(value))
    except ShapeError as exc:
        raise click.BadParameter(to_flags(exc.message + (f" ({exc.hint})" if exc.hint else ""))) from None


def input_shape_option(f):
    """``--input-shape NAME=D0,D1,...`` (repeatable) -> ``input_shapes``: {name | None: (d0, d1, ...)} or None."""
    return click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]D0,D1,...",
                        callback=_parse_input_shapes, help=INPUT_SHAPE_HELP)(f)


def _remember_print_config(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta["edgeml.print_config"] = value
    return value


def print_config_option(f):
    """``--print-config``: print the exact library call the command would make, as JSON, and stop. The flag is
    kept in the click context (:func:`print_config_requested`), not passed to the command function."""
    return click.option("--print-config", is_flag=True, expose_value=False, callback=_remember_print_config,
                        help="Print the options this would run (JSON, schema edgeml.config/1) and stop.")(f)


def print_config_requested() -> bool:
    """Whether the running command got ``--print-config``."""
    return bool(click.get_current_context().meta.get("edgeml.print_config"))


def print_config(command: str, function: str, options: dict) -> None:
    """The ``--print-config`` document: the library function and the keyword arguments it would get (a stage's
    options dataclass as its fields, ``options.to_dict()``)."""
    import dataclasses

    from edgeml.cli._out import emit_json

    # a dataclass value (bench's host, an SSHTarget) is shown field by field
    shown = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v
             for k, v in options.items()}
    if shown.get("input_shapes"):  # as the CLI and edgeml.api take them: ["NAME=D0,D1,...", ...]
        shown["input_shapes"] = [(f"{k}=" if k is not None else "") + ",".join(map(str, v))
                                 for k, v in shown["input_shapes"].items()]
    emit_json({"schema": "edgeml.config/1", "command": command, "function": function, "options": shown})
