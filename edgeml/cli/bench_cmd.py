"""edgeml bench MODEL [MODEL ...] [--target T] [--host USER@ADDR[:PORT]]"""

from __future__ import annotations

import click

from edgeml._units import format_ms
from edgeml.cli._options import input_shape_option, print_config_option, print_config_requested
from edgeml.cli._options import print_config as show_config
from edgeml.cli._out import emit_json, status, table


def ssh_options(f):
    f = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                     help="With --host: give up on the board after this long (ssh killed, board cleaned up) "
                          "[default: sized to the run].")(f)
    f = click.option("--remote-python", default="python3", show_default=True,
                     help="Python 3 on the board (needs numpy and the board's runtime).")(f)
    f = click.option("--identity", type=click.Path(), help="SSH private key (else your ssh config/agent).")(f)
    f = click.option("--ssh-config", type=click.Path(), help="SSH client config file (else ~/.ssh/config).")(f)
    f = click.option("--host", metavar="[USER@]HOST[:PORT]",
                     help="Run on this board over SSH (BatchMode, your known_hosts).")(f)
    return f


def make_target(host, ssh_config, identity, remote_python):
    if not host:
        return None
    from edgeml.targets.remote import SSHTarget

    return SSHTarget.parse(host, config=ssh_config, identity=identity, python=remote_python)


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path())
@print_config_option
@click.option("--target", metavar="NAME|PROFILE.toml", help="Target profile [default: host]. Without --host, a "
                                                             "board target is estimated, never measured here.")
