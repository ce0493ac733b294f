"""edgeml convert MODEL --to tflite|onnx -o OUT"""

from __future__ import annotations

import click

from edgeml.cli._options import input_shape_option, print_config_option, print_config_requested
from edgeml.cli._options import print_config as show_config
from edgeml.cli._out import emit_json, status
from edgeml.options import ConvertOptions, ConvertTo


@click.command("convert")
@click.argument("model", type=click.Path())
@click.option("--to", "to", type=click.Choice(ConvertTo.values()), required=True, help="Output format.")
@click.option("-o", "--output", "out", type=click.Path(), required=True, help="Output file.")
@click.option("--opset", type=click.IntRange(11, 21), default=17, show_default=True, help="ONNX opset.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim simplification.")
@click.option("--float16", is_flag=True, help="TFLite: store weights as float16 (half the size).")
@click.option("--verify", "verify", type=click.IntRange(min=0), default=8, show_default=True,
              help="Samples to compare source and output on (0 skips the check).")
@click.option("--calib", "calib", metavar="SPEC", help="Verify on this data (else seeded random inputs in [0,1)).")
@click.option("--atol", type=float, help="Tolerance on the normalised max abs diff [default: 1e-4, 1e-2 with "
                                          "--float16].")
@click.option("--strict", is_flag=True, help="Fail instead of keeping an unsimplified model.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.convert/1).")
@input_shape_option
@print_config_option
@click.pass_context
def convert_cmd(ctx, model, to, out, opset, no_simplify, float16, verify, calib, atol, strict, force, as_json,
                input_shapes):
    """Convert MODEL (.keras, .h5, SavedModel, .tflite, .onnx) to TFLite or ONNX and verify the numbers.

    The output is written only if it matches the source on --verify samples (max abs diff normalised by
    the output's magnitude, argmax agreement); otherwise nothing is left behind.

    \b
    Examples:
      edgeml convert model.keras --to tflite -o model.tflite
      edgeml convert model.keras --to onnx -o model.onnx --calib builtin:digits
      edgeml convert model.tflite --to onnx -o model.onnx
      edgeml convert model.onnx --to tflite -o model.tflite --input-shape x=1,3,224,224   (onnx2tf; NHWC)
    """
    options = ConvertOptions(to=to, out=out, opset=opset, simplify=not no_simplify, float16=float16, verify=verify,
                             calib=calib, atol=atol, force=force, strict=strict, input_shapes=input_shapes)
    if print_config_requested():
        return show_config("convert", "edgeml.convert", dict(model=model, **options.to_dict()))
    from edgeml.convert import convert

    quiet = ctx.obj.get("quiet") if ctx.obj else False
    result = convert(model, options=options, progress=None if quiet else status)
    if as_json:
        emit_json(result.to_dict())
        return
    from edgeml.formats.common import human_bytes

    click.echo(f"wrote {result.output} ({human_bytes(result.size_bytes)}) in {result.seconds:.1f} s")
    if hasattr(result, "transpose_count"):
        from edgeml.cli.onnx_tflite_out import echo_contract

        echo_contract(result)
        return
    if result.simplify:
        s = result.simplify
        after = s["nodes_after"] if s["applied"] else s["nodes_before"]
        click.echo(f"onnxsim   nodes {s['nodes_before']} -> {after}" + ("" if s["applied"] else " (not applied)"))
    if result.verification:
        click.echo(f"verified  {result.verification.summary()}")
        from edgeml.cli.flags import to_flags

        for note in result.verification.notes:
            click.echo(f"note: {to_flags(note)}", err=True)
    for name, q in result.io_quantization.items():
        zp = q["zero_point"]
        click.echo(f"int IO    {name}: real = {q['scale']:.6g} * (q {'+' if zp < 0 else '-'} {abs(zp)}) "
                   f"(kept from the source; recorded in the model's metadata)")
