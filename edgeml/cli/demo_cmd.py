"""edgeml demo"""

from __future__ import annotations

import click

from edgeml.cli._out import emit_json, status, table


@click.command("demo")
@click.option("-o", "--output", "out_dir", default="edgeml-demo", show_default=True, type=click.Path(),
              help="Run folder for the demo's models, results, report.html and summary.json.")
@click.option("--epochs", type=click.IntRange(1, 200), default=15, show_default=True, help="Training epochs.")
@click.option("--prune-epochs", type=click.IntRange(1, 200), default=5, show_default=True,
              help="Fine-tuning epochs after channel pruning.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (schema edgeml.demo/1).")
@click.pass_context
def demo_cmd(ctx, out_dir: str, epochs: int, prune_epochs: int, as_json: bool) -> None:
    """The whole pipeline on a CNN it trains itself on builtin digits.

    Train (cost recorded) -> channel-prune 50 % + fine-tune -> TFLite and ONNX -> int8 -> bench every variant
    on this machine -> estimate rpi4, coral-usb, jetson-orin-nano -> report.html -> budget check.
    Offline, about a minute on 2 cores; every number is measured or labelled as estimated.
    """
    from edgeml._io import check_outputs
    from edgeml.demo import run_demo

    check_outputs([], folders=[out_dir])  # an existing file (or device) there is refused before any work
    quiet = ctx.obj.get("quiet") if ctx.obj else False
    s = run_demo(out_dir, epochs=epochs, prune_epochs=prune_epochs, progress=None if quiet else status)
    if as_json:
        emit_json(s)
        return
    from edgeml._units import format_ms as _ms
    from edgeml.formats.common import human_bytes, human_count

    t = s["training"]
    click.echo(f"\ntrained in {t['wall_s']:.1f} s: {t['samples']} samples x {t['epochs']} epochs, "
               f"~{human_count(t['flops'])}FLOPs ({t['flops_basis']})")
    targets = [r["target"] for r in s["asymmetry"]]
    rows = []
    for name, v in s["variants"].items():
        marks = {"measured": "", "estimated": "*", "estimated, extrapolated": "†"}
        lat = [_ms(v["latency_ms"][tg]["ms"]) + marks[v["latency_ms"][tg]["kind"]] if tg in v["latency_ms"] else "—"
               for tg in targets]
        rows.append([name, human_bytes(v["size_bytes"] or 0), human_count(v["macs"] or 0),
                     f"{100 * v['accuracy']:.2f}%" if v["accuracy"] is not None else "—", *lat])
    click.echo("\nvariants (* = estimated, no board measured; † = estimated far outside the published models the "
               "estimate was fitted on: a rough guide only)")
    click.echo(table(rows, ["model", "size", "MACs", "top-1", *targets], "l" + "r" * (3 + len(targets))))
    rows = [[r["target"], r["kind"], _ms(r["latency_ms"]), human_count(r["break_even_flops"] or 0),
             human_count(r["break_even_time"] or 0)] for r in s["asymmetry"]]
    click.echo(f"\nthe cheap-inference asymmetry ({s['deploy']}): training costs as much as N inferences")
    click.echo(table(rows, ["target", "kind", "latency", "N (FLOPs)", "N (time)"], "llrrr"))
    if s["check"]:
        from edgeml.check import Item, fmt_value

        rows = []
        for i in s["check"]["items"]:
            item = Item(**{k: i[k] for k in ("model", "budget", "limit", "measured", "unit", "passed", "detail",
                                             "kind")})
            rows.append([i["budget"], fmt_value(item, item.limit), fmt_value(item, item.measured), item.status])
        click.echo("\nbudget check:")
        click.echo(table(rows, ["budget", "limit", "measured", "status"], "lrrl"))
    click.echo(f"\ndone in {s['seconds']:.0f} s; open {s['report']} (summary in {s['out_dir']}/summary.json)")
