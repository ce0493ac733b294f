"""edgeml optimize MODEL ... -o RUN_DIR   and   edgeml run RECIPE.toml"""

from __future__ import annotations

import click

from edgeml.cli._options import input_shape_option
from edgeml.cli._out import emit_json, status, table
from edgeml.options import PruneMethod


def _finish(ctx, result, as_json: bool) -> None:
    from edgeml.cli.flags import to_flags
    from edgeml.errors import CheckFailed
    from edgeml.report.render import asymmetry_rows, training_line

    if as_json:
        emit_json(result.manifest)
    else:
        rep = result.report
        if result.ranking is not None:
            click.echo(render_ranking(result.ranking))
        click.echo(f"\ntraining cost: {to_flags(training_line(rep))}")
        h, rows = asymmetry_rows(rep)
        click.echo(f"the cheap-inference asymmetry ({rep.deploy}):")
        click.echo(table(rows, h, "llrrrrrr"))
        if result.check is not None:
            from edgeml.check import fmt_value

            rows = [[i.budget, fmt_value(i, i.limit), fmt_value(i, i.measured), i.status] for i in result.check.items]
            click.echo("\nbudget check:")
            click.echo(table(rows, ["budget", "limit", "measured", "status"], "lrrl"))
        click.echo(f"\nrun folder: {result.out} (run.json manifest, report.html, report.md)")
    if not result.passed:
        raise CheckFailed("budget check failed (see check.json in the run folder)")


def render_ranking(ranking) -> str:
    """The variants table (best first) and the best variant's headline, with the rule that chose it."""
    from edgeml._units import format_ms
    from edgeml.formats.common import human_bytes
    from edgeml.report.rank import RULE

    mark = {True: "ok", False: "FAIL", None: "?"}
    names = list(ranking.rows[0].budgets) if ranking.rows else []
    rows = []
    for r in ranking.rows:
        lat = "—" if r.latency_ms is None else format_ms(r.latency_ms) + ("" if r.kind == "measured" else " (est.)")
        rows.append([("* " if r.name == ranking.best else "  ") + r.name,
                     human_bytes(r.size_bytes) if r.size_bytes else "—",
                     "—" if r.accuracy is None else f"{r.accuracy:.2%}", lat]
                    + [mark[r.budgets.get(b)] for b in names])
    header = ["model", "size", "top-1", f"latency ({ranking.target})"] + names
    lines = ["\nvariants (best first):", table(rows, header, "lrrr" + "l" * len(names))]
    if ranking.best:
        lines.append(f"\nbest: {ranking.best}: {RULE}")
    return "\n".join(lines)


@click.command("optimize")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), required=True, help="Run folder for every artifact.")
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Target(s); repeat for several "
              "[default: host]. Boards without --host are estimated.")
