"""edgeml estimate MODEL --target T | edgeml estimate --fit RESULTS.json ... --target T [-o PROFILE.toml]"""

from __future__ import annotations

import click

from edgeml._units import format_ms
from edgeml.cli._options import input_shape_option, print_config_option, print_config_requested
from edgeml.cli._options import print_config as show_config
from edgeml.cli._out import emit_json, table
from edgeml.options import Precision


@click.command("estimate")
@click.argument("model", required=False, type=click.Path())
@click.option("--target", required=True, metavar="NAME|PROFILE.toml", help="Board to estimate for.")
@click.option("--precision", type=click.Choice(Precision.values()),
              help="[default: int8 for quantized models / Edge TPU, fp16 on Jetson GPUs, else fp32]")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: the board's cores].")
@click.option("--fit", "fit_files", multiple=True, type=click.Path(), metavar="RESULTS.json",
              help="Refit the target's coefficients from your measured edgeml bench results (repeatable).")
@click.option("-o", "--output", "out", type=click.Path(), help="With --fit: write the profile with the new "
                                                                "coefficients here.")
@click.option("--force", is_flag=True, help="Overwrite -o if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema edgeml.estimate/1).")
@input_shape_option
@print_config_option
def estimate_cmd(model, target, precision, threads, fit_files, out, force, as_json, input_shapes):
    """Estimate MODEL's latency and energy per inference on a board you do not have.

    Always an estimate: dense and depthwise MACs at the board's peak (thread scaling), a per-layer term, on
    top of the runtime's own floor (invoke + per-op overhead, published/measured, in the profile's
    [overhead]). For the Edge TPU: the predicted compiler plan (edgeml compile MODEL --plan), weights beyond
    the parameter cache streamed over the link, and CPU-fallback ops costed on the host board's profile; a
    compiled *_edgetpu.tflite gets a labelled lower bound. Models whose MACs are partial (unknown dims,
    uncounted recurrent ops) are refused. With --fit, refit from your own edgeml bench results measured on
    the same kind of machine (never more coefficients than independent points; leave-one-out error).
    """
    from edgeml.errors import EdgeMLError
    from edgeml.targets import estimate as est
    from edgeml.targets import estimate_fit as est_fit

    if print_config_requested() and fit_files:
        return show_config("estimate", "edgeml.targets.estimate_fit.fit_from_bench",
                           dict(results=list(fit_files), target=target, precision=precision, out=out))
    if fit_files:
        from edgeml._io import check_output, write_bytes_atomic
        from edgeml.targets import load_profile

        out_path = check_output(out, inputs=[model, *fit_files], force=force) if out else None
        r = est_fit.fit_from_bench(list(fit_files), target, precision)
        if out_path:
            write_bytes_atomic(out_path, est_fit.profile_with_fit(load_profile(target), r).encode())
        if as_json:
            emit_json(r.to_dict())
            return
        rows = [[e["model"], format_ms(e["measured_ms"]), format_ms(e["estimated_ms"]), f"{100 * e['error']:+.1f}%",
                 "n/a" if e["loo_error"] is None else f"{100 * e['loo_error']:+.1f}%"] for e in r.errors]
        held = ("no held-out error with one point" if r.median_abs_error is None else
                f"leave-one-out median |error| {100 * r.median_abs_error:.1f}% (in-sample "
                f"{100 * r.median_abs_error_in_sample:.1f}%)")
        click.echo(f"fitted {r.target} {r.precision}: {r.n_coefficients} coefficient(s) {r.coef} on {r.points} points "
                   f"({r.independent_points} independent); {held}" + (f"; wrote {out_path}" if out_path else ""))
        click.echo(table(rows, ["model", "measured", "estimated", "error", "held-out error"], "lrrrr"))
        return
    if not model:
        raise EdgeMLError("give a MODEL to estimate, or --fit RESULTS.json", hint="edgeml estimate m.tflite "
                                                                                    "--target rpi4")
    from edgeml.options import EstimateOptions

    options = EstimateOptions(target=target, precision=precision, threads=threads, input_shapes=input_shapes)
    if print_config_requested():
        return show_config("estimate", "edgeml.estimate", dict(model=model, **options.to_dict()))
    e = est.estimate(model, options=options)
    if as_json:
        emit_json(e.to_dict())
        return
    click.echo(render_estimates({"models": [{"name": e.model, "estimate": e.to_dict()}]}))


def render_estimates(d: dict) -> str:
    from edgeml.cli.flags import to_flags

    lines = []
    for m in d["models"]:
        e = m["estimate"]
        energy = f", {e['energy_mj']:.1f} mJ/inference at {e['power_w']:g} W" if e.get("energy_mj") else ""
        ms = ">= " * bool(e.get("lower_bound")) + format_ms(e["ms"])
        lines.append(f"ESTIMATE (not measured) {m['name']} on {e['target']}: {ms}, {e['precision']}"
                     f"{', ' + str(e['threads']) + ' threads' if e.get('threads') else ''}{energy}")
        lines.append(f"  basis: {to_flags(e['basis'])}")
        lines.append("  " + ", ".join(f"{k} {v:.3g}" for k, v in e["breakdown"].items()))
        rows = [[o["name"][:48], o["op"], f"{100 * o['share']:.1f}%", format_ms(o["ms"])] for o in e["top_ops"][:5]]
        if rows:
            lines.append("  " + table(rows, ["top ops", "op", "MACs", "time"], "llrr").replace("\n", "\n  "))
        lines += [f"  note: {to_flags(n)}" for n in e.get("notes", [])]
    return "\n".join(lines)
