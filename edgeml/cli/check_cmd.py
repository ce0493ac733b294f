"""edgeml check [MODEL ...] [--budget FILE] [--max-size ...] — CI gates"""

from __future__ import annotations

from pathlib import Path

import click

from edgeml.cli._options import input_shape_option, print_config_option, print_config_requested
from edgeml.cli._options import print_config as show_config
from edgeml.cli._out import emit_json, status, table
from edgeml.cli.flags import to_flags
from edgeml.options import Percentile


@click.command("check")
@click.argument("models", nargs=-1, type=click.Path())
@click.option("--budget", "budget_file", type=click.Path(), help="Budget TOML ([defaults] + [[budget]] tables) "
              "[default: [tool.edgeml] in ./pyproject.toml when no MODEL is given].")
@click.option("--max-size", metavar="SIZE", help="Largest file size, e.g. 300KiB, 1.5MB.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0), help="Largest latency in ms (see --percentile).")
@click.option("--percentile", type=click.Choice(Percentile.values()), default="p50",
              show_default=True, help="Latency statistic the budget applies to.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), help="Lowest top-1 on --data (a fraction).")
@click.option("--max-accuracy-drop", type=click.FloatRange(0, 1), help="Largest top-1 drop vs --baseline.")
@click.option("--baseline", type=click.Path(), help="Model the accuracy drop is measured against.")
@click.option("--target", default="host", show_default=True, help="Target for latency (a board without --host "
                                                                   "is checked against the labelled estimate).")
@click.option("--host", metavar="USER@ADDR[:PORT]", help="Measure latency on this board over SSH.")
@click.option("--data", metavar="SPEC", help="Labelled data for accuracy budgets.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Latency: fresh-process runs whose median is compared (noise is reported).")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs per repeat.")
@click.option("--junit", type=click.Path(), help="Write JUnit XML (one test case per budget).")
@click.option("--markdown", "md", type=click.Path(), help="Write a Markdown summary for a pull-request comment.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.check/1).")
@input_shape_option
@click.option("--results", "fleet_results", type=click.Path(), metavar="DIR|fleet.json",
              help="Check latency budgets against these fleet results (edgeml bench --fleet): every board of "
                   "the budget's target, instead of measuring again.")
@print_config_option
@click.pass_context
def check_cmd(ctx, models, budget_file, max_size, max_latency_ms, percentile, min_accuracy, max_accuracy_drop,
              baseline, target, host, data, repeat, runs, junit, md, as_json, input_shapes, fleet_results=None):
    """Fail CI when a model is too big, too slow or not accurate enough.

    Exit codes: 0 all budgets met, 1 a budget exceeded, 2 usage error (incl. a malformed budget file),
    3 error. With GITHUB_ACTIONS=true failures are also printed as ::error annotations.

    \b
    Examples:
      edgeml check model_int8.tflite --max-size 300KiB --max-latency-ms 5 --percentile p90
      edgeml check model_int8.tflite --min-accuracy 0.95 --data builtin:digits?split=test
      edgeml check --budget budgets.toml --junit check.xml --markdown check.md
      edgeml check --budget budgets.toml --results fleet-results   # budgets per target, every board
    """
    from edgeml._io import write_bytes_atomic
    from edgeml.check import (
        Budget,
        BudgetError,
        github_annotations,
        junit_xml,
        load_budgets,
        markdown,
        parse_size,
        run_check,
    )
    from edgeml.errors import CheckFailed
    from edgeml.options import CheckOptions

    quiet = ctx.obj.get("quiet") if ctx.obj else False
    options = CheckOptions(repeat=repeat, runs=runs, input_shapes=input_shapes)
    if print_config_requested():  # the budget file (or pyproject.toml) is named, not read
        from dataclasses import asdict

        flag_budgets = [asdict(Budget(model=m, target=target, host=host, data=data, percentile=percentile,
                                      baseline=baseline, max_size=parse_size(max_size, "--max-size") if max_size
                                      else None, max_latency_ms=max_latency_ms, min_accuracy=min_accuracy,
                                      max_accuracy_drop=max_accuracy_drop, origin=f"flags for {m}").validate())
                        for m in models]
        files = [budget_file] if budget_file else [] if models else ["pyproject.toml"]
        return show_config("check", "edgeml.check", dict(budgets=files + flag_budgets, **options.to_dict(),
                                                          results=fleet_results, junit=junit, markdown=md))
    budgets = []
    if budget_file:
        budgets += load_budgets(budget_file)
    flags = dict(max_size=parse_size(max_size, "--max-size") if max_size else None, max_latency_ms=max_latency_ms,
                 min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop)
    if models:
        if not any(v is not None for v in flags.values()) and budget_file:
            raise BudgetError("MODEL arguments need budget flags (--max-size, --max-latency-ms, ...)",
                              hint="or list the models in the budget file only")
        given = {k for k, v in (("percentile", percentile != "p50"), ("target", target != "host"),
                                ("host", host), ("baseline", baseline), ("data", data)) if v}
        budgets += [Budget(model=m, target=target, host=host, data=data, percentile=percentile, baseline=baseline,
                           origin=f"flags for {m}", **flags).validate().refuse_unused(given) for m in models]
    elif any(v is not None for v in flags.values()):
        raise BudgetError("budget flags need a MODEL", hint="edgeml check MODEL --max-size 300KiB")
    else:  # budgets from a file only: these flags shape flag budgets and would change nothing
        given = [f for f, v in (("--target", target != "host"), ("--host", host), ("--data", data),
                                ("--percentile", percentile != "p50"), ("--baseline", baseline)) if v]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise BudgetError(f"{', '.join(given)} {verb} to budgets given by flags (with a MODEL), not to a budget "
                              "file's", hint="set them in the budget file ([defaults] or a [[budget]]), or give "
                                             "MODEL with budget flags")
    if not budgets:
        from edgeml.check import pyproject_budgets

        budgets = pyproject_budgets("pyproject.toml") or []
        if not budgets:
            raise BudgetError("no budgets", hint="pass MODEL with --max-size/--max-latency-ms/--min-accuracy, "
                                                 "--budget FILE, or add [tool.edgeml] to pyproject.toml")
    if junit or md:  # before any work: reports never replace an input, a folder or a device
        from edgeml._io import check_outputs

        check_outputs([junit, md], inputs=[budget_file, "pyproject.toml" if not budget_file else None,
                                           *[p for b in budgets for p in (b.model, b.baseline, b.data)]],
                      force=True)
    fleet = None
    if fleet_results:
        from edgeml.fleet import load_fleet_results

        fleet = load_fleet_results(fleet_results)
    result = run_check(budgets, options=options, progress=None if quiet else status, results=fleet)
    if junit:
        write_bytes_atomic(junit, junit_xml(result).encode())
    if md:
        write_bytes_atomic(md, markdown(result).encode())
    if as_json:
        emit_json(result.to_dict())
    else:
        from edgeml.check import fmt_value

        rows = [[Path(i.model).name, i.budget, fmt_value(i, i.limit),
                 fmt_value(i, i.measured) + (" (est.)" if i.kind == "estimated" else ""), i.status]
                for i in result.items]
        click.echo(table(rows, ["model", "budget", "limit", "measured", "status"], "llrrl"))
        for i in result.items:
            if i.detail and "runs" in i.detail:
                click.echo(f"  {Path(i.model).name}: {to_flags(i.detail)}")
    for line in github_annotations(result):
        click.echo(to_flags(line))
    if not result.passed:
        n = sum(not i.passed for i in result.items)
        raise CheckFailed(f"{n} of {len(result.items)} budget(s) exceeded")
