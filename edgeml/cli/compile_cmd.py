"""edgeml compile MODEL --target coral-usb [--plan] [--json]"""

from __future__ import annotations

import click

from edgeml.cli._options import print_config as show_config
from edgeml.cli._options import print_config_option, print_config_requested
from edgeml.cli._out import emit_json, table


@click.command("compile")
@click.argument("model", type=click.Path())
@click.option("--target", default="coral-usb", show_default=True, help="An Edge TPU target.")
@click.option("-o", "--output-dir", "out_dir", type=click.Path(), help="Folder for the compiled model [default: "
                                                                         "beside MODEL].")
@click.option("--plan", "plan_only", is_flag=True, help="Predict op by op what edgetpu_compiler will map (no "
                                                         "compiler needed); writes nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@print_config_option
def compile_cmd(model, target, out_dir, plan_only, as_json):
    """Compile a full-int8 .tflite for the Edge TPU with edgetpu_compiler (MODEL_edgetpu.tflite).

    With --plan, predict the mapping instead: which ops run on the Edge TPU, which stay on the CPU and why
    (rules with their sources: edgeml/targets/profiles/rules/edgetpu_ops.toml), and how many weight bytes
    fit the on-chip parameter cache or stream over the link. The compiler is a Coral tool for x86-64 Linux
    (apt package edgetpu-compiler); when it runs, its log is compared with the plan.
    """
    if print_config_requested():
        if plan_only:
            return show_config("compile", "edgeml.targets.edgetpu_plan.plan", dict(model=model, target=target))
        return show_config("compile", "edgeml.targets.edgetpu.compile_edgetpu",
                           dict(model=model, target=target, out_dir=out_dir))
    from edgeml.targets.edgetpu_plan import plan

    if plan_only:
        p = plan(model, target=target)
        if as_json:
            emit_json(p.to_dict())
            return
        click.echo(render_plan(p))
        return
    from edgeml.targets.edgetpu import compile_edgetpu

    r = compile_edgetpu(model, target=target, out_dir=out_dir)
    if as_json:
        emit_json(r)
        return
    click.echo(f"wrote {r['output']}: {r['ops_on_edgetpu']} op(s) on the Edge TPU, {r['ops_on_cpu']} on the CPU")
    cmp = r.get("plan_comparison")
    if cmp:
        click.echo("plan vs compiler: " + ("agree" if cmp["agree"] else "DISAGREE"))
        for d in cmp["by_op"]:
            click.echo(f"  {d['op']}: predicted {d['predicted_edgetpu']} TPU / {d['predicted_cpu']} CPU, compiler "
                       f"{d['compiler_edgetpu']} / {d['compiler_cpu']} ({'; '.join(d['compiler_status'])})")
    click.echo(r["log"].strip())


def render_plan(p) -> str:
    from edgeml.cli.flags import to_flags

    lines = [to_flags(p.summary())]
    rows = [[str(o.index), o.op, o.name[:40], o.where, to_flags(o.reason)[:90]] for o in p.ops]
    if rows:
        lines.append(table(rows, ["#", "op", "output", "runs on", "why"], "rllll"))
    lines.append(f"parameter cache {p.cache_bytes / 2**20:.2f} MiB: {p.cached_weight_bytes / 2**20:.2f} MiB cached, "
                 f"{p.streamed_weight_bytes / 2**20:.2f} MiB streamed over the link every inference")
    lines += [f"blocker: {to_flags(b)}" for b in p.blockers]
    lines += [f"note: {to_flags(n)}" for n in p.notes]
    lines.append("prediction from documented rules (profiles/rules/edgetpu_ops.toml); edgetpu_compiler decides")
    return "\n".join(lines)
