"""edgeml data inspect SPEC"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from edgeml.cli._options import print_config as show_config
from edgeml.cli._options import print_config_option, print_config_requested
from edgeml.cli._out import emit_json, table
from edgeml.options import Color, Domain, Layout, Norm, Sampling, Split

if TYPE_CHECKING:
    from edgeml.formats.common import TensorSpec


@click.group("data")
def data() -> None:
    """Look at calibration / evaluation / training data before a long run."""


@data.command("inspect")
@click.argument("spec")
@click.option("--model", "model_path", type=click.Path(), help="Show exactly what this model would be fed.")
@click.option("--samples", type=click.IntRange(min=1), help="Sample this many (seeded).")
@click.option("--seed", type=int, help="Sampling seed (default 0): same seed, same samples.")
@click.option("--sampling", type=click.Choice(Sampling.values()), help="How to pick --samples.")
@click.option("--split", type=click.Choice(Split.values()), help="Split of a builtin dataset.")
@click.option("--norm", type=click.Choice(Norm.values()), help="Image normalisation preset.")
@click.option("--color", type=click.Choice(Color.values()), help="Image colour mode (default: from model).")
@click.option("--layout", type=click.Choice(Layout.values()), help="Image layout (default: from model).")
@click.option("--domain", type=click.Choice(Domain.values()),
              help="For quantized inputs: data holds real values, or the model's integers [default: auto].")
@click.option("--raw-pixels", "raw_pixels", is_flag=True, default=None,
              help="Images as raw 0..255 pixels (default for uint8/int8 image inputs).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.data/1).")
@print_config_option
def inspect_data(spec: str, model_path: str | None, as_json: bool, **options) -> None:
    """Count, shapes, dtypes, value ranges and label distribution of SPEC.

    SPEC is a .npz/.npy/.csv file, an image folder (flat, or one sub-folder per class), a .toml data-spec
    file, or builtin:digits. Options can also be written inline: 'images/?norm=imagenet&samples=200'
    (values are taken literally: a '+' in a path stays a '+').

    With --model, each input says how the data reaches it ("fed as"). For a quantized (int8/uint8/int16)
    input: data already in the input's dtype passes through unchanged; float data is quantized with the
    model's scale/zero point; images with no norm/scale set go in as raw pixels (uint8 0..255 as they are,
    int8 as p - 128: what quantized image models are trained on); uint8 arrays for an int8 input are
    shifted by -128. Ambiguous cases are noted; domain=real (values are real numbers) or
    domain=quantized (values are already the model's integers) decides them.

    \b
    Examples:
      edgeml data inspect builtin:digits --split test
      edgeml data inspect calib.npz --model model.tflite
    """
    if print_config_requested():  # SPEC as given: a .toml spec file is named, not read
        return show_config("data inspect", "edgeml.calibration.load_dataset",
                           dict(spec=spec, model=model_path, **{k: v for k, v in options.items() if v is not None}))
    from edgeml.calibration import DataSpec, load_dataset

    data_spec = DataSpec.parse(spec, **options)
    inputs: list[TensorSpec] | None = None
    if model_path:
        from edgeml.artifact import inspect_model

        inputs = inspect_model(model_path).inputs
    ds = load_dataset(data_spec, inputs=inputs)
    info = ds.describe()
    if model_path:
        info["model"] = model_path
        info["model_inputs"] = [t.to_dict() for t in inputs or []]
    if as_json:
        emit_json(info)
        return
    click.echo(render(info))


def render(info: dict) -> str:
    from edgeml.cli.flags import to_flags

    lines = [f"data       {info['spec']['source']}  ({info['count']} of {info['source_samples']} samples)"]
    if info.get("model"):
        lines.append(f"as fed to  {info['model']}")
    rows = []
    for t in info["inputs"]:
        shape = t["shape"] if t["shape"] is not None else " | ".join(map(str, t["shapes"]))
        rows.append([t["name"], str(shape), t["dtype"], f"{t['min']:.4g}", f"{t['max']:.4g}", f"{t['mean']:.4g}"])
    lines += ["", table(rows, ["input", "shape (per sample)", "dtype", "min", "max", "mean"], "lllrrr")]
    fed = [t for t in info["inputs"] if t.get("fed")]
    if fed:
        lines.append("")
        for t in fed:
            lines.append(f"fed as     {t['name']}: {to_flags(t['fed']['how'])}")
            lines += [f"note       {to_flags(n)}" for n in t["fed"]["notes"]]
    if info["label_distribution"]:
        dist = ", ".join(f"{k}: {v}" for k, v in info["label_distribution"].items())
        lines += ["", f"labels     {dist}"]
    elif not info["labelled"]:
        lines += ["", "labels     none (unlabelled: fine for calibration, not for accuracy)"]
    return "\n".join(lines)
