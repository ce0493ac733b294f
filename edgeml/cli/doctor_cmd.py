"""edgeml doctor [--host ...]"""

from __future__ import annotations

import click

from edgeml.cli._out import emit_json, table


@click.command("doctor")
@click.option("--host", metavar="[USER@]HOST[:PORT]", help="Check this board over SSH instead of this machine.")
@click.option("--ssh-config", type=click.Path(), help="SSH client config file (else ~/.ssh/config).")
@click.option("--identity", type=click.Path(), help="SSH private key.")
@click.option("--remote-python", default="python3", show_default=True, help="Python 3 on the board.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120, show_default=True,
              metavar="SECONDS", help="With --host: give up on the board after this long.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema edgeml.doctor/1).")
def doctor_cmd(host, ssh_config, identity, remote_python, timeout, as_json):
    """Report what a machine has for running models: Python, numpy, LiteRT, ONNX Runtime and its
    providers, libedgetpu, edgetpu_compiler, trtexec, CPU governor and temperatures."""
    from edgeml.cli.bench_cmd import make_target

    target = make_target(host, ssh_config, identity, remote_python)
    if target is None:
        from edgeml.targets.device_runner import doctor

        d = doctor()
    else:
        from edgeml.targets.remote import doctor

        d = doctor(target, timeout=timeout)
    if as_json:
        emit_json(d)
        return
    env, mods = d["environment"], d["modules"]
    yes = lambda ok, extra="": ("yes" + (f" ({extra})" if extra else "")) if ok else "no"  # noqa: E731
    rows = [["machine", f"{env.get('board') or env.get('cpu') or '?'} ({env['arch']}, {env['cores']} cores)"],
            ["os", env["os"]], ["python", env["python"]],
            ["numpy", yes(mods["numpy"], env.get("numpy") or "")],
            ["LiteRT (ai_edge_litert)", yes(mods["ai_edge_litert"], env["runtimes"].get("ai-edge-litert") or "")],
            ["tflite_runtime", yes(mods["tflite_runtime"], env["runtimes"].get("tflite-runtime") or "")],
            ["tensorflow", yes(mods["tensorflow"], env["runtimes"].get("tensorflow") or "")],
            ["onnxruntime", yes(mods["onnxruntime"], ", ".join(p.replace("ExecutionProvider", "")
                                                                  for p in d["onnxruntime_providers"]))],
            ["libedgetpu", d["libedgetpu"] or "no (Coral: install libedgetpu1-std)"],
            ["Edge TPU devices", ", ".join(d["edgetpu_devices"]) or "none on PCIe (USB ones show in lsusb)"],
            ["edgetpu_compiler", d["edgetpu_compiler"] or "no (x86-64 Linux only; apt install edgetpu-compiler)"],
            ["trtexec", d["trtexec"] or "no"], ["cpu governor", env.get("governor") or "unknown"],
            ["temperatures", ", ".join(f"{k} {v:.0f} C" for k, v in env["temperatures_c"].items()) or "unreadable"],
            ["throttled (vcgencmd)", env.get("throttled") or "n/a"]]
    click.echo(f"{host or 'this machine'}:")
    click.echo(table(rows))
