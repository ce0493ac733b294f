"""edgeml targets [NAME] [--json]"""

from __future__ import annotations

import click

from edgeml.cli._out import emit_json, table


@click.command("targets")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print profiles as JSON (schema edgeml.target/1).")
def targets_cmd(name, as_json):
    """List target profiles, or show one (NAME or a PROFILE.toml) with the source of every number.

    Profiles are data (edgeml/targets/profiles/*.toml); copy one and pass --target ./my-board.toml to
    describe your own board.
    """
    from edgeml.targets import list_profiles, load_profile

    profiles = [load_profile(name)] if name else list_profiles()
    if as_json:
        emit_json({"schema": "edgeml.targets/1", "targets": [p.to_dict() for p in profiles]} if not name
                  else profiles[0].to_dict())
        return
    if not name:
        rows = [[p.name, p.kind, p.runtime, ",".join(p.formats), "yes" if p.full_int8 else "no",
                 str(p.cores or "?"), p.description] for p in profiles]
        click.echo(table(rows, ["target", "kind", "runtime", "formats", "full int8", "cores", "description"]))
        return
    p = profiles[0]
    click.echo(f"{p.name}: {p.description}")
    also = ", ".join(r for r in p.runtimes if r != p.runtime)
    fields = [("kind", p.kind), ("runtime", p.runtime + (f" (also runs: {also})" if len(p.runtimes) > 1 else "")),
              ("formats", ", ".join(p.formats)), ("full int8", "required" if p.full_int8 else "no"),
              ("cores", f"{p.cores} @ {p.clock_ghz} GHz"), ("memory bandwidth", _v(p.bandwidth_gbs, "GB/s")),
              ("peak", ", ".join(f"{k} {v:g} GOP/s" for k, v in p.peak_gops.items()) or "unknown"),
              ("power idle/load", f"{_v(p.idle_w, 'W')} / {_v(p.load_w, 'W')}"),
              ("link", f"{p.link} {_v(p.link_gbs, 'GB/s')}" if p.link else "-"),
              ("Edge TPU param cache", _v(p.param_cache_mib, "MiB")),
              ("providers", ", ".join(p.providers) or "-")]
    click.echo(table([[k, v] for k, v in fields if v not in ("? ", "?")]))
    if p.sources:
        click.echo("\nsources:")
        for k, v in p.sources.items():
            click.echo(f"  {k}: {v}")


def _v(value, unit: str) -> str:
    return "?" if value is None else f"{value:g} {unit}"
