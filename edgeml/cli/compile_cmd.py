"""edgeml compile MODEL --target coral-usb"""

from __future__ import annotations

import click

from edgeml.cli._out import emit_json


@click.command("compile")
@click.argument("model", type=click.Path())
@click.option("--target", default="coral-usb", show_default=True, help="An Edge TPU target.")
@click.option("-o", "--output-dir", "out_dir", type=click.Path(), help="Folder for the compiled model [default: "
                                                                         "beside MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compile_cmd(model, target, out_dir, as_json):
    """Compile a full-int8 .tflite for the Edge TPU with edgetpu_compiler (MODEL_edgetpu.tflite).

    The compiler is a Coral tool for x86-64 Linux (apt package edgetpu-compiler from Coral's repository).
    """
    from edgeml.targets.edgetpu import compile_edgetpu

    r = compile_edgetpu(model, target=target, out_dir=out_dir)
    if as_json:
        emit_json(r)
        return
    click.echo(f"wrote {r['output']}: {r['ops_on_edgetpu']} op(s) on the Edge TPU, {r['ops_on_cpu']} on the CPU")
    click.echo(r["log"].strip())
