"""edgeml search MODEL --target T ... --calib SPEC --eval SPEC -o DIR"""

from __future__ import annotations

import click

from edgeml.cli._options import input_shape_option
from edgeml.cli._out import emit_json, status, table
from edgeml.cli.flags import to_flags


def _plan_text(plan, cfg) -> str:
    lines = [f"# {len(plan.trials)} trial(s) from {plan.space.origin} on a {plan.source_format} source"
             + (f"; {plan.skipped} left out by --max-trials" if plan.skipped else "")]
    for why, n in plan.dropped.items():
        lines.append(f"# dropped {n} combination(s): {to_flags(why)}")
    lines += [f"# {to_flags(n)}" for n in plan.notes]
    rows = []
    for target, names in plan.boards.items():
        lines.append(f"# {target}: measured on board(s) {', '.join(names)}")
    for k, t in enumerate(plan.trials, 1):
        prune = "—" if t.prune_method == "none" else f"{t.prune_method} {t.sparsity:g}"
        quant = t.mode if t.mode not in ("int8", "int16x8") else \
            f"{t.mode} {'per-channel' if t.per_channel else 'per-tensor'} {t.calib_method}"
        rows.append([str(k), t.name, prune, quant, t.format,
                     " ".join(n for n in plan.per_target if t.name in plan.per_target[n])])
    lines += ["# " + ln for ln in table(rows, ["#", "variant", "prune", "quantize", "format", "targets"],
                                        "rlllll").splitlines()]
    lines.append("\n# the space: `--dry-run > space.toml` saves it (this whole output is TOML); edit it, then "
                 "--space space.toml")
    lines.append(plan.space.to_toml().rstrip())
    return "\n".join(lines)


def _front_text(result) -> str:
    from edgeml._units import format_ms
    from edgeml.formats.common import human_bytes

    out = []
    for target, fr in result.fronts.items():
        out.append(f"\nPareto front on {target} (top-1 vs latency vs size), fastest first:")
        rows = [[("* " if p["name"] == result.best.get(target) else "  ") + p["name"],
                 "—" if p["accuracy"] is None else f"{p['accuracy']:.2%}",
                 format_ms(p["latency_ms"]) + ("" if p["kind"] == "measured" else f" ({p['kind']})"),
                 human_bytes(p["size_bytes"])] for p in fr]
        out.append(table(rows, ["variant", "top-1", "latency", "size"], "lrrr") if rows else "  (no variant with "
                   "a latency and a size on this target)")
        if result.manifest["budget"]:
            b = result.best.get(target)
            if b:
                out.append(f"best within the budgets on {target}: {b}")
            else:
                r = result.rankings.get(target)
                near = f" (closest: {r.best})" if r is not None and r.best else ""
                out.append(f"no variant meets the budgets on {target}{near}")
    return "\n".join(out)


@click.command("search")
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(),
              help="Search folder: trials, report.html, search.json. Re-running resumes it (required but with "
                   "--dry-run).")
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Target(s); repeat for several "
              "[default: host]. The host is measured, boards estimated (labelled) unless --fleet has them.")
@click.option("--calib", metavar="SPEC", help="Calibration data for the quantized variants.")
@click.option("--eval", "eval_spec", metavar="SPEC", help="Labelled data: top-1 of every variant.")
@click.option("--train", metavar="SPEC", help="Labelled data to fine-tune after pruning (else one-shot).")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Fine-tuning epochs.")
@click.option("--space", "space_file", type=click.Path(), metavar="SPACE.toml",
              help="The space: [prune] methods/sparsity, [quantize] modes/per_channel/methods/max_float_ops, "
                   "[format] formats [default: fits the model and targets; --dry-run prints it].")
@click.option("--max-trials", type=click.IntRange(min=1), help="Build at most N variants (the unpruned ones "
              "first, the pruned ones sampled with --seed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --max-trials sample.")