@click.option("--calib", metavar="SPEC", required=True, help="Calibration data for int8.")
@click.option("--eval", "eval_spec", metavar="SPEC", help="Labelled data: accuracy of every variant.")
@click.option("--train", metavar="SPEC", help="Labelled data for fine-tuning after pruning.")
@click.option("--prune", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Channel-prune this fraction first (0 = no pruning; needs --train).")
@click.option("--prune-method", type=click.Choice(sorted(PruneMethod.values())), default="channel",
              show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Fine-tuning epochs.")
@click.option("--format", "formats", multiple=True, type=click.Choice(["tflite", "onnx"]),
              help="Deployable format(s) [default: tflite; an .onnx/.tflite source: its own format]. An ONNX "
                   "source with --format tflite is converted with onnx2tf.")
@click.option("--host", metavar="USER@ADDR[:PORT]", help="Measure on this board (the first non-host --target).")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs per model.")
@click.option("--train-power-w", type=click.FloatRange(min=0, min_open=True),
              help="Average power while (fine-)training, in W: adds the energy break-even to the report.")
@click.option("--max-size", metavar="SIZE", help="Budget: largest model file, e.g. 300KiB. The best variant that "
              "meets the budgets is headlined and checked.")
@click.option("--max-latency-ms", type=float, help="Budget: p50 latency on the first target.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), help="Budget: lowest top-1 on --eval.")
@click.option("--max-accuracy-drop", type=float, metavar="D", help="Quantize budget: top-1 drop vs float on --eval "
              "(0.01 = 1 point); the worst layers fall back until it holds (edgeml quantize --help).")
@click.option("--min-fidelity", type=float, metavar="C", help="Quantize budget without labels: worst output's "
              "cosine vs float >= C.")
@click.option("--dry-run", is_flag=True, help="Print the recipe (TOML) this would run, and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the run manifest as JSON (schema edgeml.run/1).")
@input_shape_option
@click.pass_context
def optimize_cmd(ctx, model, out, targets, calib, eval_spec, train, prune, prune_method, epochs, formats, host,
                 runs, train_power_w, max_size, max_latency_ms, min_accuracy, max_accuracy_drop, min_fidelity, dry_run,
                 as_json, input_shapes):
    """Run prune -> quantize -> convert -> bench/estimate -> report -> check into one run folder.

    Re-running skips stages whose inputs and options did not change. `--dry-run > recipe.toml` saves the
    same configuration for `edgeml run recipe.toml` (paths relative to the recipe's folder, so it can be
    committed). The variants are listed best first: meets the budgets, then lowest latency on the first
    target (overlapping 95 % confidence intervals are a tie), then the smaller file; the best one is
    headlined and checked against the budgets.

    \b
    Example:
      edgeml optimize model.keras --target host --target rpi4 --calib builtin:digits?split=train \\
          --eval builtin:digits?split=test --train builtin:digits?split=train --prune 0.5 -o run/
    """
    from edgeml.formats.shapes import format_input_shapes
    from edgeml.pipeline import Recipe, run_pipeline

    budget = {k: v for k, v in (("max_size", max_size), ("max_latency_ms", max_latency_ms),
                                ("min_accuracy", min_accuracy)) if v is not None}
    recipe = Recipe(model=model, out=out, targets=list(targets) or ["host"], calib=calib, eval=eval_spec, train=train,
                    prune=prune, prune_method=prune_method, epochs=epochs, formats=list(formats) or None,
                    host=host, runs=runs, train_power_w=train_power_w, budget=budget,
                    max_accuracy_drop=max_accuracy_drop, min_fidelity=min_fidelity,
                    input_shape=format_input_shapes(input_shapes) if input_shapes else None)
    if dry_run:  # paths relative to the current directory, where `--dry-run > recipe.toml` saves it
        from pathlib import Path

        click.echo("# edgeml recipe (edgeml run recipe.toml): relative paths are relative to this file's folder;\n"
                   "# these are written for a recipe saved in the current directory.")
        click.echo(recipe.to_toml(base=Path.cwd()), nl=False)
        return
    _check_folder(recipe)
    quiet = ctx.obj.get("quiet") if ctx.obj else False
    _finish(ctx, run_pipeline(recipe, progress=None if quiet else status), as_json)


def _check_folder(recipe, *inputs) -> None:
    """The run folder is never an input (model, data, recipe) nor inside one; checked before any work."""
    from edgeml._io import check_outputs

    check_outputs([], inputs=[recipe.model, recipe.calib, recipe.eval, recipe.train, getattr(recipe, "training", None),
                              *inputs], folders=[recipe.out])


@click.command("run")
@click.argument("recipe_file", metavar="RECIPE.toml", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), help="Run folder [default: the recipe's out].")
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the run manifest as JSON (schema edgeml.run/1).")
@click.pass_context
def run_cmd(ctx, recipe_file, out, dry_run, as_json):
    """Run the optimize pipeline from a declarative recipe (the same keys as edgeml optimize's options)."""
    from edgeml.pipeline import load_recipe, run_pipeline

    recipe = load_recipe(recipe_file, out=out)
    if dry_run:
        click.echo(recipe.to_toml(), nl=False)
        return
    _check_folder(recipe, recipe_file)
    quiet = ctx.obj.get("quiet") if ctx.obj else False
    _finish(ctx, run_pipeline(recipe, progress=None if quiet else status), as_json)
