"""edgeml prune MODEL -o OUT --sparsity S"""

from __future__ import annotations

import click

from edgeml.cli._options import print_config as show_config
from edgeml.cli._options import print_config_option, print_config_requested
from edgeml.cli._out import emit_json, status, table
from edgeml.options import PruneCriterion, PruneMethod, PruneOptions, PruneSchedule, PruneScope


@click.command("prune")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), required=True,
              help="Output .keras (Keras input) or .onnx (ONNX input).")
@click.option("--sparsity", type=click.FloatRange(0, 1, min_open=True, max_open=True), required=True,
              help="Fraction to remove, 0 < S < 1: of kernel weights (magnitude) or of channels (channel).")
@click.option("--method", type=click.Choice(PruneMethod.values()), default="magnitude", show_default=True,
              help="magnitude: zero the smallest weights (smaller gzip, same speed); channel: remove whole "
                   "filters/units and rebuild a smaller, faster model.")
@click.option("--scope", type=click.Choice(PruneScope.values()), default="layer", show_default=True,
              help="Prune each layer by S, or rank all layers together (one threshold).")
@click.option("--criterion", type=click.Choice(PruneCriterion.values()), default="l1", show_default=True,
              help="Channel ranking: filter L1/L2 norm or batch-norm |gamma| (channel method).")
@click.option("--train", metavar="SPEC", help="Labelled data to fine-tune on, e.g. builtin:digits?split=train.")
@click.option("--val", metavar="SPEC", help="Labelled data for accuracy before/after and early stopping.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Fine-tuning epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate for fine-tuning.")
@click.option("--schedule", type=click.Choice(PruneSchedule.values()), default="polynomial", show_default=True,
              help="Magnitude sparsity during fine-tuning: ramp up (cubic, first 2/3 of steps) or S from the start.")
@click.option("--exclude", metavar="REGEX", help="Leave layers whose name matches REGEX unpruned.")
@click.option("--top", type=click.IntRange(min=0), default=12, show_default=True, help="Layers to print.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.prune/1).")
@print_config_option
@click.pass_context
def prune_cmd(ctx, model, out, sparsity, method, scope, criterion, train, val, epochs, batch_size, lr, schedule,
              exclude, top, force, as_json):
    """Prune a Keras 3 model (.keras, .h5), natively (no TFMOT), or an ONNX model (one-shot magnitude).

    With --train the model is fine-tuned after (channel) or while (magnitude) pruning; the training wall
    time and FLOPs are recorded for `edgeml report`. Without it, pruning is one-shot and accuracy may drop.

    \b
    Examples:
      edgeml prune model.keras --sparsity 0.5 --method channel --train builtin:digits?split=train \\
          --val builtin:digits?split=test -o pruned.keras
      edgeml prune model.keras --sparsity 0.8 --scope global --train data/train/ -o sparse.keras
      edgeml prune model.onnx --sparsity 0.5 -o sparse.onnx
    """
    options = PruneOptions(out=out, sparsity=sparsity, method=method, scope=scope, criterion=criterion, train=train,
                           val=val, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, exclude=exclude,
                           force=force)
    if print_config_requested():
        return show_config("prune", "edgeml.prune", dict(model=model, **options.to_dict()))
    from edgeml.prune import prune, summary_lines

    quiet = ctx.obj.get("quiet") if ctx.obj else False
    r = prune(model, options=options, progress=None if quiet else status)
    if as_json:
        emit_json(r.to_dict())
        return
    click.echo(f"wrote {r.output}: {r.method} pruning, sparsity {r.sparsity:g}, {r.scope} scope ({r.seconds:.1f} s)")
    for line in summary_lines(r):
        click.echo(line)
    if r.layers and top:
        if r.method == "channel":
            rows = [[e["name"], e["op"], f"{e['channels_before']} -> {e['channels_after']}",
                     ", ".join(e["coupled_with"])] for e in r.layers[:top]]
            header = ["layer", "op", "channels", "coupled with"]
        else:
            rows = [[e["name"], e["op"], f"{e['weights']:,}", f"{e['sparsity']:.1%}"] for e in r.layers[:top]]
            header = ["weights", "op", "count", "sparsity"]
        more = f" (first {top} of {len(r.layers)})" if len(r.layers) > top else ""
        click.echo(f"\nlayers{more}:")
        click.echo(table(rows, header, "llrl" if r.method == "channel" else "llrr"))
    from edgeml.cli.flags import to_flags

    for s in r.skipped:
        click.echo(f"skipped: {', '.join(s['layers'])}: {to_flags(s['reason'])}", err=True)
    for note in r.notes:
        click.echo(f"note: {to_flags(note)}", err=True)
    for warning in r.warnings:
        click.echo(f"warning: {to_flags(warning)}", err=True)