@click.option("--max-size", metavar="SIZE", help="Budget: largest model file, e.g. 300KiB.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), help="Budget: p50 latency per target.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), help="Budget: lowest top-1 on --eval.")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed runs per variant on the host.")
@click.option("--calib-samples", type=click.IntRange(min=1), help="Calibration samples [default: quantize's].")
@click.option("--executor", type=click.Choice(["auto", "ray", "sequential"]), default="auto", show_default=True,
              help="Where trials run: Ray if installed (auto), or one after another in this process.")
@click.option("--ray-address", metavar="ADDR", help="An existing Ray cluster (ray://HOST:10001 or HOST:6379); its "
              "nodes must read the data paths [default: a local Ray with --num-cpus].")
@click.option("--num-cpus", type=click.IntRange(min=1), help="CPUs of the local Ray (trials at once) "
              "[default: this machine's, at most 4].")
@click.option("--fleet", "fleet", type=click.Path(), metavar="INVENTORY", help="Board inventory: the searched "
              "targets with boards there are measured on them (one variant per board at a time), not estimated.")
@click.option("--dry-run", is_flag=True, help="Print the trials and the space (TOML), and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print search.json (schema edgeml.search/1).")
@input_shape_option
@click.pass_context
def search_cmd(ctx, model, out, targets, calib, eval_spec, train, epochs, space_file, max_trials, seed, max_size,
               max_latency_ms, min_accuracy, runs, calib_samples, executor, ray_address, num_cpus, fleet, dry_run,
               as_json, input_shapes):
    """Search prune x quantization x format variants for the Pareto front per target.

    Every variant is built (trials on Ray, or sequentially without it) and scored on --eval; then it is
    measured on the host (all variants interleaved, after the builds), on boards with --fleet, or estimated
    (labelled). The front (top-1 vs latency vs size) is listed per target with the best variant that meets
    the budgets (marked *). Results are cached by content hash: a
    re-run after an interruption, or with a wider space, builds only what is missing.

    \b
    Example:
      edgeml search model.keras --target host --target rpi4 --calib 'builtin:digits?split=train' \\
          --eval 'builtin:digits?split=test' --min-accuracy 0.9 --max-size 64KiB -o search/
    """
    from edgeml.errors import CheckFailed
    from edgeml.search.runner import SearchConfig, plan_search, search

    if not out and not dry_run:
        raise click.UsageError("Missing option '-o' / '--output' (the search folder).")

    budget = {k: v for k, v in (("max_size", max_size), ("max_latency_ms", max_latency_ms),
                                ("min_accuracy", min_accuracy)) if v is not None}
    if max_size is not None:
        from edgeml.check import parse_size

        parse_size(max_size)  # refused now, not after the search
    shapes = None
    if input_shapes:
        from edgeml.formats.shapes import format_input_shapes

        shapes = format_input_shapes(input_shapes)
    cfg = SearchConfig(model=model, out=out or "", targets=list(targets) or ["host"], calib=calib, eval=eval_spec,
                       train=train, epochs=epochs, space=space_file, max_trials=max_trials, seed=seed, budget=budget,
                       runs=runs, calib_samples=calib_samples, executor=executor, ray_address=ray_address,
                       num_cpus=num_cpus, input_shape=shapes, fleet=fleet)
    if dry_run:
        click.echo(_plan_text(plan_search(cfg), cfg))
        return
    from edgeml._io import check_outputs

    check_outputs([], inputs=[model, calib, eval_spec, train, space_file, fleet], folders=[out])
    quiet = ctx.obj.get("quiet") if ctx.obj else False
    result = search(cfg, progress=None if quiet else status)
    if as_json:
        emit_json(result.manifest)
    else:
        c = result.counts
        click.echo(f"{len(result.plan.trials)} trials: {c['built']} built now, {c['cached']} cached, "
                   f"{c['failed']} failed ({result.executor})")
        click.echo(_front_text(result))
        click.echo(f"\nsearch folder: {result.out} (search.json, report.html, trials/)")
    if not result.passed:
        raise CheckFailed("no variant meets the budgets on " + ", ".join(t for t, b in result.best.items() if not b))
