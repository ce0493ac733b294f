"""Reading fleet results back (edgeml report / edgeml check): ``fleet.json`` or the folder holding it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError


def load_fleet_results(path: str | Path) -> list[dict[str, Any]]:
    """The per-board ``edgeml.bench/1`` records of a fleet run (a results folder or its fleet.json); a
    single bench JSON is accepted too (one record)."""
    p = Path(path)
    if p.is_dir():
        p = p / "fleet.json"
    if not p.is_file():
        raise EdgeMLError(f"{p}: no fleet results there", hint="pass the folder a fleet bench wrote "
                                                                "(`results`), or its fleet.json")
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgeMLError(f"{p}: not JSON ({exc})") from exc
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == "edgeml.bench/1":
        return [data]
    if schema != "edgeml.fleet/1" or not isinstance(data.get("records"), list):
        raise EdgeMLError(f"{p}: not fleet results (schema {schema!r})", hint="expected edgeml.fleet/1 from "
                                                                              "a fleet bench (`fleet`)")
    return data["records"]


def board_label(record: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The target name, with the board added when several boards of the fleet share that target."""
    same = [r for r in records if r.get("target") == record.get("target")]
    board = record.get("board") or record.get("where")
    label = f"{record['target']} ({board})" if len(same) > 1 and board else record["target"]
    return label + " (emulated)" if (record.get("environment") or {}).get("emulated") else label


def _sha(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fleet_latencies(records: list[dict[str, Any]], model: str | Path, target: str, percentile: str
                    ) -> list[tuple[str, float, str]]:
    """(board, value in ms, detail) for every board of ``target`` that measured ``model`` (matched by content
    when the results carry it, else by path). A budget for a target no board measured is an error."""
    from edgeml.targets import load_profile

    want = load_profile(target).name
    p = Path(model)
    sha = _sha(p)
    out = []
    boards = [r for r in records if r.get("target") == want]
    if not boards:
        raise EdgeMLError(f"no board of target {want} in the fleet results",
                          hint="targets there: " + (", ".join(sorted({str(r.get('target')) for r in records}))
                                                    or "none") + "; set the budget's target = \"...\"")
    emulated = [r for r in boards if (r.get("environment") or {}).get("emulated")]
    for r in boards:
        if r in emulated:  # an emulator's latency is never a board's
            continue
        for m in r.get("models", []):
            if m.get("role") == "reference" or not m.get("latency_ms"):
                continue
            same = m.get("sha256") == sha if m.get("sha256") and sha else \
                Path(str(m.get("path"))).resolve() == p.resolve()
            if same:
                lat = m["latency_ms"]
                out.append((r.get("board") or r.get("where") or "?", float(lat[percentile]),
                            f"measured on {r.get('board') or '?'} ({r.get('where')}), {lat.get('n')} runs"))
    if not out and emulated and len(emulated) == len(boards):
        raise EdgeMLError(f"{p.name}: the only {want} results are emulated; an emulator's latency is not checked "
                          "against a board budget", hint=f"measure on a real {want} board")
    if not out:
        raise EdgeMLError(f"{p.name}: no board of target {want} measured it in the fleet results",
                          hint=f"run: `edgeml.bench({str(p)!r}, fleet=\"FLEET.toml\", target={want!r})`")
    return out
