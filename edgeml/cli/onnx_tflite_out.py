"""Text output of `edgeml convert MODEL.onnx --to tflite` (IO contract, transposes, verification)."""

from __future__ import annotations

import click

from edgeml.cli.flags import to_flags


def echo_contract(result) -> None:
    click.echo(f"converter {result.converter}; {result.transpose_count} TRANSPOSE op(s) in the TFLite model")
    for kind, items in (("input ", result.inputs), ("output", result.outputs)):
        for t in items:
            click.echo(f"{kind}    {t.onnx_name} {t.onnx_shape} -> {t.name} {t.shape} {t.dtype}, {t.layout}")
    if result.verification:
        click.echo(f"verified  {result.verification.summary()} (ONNX Runtime vs LiteRT, layouts matched)")
    s = result.simplify or {}
    if s.get("applied"):
        click.echo(f"onnxsim   nodes {s['nodes_before']} -> {s['nodes_after']}")
    elif s.get("warning"):
        click.echo(f"warning: onnxsim not applied ({to_flags(s['warning'])}); converted the unsimplified graph")
