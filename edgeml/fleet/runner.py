"""bench_fleet(): every model on every board of a fleet, in parallel, surviving board faults.

One job = one model on one board (the existing self-contained runner, via ``edgeml.bench.harness.bench``);
a board runs ``concurrency`` jobs at once over its one multiplexed ssh connection; boards run side by side.
Faults: a board that is unreachable, times out or drops the connection (reboot) is retried once after
``retry_delay`` s (a dropped connection: once the board answers again, waiting up to ``reconnect_wait`` s
for a reboot), then reported; the other boards' results are kept. Each finished job is saved under
``out_dir/jobs/`` keyed by content (model bytes, data, settings, board), so a re-run does only what is missing.
Results are merged per board into one ``edgeml.bench/1`` record (``out_dir/<board>.json``) and a summary
``out_dir/fleet.json`` (``edgeml.fleet/1``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml import __version__
from edgeml.errors import EdgeMLError
from edgeml.fleet.inventory import Board, Fleet
from edgeml.fleet.jobs import INSTALL, NEEDS, Failure, Job, classify, content_sha, job_file, parallel, run_jobs
from edgeml.options import BenchOptions


@dataclass
class FleetResult:
    records: list[dict[str, Any]]  # one edgeml.bench/1 per board that measured at least one model
    failures: list[Failure]
    boards: list[dict[str, Any]]
    jobs: dict[str, int] = field(default_factory=dict)  # total, resumed, ran, failed
    wall_s: float = 0.0
    out_dir: str | None = None

    @property
    def complete(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        by_target: dict[str, list[str]] = {}
        for r in self.records:  # the boards that measured each target, in inventory order
            by_target.setdefault(r["target"], []).append(r["board"])
        return {"schema": "edgeml.fleet/1", "edgeml": __version__, "complete": self.complete, "boards": self.boards,
                "jobs": self.jobs, "wall_s": self.wall_s, "failures": [asdict(f) for f in self.failures],
                "by_target": by_target, "records": self.records}





def _key(board: Board, model_sha: str, settings: dict[str, Any]) -> str:
    blob = json.dumps({"model": model_sha, "board": [board.name, board.label, board.target, board.python],
                       "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()

def preflight_fleet(models: list[str | Path], fleet: Fleet, reference: str | Path | None = None) -> list[Any]:
    """Every model can run on every board's target profile (format, Edge TPU compilation): else one clear
    error naming the board, before any connection is made. Returns the opened artifacts."""
    from edgeml.artifact import ModelArtifact
    from edgeml.bench.harness import preflight
    from edgeml.targets import load_profile

    if not fleet.boards:
        raise EdgeMLError("the fleet has no boards to run on", hint="check `board` / `target` against the inventory")
    arts = [ModelArtifact.open(m) for m in models]
    extra = [ModelArtifact.open(reference)] if reference else []
    for b in fleet.boards:
        profile = load_profile(b.target)
        for a in arts + extra:
            try:
                preflight(a, profile)
            except EdgeMLError as exc:
                raise EdgeMLError(f"board {b.name} ({b.target}, {b.where}): {exc.message}",
                                  hint=(exc.hint + "; " if exc.hint else "") + "or leave that board out with "
                                       "`board=NAME` / `target=T`") from exc
    return arts


def bench_fleet(models: list[str | Path], fleet: Fleet, *, out_dir: str | Path | None = None, runs: int = 50,
                warmup: int = 5, min_time: float = 0.0, threads: int | None = None, data: Any = None,
                reference: str | Path | None = None, input_shapes: Any = None, timeout: float | None = None,
                retries: int = 1, retry_delay: float = 5.0, reconnect_wait: float = 90.0, fresh: bool = False,
                progress: Callable[[str], None] | None = None) -> FleetResult:
    """Benchmark ``models`` on every board of ``fleet`` in parallel; see the module docstring.

    ``out_dir`` keeps per-job results (a re-run resumes; ``fresh=True`` discards them first); without it a
    temporary folder is used and nothing is resumable. ``timeout`` bounds one job (one model on one board).
    Raises EdgeMLError before any work when a model cannot run on a board's target or a board's Python lacks
    the runtime a model needs.
    """
    t0 = time.monotonic()
    lock = threading.Lock()

    def say(msg: str) -> None:
        if progress:
            with lock:
                progress(msg)

    if not models:
        raise EdgeMLError("no model given", hint="`edgeml.bench(MODEL, ..., fleet=\"fleet.toml\")`")
    # one options object for every job (checked now, before any work); each job sets its board's target and host
    opts = BenchOptions(runs=runs, warmup=warmup, min_time=min_time, threads=threads, data=data, reference=reference,
                        input_shapes=input_shapes, timeout=timeout)
    arts = preflight_fleet(models, fleet, reference)
    settings = {"runs": runs, "warmup": warmup, "min_time": min_time, "threads": threads, "data": str(data)
                if data is not None else None, "input_shapes": input_shapes,
                "data_sha": content_sha(Path(str(data))) if data is not None and Path(str(data)).is_file() else None,
                "reference": content_sha(Path(reference)) if reference else None}
    tmp = None
    if out_dir is None:
        out = Path(tmp := tempfile.mkdtemp(prefix="edgeml-fleet-"))
    else:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise EdgeMLError(f"{out}: exists and is not a folder", hint="fleet results go to a folder")
        if fresh and (out / "jobs").is_dir():
            shutil.rmtree(out / "jobs")
        out.mkdir(parents=True, exist_ok=True)
    shas = [content_sha(a.path) for a in arts]
    jobs = [Job(b, k, a.path, _key(b, sha, settings)) for b in fleet.boards for k, (a, sha) in
            enumerate(zip(arts, shas))]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    for j in jobs:
        f = job_file(out, j)
        if f.is_file():
            try:
                done[(j.board.name, j.index)] = json.loads(f.read_text())["result"]
            except (ValueError, KeyError, OSError):
                pass  # a damaged file is measured again
    pending = [j for j in jobs if (j.board.name, j.index) not in done]
    resumed = len(done)
    if resumed:
        say(f"resuming: {resumed} of {len(jobs)} result(s) already in {out}, {len(pending)} to measure")
    failures: list[Failure] = []
    bugs: list[BaseException] = []
    try:
        if pending:
            run_jobs(pending, fleet, out, done, failures, bugs, say, opts, retries, retry_delay, arts, reconnect_wait)
        if bugs:
            raise bugs[0]
        records, boards = _merge(fleet, arts, done, failures)
        result = FleetResult(records=records, failures=failures, boards=boards,
                             jobs={"total": len(jobs), "resumed": resumed, "ran": len(done) - resumed,
                                   "failed": len(jobs) - len(done)},
                             wall_s=round(time.monotonic() - t0, 3), out_dir=None if tmp else str(out))
        if tmp is None:
            from edgeml._io import json_text, write_bytes_atomic

            for rec in records:
                write_bytes_atomic(out / f"{rec['board']}.json", (json_text(rec) + "\n").encode())
            write_bytes_atomic(out / "fleet.json", (json_text(result.to_dict()) + "\n").encode())
        return result
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _merge(fleet: Fleet, arts: list[Any], done: dict, failures: list[Failure]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One edgeml.bench/1 record per board (models in the order given), and a status line per board."""
    records, boards = [], []
    for b in fleet.boards:
        parts = [done[(b.name, k)] for k in range(len(arts)) if (b.name, k) in done]
        failed = [f for f in failures if f.board == b.name]
        boards.append({**b.to_dict(), "measured": len(parts), "of": len(arts),
                       "status": "ok" if len(parts) == len(arts) else ("partial" if parts else "failed"),
                       "errors": sorted({f"{f.kind}: {f.error}" for f in failed})})
        if not parts:
            continue
        models, ref = [], None
        for p in parts:
            for m in p["models"]:
                if m.get("role") == "reference":
                    ref = ref or m
                else:
                    models.append(m)
        base = (models[0].get("latency_ms") or {}).get("p50")
        for m in models:
            lat = m.get("latency_ms")
            m["ratio_to_first"] = lat["p50"] / base if lat and base else None
        first = parts[0]
        notes = list(dict.fromkeys(n for p in parts for n in p.get("notes", [])))
        if len(models) > 1:
            notes.append("fleet: each model was measured in its own run on this board (not interleaved)")
        if len(parts) < len(arts):
            missing = [arts[k].path.name for k in range(len(arts)) if (b.name, k) not in done]
            notes.append(f"fleet: not measured on this board: {', '.join(missing)} (re-run to resume)")
        records.append({**first, "board": b.name, "where": b.label, "models": models + ([ref] if ref else []),
                        "settings": {**first["settings"], "interleaved": False}, "notes": notes})
    return records, boards


