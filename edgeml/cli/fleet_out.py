"""The fleet side of ``edgeml bench --fleet`` and ``edgeml doctor --fleet``: run, render, exit code."""

from __future__ import annotations

import re

import click

from edgeml.cli._out import emit_json, status, table
from edgeml.cli.flags import to_flags

_COUNTER = re.compile(r"^\S+:\s+\d+ runs$")  # the runner's per-run counter: too chatty for many boards


def bench_fleet_cmd(models, *, inventory, boards, target, results, force, quiet, as_json, out_file, **opts) -> None:
    from edgeml._io import check_output, json_text, write_bytes_atomic
    from edgeml.errors import EdgeMLError
    from edgeml.fleet import bench_fleet, load_inventory

    fleet = load_inventory(inventory).select(names=list(boards) or None, targets=[target] if target else None)
    out_path = check_output(out_file, inputs=[*models, inventory], force=force) if out_file else None

    def show(line: str) -> None:
        if not _COUNTER.match(line.split("] ", 1)[-1]):
            status(line)

    r = bench_fleet(list(models), fleet, out_dir=results, fresh=force, progress=None if quiet else show, **opts)
    d = r.to_dict()
    if out_path:
        write_bytes_atomic(out_path, (json_text(d) + "\n").encode())
    if as_json:
        emit_json(d)
    else:
        from edgeml.cli.bench_cmd import render

        for t in dict.fromkeys(rec["target"] for rec in d["records"]):  # merged by target
            click.echo(f"== target {t} ==")
            for rec in (x for x in d["records"] if x["target"] == t):
                click.echo(f"[{rec['board']}] " + render(rec) + "\n")
        rows = [[b["name"], b["target"], b["host"], f"{b['measured']}/{b['of']}", b["status"],
                 to_flags("; ".join(b["errors"]))[:100]] for b in d["boards"]]
        click.echo(table(rows, ["board", "target", "host", "models", "status", "problem"], "llllll"))
        j = d["jobs"]
        click.echo(f"{j['ran']} measured now, {j['resumed']} resumed from {results}, {j['failed']} missing; "
                   f"{d['wall_s']:.1f} s")
    if r.failures:
        f = r.failures[0]
        raise EdgeMLError(f"{len(r.failures)} of {d['jobs']['total']} fleet measurement(s) missing; first: board "
                          f"{f.board}{' ' + f.model if f.model else ''}: {f.kind}: {f.error}",
                          hint=(f.hint + "; then " if f.hint else "") + "re-run the same command: only what is "
                               f"missing is measured (results in {results})")


def doctor_fleet_cmd(inventory, boards, timeout, as_json) -> None:
    from edgeml.errors import CheckFailed
    from edgeml.fleet import doctor_fleet, load_inventory

    fleet = load_inventory(inventory).select(names=list(boards) or None)
    rows = doctor_fleet(fleet, timeout=timeout, progress=None if as_json else status)
    if as_json:
        emit_json({"schema": "edgeml.doctor-fleet/1", "boards": rows})
    else:
        out = []
        for r in rows:
            d = r.get("doctor") or {}
            env, mods = d.get("environment") or {}, d.get("modules") or {}
            rt = ", ".join(m for m in ("ai_edge_litert", "tflite_runtime", "tensorflow", "onnxruntime") if mods.get(m))
            out.append([r["name"], r["target"], r["host"], "ok" if r["ok"] else "PROBLEM",
                        f"{env.get('arch', '-')}, py {env.get('python', '-')}" if d else "-", rt or "-",
                        to_flags("; ".join(r["problems"]) + (f": {r['error']}" if r.get("error") else ""))])
        click.echo(table(out, ["board", "target", "host", "status", "machine", "runtimes", "problem"], "lllllll"))
    bad = [r for r in rows if not r["ok"]]
    if bad:
        raise CheckFailed(f"{len(bad)} of {len(rows)} board(s) not ready: {', '.join(r['name'] for r in bad)}",
                          hint=next((r.get("hint") for r in bad if r.get("hint")), None) or
                          "see the problem column; edgeml doctor --host HOST shows one board in full")
