"""edgeml demo"""

from __future__ import annotations

import click

from edgeml.cli._out import emit_json, status, table


@click.command("demo")
@click.option("-o", "--output", "out_dir", default="edgeml-demo", show_default=True, type=click.Path(),
              help="Folder for the demo's models and summary.json.")
@click.option("--epochs", type=click.IntRange(1, 200), default=15, show_default=True, help="Training epochs.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (schema edgeml.demo/1).")
@click.pass_context
def demo_cmd(ctx, out_dir: str, epochs: int, as_json: bool) -> None:
    """Train a small CNN on builtin digits, convert it to TFLite and ONNX, verify and evaluate each.

    Runs offline in well under a minute on 2 cores; all numbers are measured, none are canned.
    """
    from edgeml.demo import run_demo

    quiet = ctx.obj.get("quiet") if ctx.obj else False
    summary = run_demo(out_dir, epochs=epochs, progress=None if quiet else status)
    if as_json:
        emit_json(summary)
        return
    from edgeml.formats.common import human_bytes, human_count

    t = summary["training"]
    click.echo(f"\ntrained in {t['wall_s']:.1f} s: {t['samples']} samples x {t['epochs']} epochs, "
               f"~{human_count(t['flops'])}FLOPs ({t['flops_basis']})")
    rows = []
    for fmt, v in summary["variants"].items():
        ver = v.get("verification")
        check = f"{ver['normalized_max_diff']:.1e} / {100 * ver['argmax_agreement']:.0f}%" if ver else "(source)"
        rows.append([fmt, v["path"], human_bytes(v["size_bytes"]), human_count(v["macs"]),
                     f"{100 * v['accuracy']:.2f}%", check])
    click.echo(table(rows, ["format", "file", "size", "MACs", "top-1 (test)", "max diff / argmax agree"],
                     "lllrrr"))
    click.echo(f"\ndone in {summary['seconds']:.0f} s; summary in {summary['out_dir']}/summary.json")