def doctor_fleet(fleet: Fleet, *, timeout: float = 120.0, progress: Callable[[str], None] | None = None
                 ) -> list[dict[str, Any]]:
    """Check every board in parallel: reachable, Python, numpy, and the runtimes its target profile needs.
    One dict per board: name, target, host, ok, problems, doctor (the board's edgeml.doctor/1) or error."""
    from edgeml.targets import load_profile
    from edgeml.targets.remote import doctor

    out: list[dict[str, Any]] = [{} for _ in fleet.boards]
    lock = threading.Lock()

    def one(k: int, b: Board) -> None:
        row: dict[str, Any] = {**b.to_dict(), "ok": False, "problems": []}
        try:
            d = doctor(b.ssh_target(), timeout=timeout)
        except EdgeMLError as exc:
            row.update(error=exc.message, hint=exc.hint, problems=[classify(exc) or "error"])
        else:
            mods = d.get("modules") or {}
            profile = load_profile(b.target)
            problems = [] if mods.get("numpy") else ["no numpy (pip3 install numpy)"]
            runs = [f for f in profile.formats if f in NEEDS and any(mods.get(m) for m in NEEDS[f])]
            if not runs:  # one runtime of the target's formats is enough; the rest is listed
                problems.append("no runtime for " + " or ".join(profile.formats) + " (" +
                                " or ".join(INSTALL[f] for f in profile.formats if f in INSTALL) + ")")
            row["formats"] = runs
            if profile.kind == "edgetpu" and not d.get("libedgetpu"):
                problems.append("no libedgetpu (install libedgetpu1-std)")
            row.update(doctor=d, problems=problems, ok=not problems)
        out[k] = row
        if progress:
            with lock:
                progress(f"[{b.name}] " + ("ok" if row["ok"] else "; ".join(row["problems"]) +
                                           (f": {row['error']}" if row.get("error") else "")))

    bugs: list[BaseException] = []
    parallel([functools.partial(one, k, b) for k, b in enumerate(fleet.boards)], bugs)
    if bugs:
        raise bugs[0]
    return out
