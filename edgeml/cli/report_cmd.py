"""edgeml report RESULTS ... -o report.html|.md|.json"""

from __future__ import annotations

import click

from edgeml.cli._options import print_config as show_config
from edgeml.cli._options import print_config_option, print_config_requested
from edgeml.cli._out import emit_json, table
from edgeml.cli.flags import to_flags


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), help="Write report.html (self-contained), .md or .json.")
@click.option("--deploy", metavar="MODEL", help="The model whose asymmetry to show "
              "[default: a run folder's best variant, else the last one benched].")
@click.option("--train-flops", type=float, help="Training cost in FLOPs (when edgeml did not train the model).")
@click.option("--train-samples", type=click.IntRange(min=1), help="Training samples (with --epochs: 3 x forward "
                                                                  "FLOPs x samples x epochs).")
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (with --train-samples).")
@click.option("--train-gpu-hours", type=click.FloatRange(min=0, min_open=True), help="Training time in GPU hours.")
@click.option("--train-power-w", type=click.FloatRange(min=0, min_open=True),
              help="Average training power in watts (with --train-gpu-hours: training energy).")
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the report data as JSON (schema edgeml.report/1).")
@print_config_option
def report_cmd(results, out, deploy, train_flops, train_samples, epochs, train_gpu_hours, train_power_w, force,
               as_json):
    """Show the cheap-inference asymmetry: training cost against per-inference cost on each target.

    RESULTS are JSON files from edgeml bench/estimate/prune/quantize (--json or --out), or a run folder
    from edgeml optimize/run. Every latency is labelled measured or estimated.

    \b
    Examples:
      edgeml report run/ -o report.html
      edgeml report host.json rpi4.json --train-gpu-hours 2 --train-power-w 300 -o report.md
    """
    if print_config_requested():
        return show_config("report", "edgeml.report.build_report", dict(
            results=list(results), train_flops=train_flops, train_samples=train_samples, epochs=epochs,
            train_gpu_hours=train_gpu_hours, train_power_w=train_power_w, deploy=deploy, out=out, force=force))
    from edgeml.report import build_report, write_report
    from edgeml.report.render import asymmetry_rows, training_line, variant_rows

    if out:  # before any work: never over an input, a folder or a device
        from edgeml._io import check_output

        check_output(out, inputs=list(results), force=force)
    r = build_report(list(results), train_flops=train_flops, train_samples=train_samples, epochs=epochs,
                     train_gpu_hours=train_gpu_hours, train_power_w=train_power_w, deploy=deploy)
    if out:
        write_report(r, out, force=force)
    if as_json:
        emit_json(r.to_dict())
        return
    click.echo(f"training cost: {to_flags(training_line(r))}")
    for p in r.training.parts:
        click.echo(f"  {to_flags(p)}")
    h, rows = asymmetry_rows(r)
    click.echo(f"\nthe cheap-inference asymmetry ({r.deploy}):")
    click.echo(table(rows, h, "llrrrrrr"))
    vh, vrows = variant_rows(r)
    click.echo("\nvariants:")
    click.echo(table(vrows, vh, "l" + "r" * (len(vh) - 1)))
    for n in r.notes:
        click.echo(f"note: {to_flags(n)}", err=True)
    if out:
        click.echo(f"\nwrote {out}")
