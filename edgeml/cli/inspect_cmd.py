"""edgeml inspect MODEL"""

from __future__ import annotations

import click

from edgeml.cli._options import input_shape_option, print_config_option, print_config_requested
from edgeml.cli._options import print_config as show_config
from edgeml.cli._out import emit_json, spinner, table
from edgeml.cli.flags import to_flags


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--layers", is_flag=True, help="Also list every layer/op with its MACs and params.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.inspect/1).")
@input_shape_option
@print_config_option
def inspect_cmd(model: str, layers: bool, as_json: bool, input_shapes) -> None:
    """Describe MODEL: format, inputs/outputs, params, MACs, op histogram, weight dtypes, sparsity.

    MODEL is a .keras file, a Keras 2 .h5 file, a SavedModel directory, a .tflite or an .onnx file; the
    format is detected from the content. .tflite and .onnx need no TensorFlow.

    \b
    Examples:
      edgeml inspect model.tflite
      edgeml inspect model.onnx --layers --json
      edgeml inspect det.onnx --input-shape x=1,3,320,320   # MACs of a dynamic-shape model
    """
    if print_config_requested():
        return show_config("inspect", "edgeml.inspect", dict(model=model, input_shapes=input_shapes))
    from edgeml.artifact import inspect_model

    # a .keras/.h5/SavedModel loads TensorFlow (seconds): say so at once; .tflite/.onnx only when slow
    fast = model.lower().endswith((".tflite", ".onnx"))
    with spinner(f"inspecting {model}", delay=0.5 if fast else 0):
        info = inspect_model(model, input_shapes=input_shapes) if input_shapes else inspect_model(model)
    if as_json:
        emit_json(info.to_dict(layers=layers))
        return
    click.echo(render(info, layers=layers))


def render(info, *, layers: bool = False) -> str:
    from edgeml.formats.common import human_bytes, human_count

    def io_rows(specs):
        rows = []
        for t in specs:
            q = f"scale={t.quantization.scale:.6g} zero_point={t.quantization.zero_point}" if t.quantization else ""
            rows.append([t.name, t.shape_str(), t.dtype, q])
        return rows

    total_w = sum(info.weight_dtypes.values()) or 1
    dtypes = ", ".join(f"{k} {100 * v / total_w:.1f}%" for k, v in info.weight_dtypes.items()) or "none"
    ops = ", ".join(f"{k} {v}" for k, v in info.ops.items())
    lines = [
        f"model      {info.path}",
        f"format     {info.format}   size {human_bytes(info.size_bytes)} ({info.size_bytes} bytes)",
        f"params     {human_count(info.params)} ({info.params})",
        f"MACs       {human_count(info.macs)} ({info.macs})" + _at(info) + (" - partial: a lower bound, see notes"
                                                                          if info.macs_partial else ""),
        f"weights    {dtypes}",
        f"sparsity   {100 * info.sparsity:.2f}% exact zeros",
        f"custom ops {', '.join(info.custom_ops) if info.custom_ops else 'none'}",
        "",
        "inputs",
        _indent(table(io_rows(info.inputs), ["name", "shape", "dtype", "quantization"])),
        "outputs",
        _indent(table(io_rows(info.outputs), ["name", "shape", "dtype", "quantization"])),
        "",
        f"ops        {ops}",
    ]
    for note in info.notes:
        lines.append(f"note       {to_flags(note)}")
    if layers:
        rows = [[layer.name, layer.op, f"{layer.macs:,}", f"{layer.params:,}"] for layer in info.layers]
        lines += ["", table(rows, ["layer", "op", "MACs", "params"], "llrr")]
    return "\n".join(lines)


def _at(info) -> str:
    """' at x=[1, 3, 320, 320]' when a dynamic input was counted at a chosen shape."""
    dynamic = {t.name for t in info.inputs if any(d is None for d in t.shape)}
    shapes = {k: v for k, v in (info.macs_shapes or {}).items() if k in dynamic and all(d is not None for d in v)}
    return (" at " + ", ".join(f"{k}=[{', '.join(map(str, v))}]" for k, v in shapes.items())) if shapes else ""


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