@ssh_options
@click.option("--runs", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Timed runs per model.")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=5, show_default=True, help="Untimed runs first.")
@click.option("--min-time", type=click.FloatRange(0, 86400), default=0.0, show_default=True,
              help="Keep timing until this many seconds have passed.")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads [default: the target's cores].")
@click.option("--data", metavar="SPEC", help="Data for each model (bound to its own inputs); labelled data gives "
                                            "top-1/top-5 of classifiers (fidelity with --reference).")
@click.option("--reference", type=click.Path(), help="Compare outputs with this model (e.g. the float parent).")
@click.option("--out", "out_file", type=click.Path(), help="Also write the JSON result to this file.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema edgeml.bench/1).")
@input_shape_option
@click.option("--fleet", "inventory", type=click.Path(), metavar="INVENTORY",
              help="Run on every board of this fleet inventory (fleet.toml or an Ansible INI) in parallel; "
                   "--target picks boards of that target, --timeout bounds each model on each board.")
@click.option("--board", "boards", multiple=True, metavar="NAME", help="With --fleet: only this board (repeatable).")
@click.option("--results", default="fleet-results", show_default=True, type=click.Path(),
              help="With --fleet: folder for per-board results; a re-run resumes what is missing (--force: "
                   "start over).")
@click.pass_context
def bench_cmd(ctx, models, target, host, ssh_config, identity, remote_python, timeout, runs, warmup, min_time,
              threads, data, reference, out_file, force, as_json, input_shapes, inventory=None, boards=(),
              results="fleet-results"):
    """Measure latency (and accuracy) of .tflite/.onnx MODELS on a target.

    Several models run interleaved (A B A B ...) so their ratio holds on a noisy machine. Latency is timed
    around invoke/run only; cold start (load + first inference) is reported separately. With --host the
    models, data and a self-contained runner are copied to the board over SSH and run with the board's
    own runtime (nothing of edgeml is installed there).

    \b
    Examples:
      edgeml bench model.tflite model_int8.tflite --data builtin:digits?split=test
      edgeml bench model_int8.tflite --reference model.tflite --threads 1 --runs 200
      edgeml bench model_edgetpu.tflite --target coral-usb --host pi@raspberrypi.local
      edgeml bench model.tflite --target rpi4          # no board: a labelled estimate
      edgeml bench a.tflite b.tflite --fleet fleet.toml  # every board, in parallel
    """
    from edgeml._io import check_output, json_text, write_bytes_atomic
    from edgeml.bench.harness import bench
    from edgeml.options import BenchOptions

    options = BenchOptions(target=target, host=make_target(host, ssh_config, identity, remote_python), runs=runs,
                           warmup=warmup, min_time=min_time, threads=threads, data=data, reference=reference,
                           timeout=timeout, input_shapes=input_shapes)
    if print_config_requested():
        return show_config("bench", "edgeml.bench", dict(models=list(models), **options.to_dict(), out=out_file))

    quiet = ctx.obj.get("quiet") if ctx.obj else False
    if inventory:
        if host or ssh_config or identity or remote_python != "python3":
            raise click.UsageError("--fleet takes its boards and ssh options from the inventory, not --host/"
                                   "--ssh-config/--identity/--remote-python")
        from edgeml.cli.fleet_out import bench_fleet_cmd

        return bench_fleet_cmd(models, inventory=inventory, boards=boards, target=target, results=results,
                               force=force, quiet=quiet, as_json=as_json, out_file=out_file, runs=runs, warmup=warmup,
                               min_time=min_time, threads=threads, data=data, reference=reference,
                               input_shapes=input_shapes, timeout=timeout)
    if boards or results != "fleet-results":
        raise click.UsageError(f"{'--board' if boards else '--results'} needs --fleet INVENTORY")
    if not host and (ssh_config or identity or remote_python != "python3"):  # else dropped without a word
        used = [f for f, v in (("--ssh-config", ssh_config), ("--identity", identity),
                               ("--remote-python", remote_python != "python3")) if v]
        raise click.UsageError(f"{', '.join(used)} set how to reach a board: they need --host USER@BOARD")
    out_path = check_output(out_file, inputs=[*models, reference, data], force=force) if out_file else None
    result = bench(list(models), options=options, progress=None if quiet else status)
    d = result.to_dict()
    if out_path:
        write_bytes_atomic(out_path, (json_text(d) + "\n").encode())
    if as_json:
        emit_json(d)
        return
    click.echo(render(d))
    if d["measured"] and str(target or "").startswith("coral"):
        from edgeml.cli.flags import to_flags
        from edgeml.errors import EdgeMLError
        from edgeml.targets.edgetpu_plan import plan

        for m in models:  # what ran on the Edge TPU and what stayed on the CPU
            try:
                click.echo(f"{m}: {to_flags(plan(m, target=target).summary())}")
            except EdgeMLError as exc:
                click.echo(f"{m}: Edge TPU plan not available ({to_flags(exc.message)})")


def render(d: dict) -> str:
    from edgeml.cli.flags import to_flags
    from edgeml.formats.common import human_bytes

    if not d["measured"]:
        from edgeml.cli.estimate_cmd import render_estimates

        # the first note (no board measured) is the ESTIMATE header's; the others: models not estimated,
        # options an estimate does not use
        return render_estimates(d) + "".join(f"\nnote: {to_flags(n)}" for n in d.get("notes", [])[1:])
    env = d["environment"] or {}
    head = (f"target {d['target']} - measured on {d['where']}: {env.get('board') or env.get('cpu') or '?'}, "
            f"{env.get('cores')} cores, {env.get('arch')}, governor {env.get('governor') or '?'}; "
            f"threads {d['settings']['threads'] or 'runtime default'}, {d['settings']['runs']} runs")
    if env.get("emulated"):
        head += (f"\nEMULATED ({env['emulated']}): the board's software ran, but these latencies are the "
                 "emulator's, not the board's")
    rows = []
    for m in d["models"]:
        lat = m.get("latency_ms")
        cold = m["cold_start"]
        acc = m.get("accuracy") or {}
        fid = m.get("fidelity") or {}
        rows.append([m["name"] + (" (reference)" if m.get("role") else ""), m["runtime"] +
                     (f"/{m['delegate']}" if m.get("delegate") else "") +
                     (f"/{m['providers'][0].replace('ExecutionProvider', '')}" if m.get("providers") else ""),
                     human_bytes(m["size_bytes"]),
                     format_ms(lat["p50"]) if lat else "-",
                     f"[{format_ms(lat['median_ci95'][0])}, {format_ms(lat['median_ci95'][1])}]" if lat else "-",
                     format_ms(lat["p90"]) if lat else "-", format_ms(lat["std"]) if lat else "-",
                     f"{m['ratio_to_first']:.2f}x" if m.get("ratio_to_first") else "-",
                     f"{format_ms(cold['load_ms'])} + {format_ms(cold['first_inference_ms'])}",
                     f"{100 * acc['top1']:.2f}%" if "top1" in acc else "n/a" if "not_applicable" in acc else "-",
                     f"{100 * fid['argmax_agreement']:.1f}%/{fid['cosine']:.4f}" if fid.get("argmax_agreement")
                     is not None else "-"])
    text = head + "\n\n" + table(rows, ["model", "runtime", "size", "p50", "p50 95% CI", "p90", "std",
                                        "vs first", "cold (load + 1st)", "top-1", "agree/cos"], "llrrrrrrrrr")
    for note in d.get("notes", []):
        text += f"\nnote: {to_flags(note)}"
    return text
