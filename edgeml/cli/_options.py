"""Click options shared by several commands."""

from __future__ import annotations

import click

INPUT_SHAPE_HELP = ("Shape of a dynamic input, NAME=D0,D1,... (repeatable; no NAME= for a single-input model). "
                    "Batch dims default to 1; other unknown dims are refused, never guessed.")


def _parse_input_shapes(ctx, param, value):
    if not value:
        return None
    from edgeml.formats.shapes import ShapeError, parse_input_shapes

    try:
        return parse_input_shapes(list(value))
    except ShapeError as exc:
        raise click.BadParameter(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None


def input_shape_option(f):
    """``--input-shape NAME=D0,D1,...`` (repeatable) -> ``input_shapes``: {name | None: (d0, d1, ...)} or None."""
    return click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]D0,D1,...",
                        callback=_parse_input_shapes, help=INPUT_SHAPE_HELP)(f)
