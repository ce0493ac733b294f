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
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml import __version__
from edgeml.errors import EdgeMLError, RemoteTimeout
from edgeml.fleet.inventory import Board, Fleet

# what each model format needs on the board (any one of the modules), as the runner imports them
NEEDS = {"tflite": ("ai_edge_litert", "tflite_runtime", "tensorflow"), "onnx": ("onnxruntime",)}
INSTALL = {"tflite": "pip3 install ai-edge-litert", "onnx": "pip3 install onnxruntime"}
UNREACHABLE = ("Connection refused", "timed out", "No route to host", "Could not resolve", "Name or service not known",
               "Network is unreachable", "Host is down", "Permission denied", "Host key verification failed")


@dataclass
class Failure:
    board: str
    target: str
    host: str
    model: str | None
    kind: str  # unreachable | timeout | connection lost | error
    error: str
    hint: str | None = None
    attempts: int = 0


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


@dataclass
class _Job:
    board: Board
    index: int
    model: Path
    key: str
    attempts: int = 0
    not_before: float = 0.0
    last_fault: str | None = None


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]
    for q in files:
        with open(q, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _key(board: Board, model_sha: str, settings: dict[str, Any]) -> str:
    blob = json.dumps({"model": model_sha, "board": [board.name, board.label, board.target, board.python],
                       "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _job_file(out: Path, job: _Job) -> Path:
    return out / "jobs" / job.board.name / f"{job.model.stem}-{job.key[:16]}.json"


def preflight_fleet(models: list[str | Path], fleet: Fleet, reference: str | Path | None = None) -> list[Any]:
    """Every model can run on every board's target profile (format, Edge TPU compilation): else one clear
    error naming the board, before any connection is made. Returns the opened artifacts."""
    from edgeml.artifact import ModelArtifact
    from edgeml.bench.harness import preflight
    from edgeml.targets import load_profile

    if not fleet.boards:
        raise EdgeMLError("the fleet has no boards to run on", hint="check --board / --target against the inventory")
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
                                       "--board NAME / --target T") from exc
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
    from edgeml.bench.harness import check_numbers

    t0 = time.monotonic()
    lock = threading.Lock()

    def say(msg: str) -> None:
        if progress:
            with lock:
                progress(msg)

    if not models:
        raise EdgeMLError("no model given", hint="edgeml bench MODEL [MODEL ...] --fleet fleet.toml")
    check_numbers(runs=runs, warmup=warmup, min_time=min_time, timeout=timeout)
    arts = preflight_fleet(models, fleet, reference)
    settings = {"runs": runs, "warmup": warmup, "min_time": min_time, "threads": threads, "data": str(data)
                if data is not None else None, "input_shapes": input_shapes,
                "data_sha": _sha(Path(str(data))) if data is not None and Path(str(data)).is_file() else None,
                "reference": _sha(Path(reference)) if reference else None}
    tmp = None
    if out_dir is None:
        out = Path(tmp := tempfile.mkdtemp(prefix="edgeml-fleet-"))
    else:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise EdgeMLError(f"{out}: exists and is not a folder", hint="fleet results go to a folder (--out DIR)")
        if fresh and (out / "jobs").is_dir():
            shutil.rmtree(out / "jobs")
        out.mkdir(parents=True, exist_ok=True)
    shas = [_sha(a.path) for a in arts]
    jobs = [_Job(b, k, a.path, _key(b, sha, settings)) for b in fleet.boards for k, (a, sha) in
            enumerate(zip(arts, shas))]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    for j in jobs:
        f = _job_file(out, j)
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
            _run(pending, fleet, out, done, failures, bugs, say, dict(
                runs=runs, warmup=warmup, min_time=min_time, threads=threads, data=data, reference=reference,
                input_shapes=input_shapes, timeout=timeout), retries, retry_delay, arts, reconnect_wait)
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


def _classify(exc: EdgeMLError) -> str | None:
    """The fault kind of a retryable failure (None: the job itself is wrong, retrying cannot help)."""
    from edgeml.targets.remote import SSHConnectionError

    if isinstance(exc, RemoteTimeout):
        return "timeout"
    if isinstance(exc, SSHConnectionError):  # refused, no route, no name, timed out: not there at all
        return "unreachable" if any(s in exc.message for s in UNREACHABLE) else "connection lost"
    return None


def _relay(say: Callable[[str], None], tag: str, host_prefix: str, line: str) -> None:
    """A runner progress line of one job, tagged with its board and model (the runner's own host tag dropped)."""
    say(f"{tag}: {line.strip().replace(host_prefix, '')}")


def _message(exc: EdgeMLError, kind: str | None, label: str) -> str:
    if kind == "connection lost" and exc.message.endswith("no message"):
        return f"ssh {label}: the connection dropped mid-run (the board rebooted, lost power or its network?)"
    return exc.message


def _probe(conn: Any, arts: list[Any], timeout: float) -> str | None:
    """The board's Python has numpy and a runtime for every model's format: None, or what is missing."""
    from edgeml.targets.remote import doctor

    d = doctor(conn.target(), timeout=timeout)
    mods = d.get("modules") or {}
    missing = []
    if not mods.get("numpy"):
        missing.append("numpy (pip3 install numpy)")
    for fmt in dict.fromkeys(a.format.value for a in arts):
        if fmt in NEEDS and not any(mods.get(m) for m in NEEDS[fmt]):
            missing.append(f"a {fmt} runtime ({INSTALL[fmt]})")
    return ", ".join(missing) or None


def _run(pending: list[_Job], fleet: Fleet, out: Path, done: dict, failures: list[Failure], bugs: list,
         say: Callable[[str], None], opts: dict[str, Any], retries: int, retry_delay: float, arts: list,
         reconnect_wait: float = 90.0) -> None:
    from edgeml.bench.harness import bench
    from edgeml.fleet.connection import Connection

    boards = [b for b in fleet.boards if any(j.board is b for j in pending)]
    sockets = Path(tempfile.mkdtemp(prefix="em-ssh-", dir="/tmp" if os.path.isdir("/tmp") else None))
    conns = {b.name: Connection(b, sockets, i) for i, b in enumerate(boards)}
    down: dict[str, Failure] = {}
    lacking: list[str] = []
    stop = threading.Event()
    lost: set[str] = set()  # boards whose connection dropped mid-run: wait for them before their next job
    lock = threading.Lock()

    def connect(b: Board) -> None:  # the master connection and a probe of the board's runtimes, retried once
        for attempt in range(1 + retries):
            try:
                conns[b.name].ensure()
                why = _probe(conns[b.name], [arts[j.index] for j in pending if j.board is b],
                             timeout=(opts["timeout"] or 120))
                if why:
                    with lock:
                        lacking.append(f"{b.name} ({b.label}, python {b.python}) lacks {why}")
                return
            except EdgeMLError as exc:
                kind = _classify(exc) or "error"
                if attempt < retries and kind != "error":
                    say(f"[{b.name}] {kind}: {exc.message}; retrying in {retry_delay:g} s")
                    time.sleep(retry_delay)
                    continue
                say(f"[{b.name}] {kind}: {exc.message}")
                with lock:
                    down[b.name] = Failure(b.name, b.target, b.label, None, kind, exc.message, exc.hint, attempt + 1)
                return

    try:
        _parallel([functools.partial(connect, b) for b in boards], bugs)
        if bugs:
            return
        if lacking:
            from edgeml.targets.remote import RemoteError

            raise RemoteError("the board runtime cannot run these models: " + "; ".join(lacking),
                              hint="install the runtime there, or point the inventory's python = ... at a Python "
                                   "that has it; nothing was measured")
        queues = {b.name: [j for j in pending if j.board is b] for b in boards}

        def back(b: Board) -> bool:
            """After a dropped connection (a reboot?): wait up to ``reconnect_wait`` s for the board to answer
            and re-open its master; False (and the board marked down) when it does not come back."""
            from edgeml.targets.remote import SSHConnectionError

            say(f"[{b.name}] connection lost: waiting for {b.name} to come back (up to {reconnect_wait:g} s)")
            end = time.monotonic() + reconnect_wait
            while not stop.is_set():
                try:
                    conns[b.name].ensure()
                    say(f"[{b.name}] back")
                    return True
                except SSHConnectionError as exc:
                    if time.monotonic() >= end:
                        with lock:
                            down[b.name] = Failure(b.name, b.target, b.label, None, "connection lost",
                                                   f"{b.label} did not come back within {reconnect_wait:g} s after "
                                                   f"its connection dropped ({exc.message})", exc.hint, 1)
                        return False
                    stop.wait(3)
            return False

        def work(b: Board) -> None:
            q = queues[b.name]
            while not stop.is_set():
                with lock:
                    if b.name in down:
                        f = down[b.name]
                        for j in q:
                            failures.append(Failure(b.name, b.target, b.label, j.model.name, f.kind,
                                                    f"not run: board {b.name} {f.kind}: {f.error}", f.hint,
                                                    j.attempts or f.attempts))
                        q.clear()
                    if not q:
                        return
                    now = time.monotonic()
                    j = min(q, key=lambda x: x.not_before)
                    q.remove(j)
                if j.not_before > now and stop.wait(j.not_before - now):
                    return
                if b.name in lost:  # wait for the board first; the job goes back in the queue (reported if down)
                    back(b)
                    with lock:
                        lost.discard(b.name)
                        q.append(j)
                    continue
                j.attempts += 1
                tag = f"[{b.name}] {j.model.name}"
                say(f"{tag}: measuring" + (f" (try {j.attempts})" if j.attempts > 1 else ""))
                try:
                    if j.attempts > 1:
                        conns[b.name].ensure()
                    host = conns[b.name].target()
                    r = bench([j.model], target=b.target, host=host, progress=functools.partial(
                        _relay, say, tag, f"[{host.host}] "), **opts).to_dict()
                except EdgeMLError as exc:
                    if stop.is_set():
                        return
                    kind = j.last_fault = _classify(exc)
                    exc.message = _message(exc, kind, b.label)
                    if kind == "connection lost":
                        with lock:
                            lost.add(b.name)
                    if kind and j.attempts <= retries:
                        say(f"{tag}: {kind} ({exc.message}); retrying once in {retry_delay:g} s")
                        j.not_before = time.monotonic() + retry_delay
                        with lock:
                            q.append(j)
                        continue
                    say(f"{tag}: FAILED ({kind or 'error'}): {exc.message}")
                    with lock:
                        failures.append(Failure(b.name, b.target, b.label, j.model.name, kind or "error", exc.message,
                                                exc.hint, j.attempts))
                        if kind in ("unreachable", "connection lost"):  # retried, still gone: the board's
                            down[b.name] = failures[-1]  # other jobs are not tried (a timeout is this job's own)
                    continue
                from edgeml._io import json_text, write_bytes_atomic

                r["models"][0]["sha256"] = _sha(j.model)
                saved = _job_file(out, j)
                saved.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(saved, (json_text({"key": j.key, "board": b.name, "model": str(j.model),
                                                      "result": r}) + "\n").encode())
                with lock:
                    done[(b.name, j.index)] = json.loads(saved.read_text())["result"]
                lat = r["models"][0].get("latency_ms") or {}
                say(f"{tag}: done" + (f", p50 {lat['p50']:.4g} ms" if lat else ""))

        def halt() -> None:
            stop.set()
            for c in conns.values():
                c.close()

        _parallel([functools.partial(work, b) for b in boards for _ in range(b.concurrency)], bugs, halt)
    finally:
        for c in conns.values():
            c.close()
        shutil.rmtree(sockets, ignore_errors=True)


def _parallel(fns: list[Callable[[], None]], bugs: list, on_stop: Callable[[], None] | None = None) -> None:
    """Run ``fns`` in threads; on Ctrl-C/SIGTERM call ``on_stop`` (which makes the threads finish: each one's
    ssh ends and run_job's cleanup removes the remote folder), give them 30 s, then re-raise.

    Completion is awaited on events, not Thread.join: a join interrupted by a signal marks a running thread
    as stopped (CPython < 3.13), after which it could no longer be waited for."""
    done = [threading.Event() for _ in fns]

    def wrap(fn: Callable[[], None], finished: threading.Event) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            bugs.append(exc)
        finally:
            finished.set()

    for fn, ev in zip(fns, done):
        threading.Thread(target=wrap, args=(fn, ev), daemon=True).start()
    try:
        for ev in done:
            while not ev.wait(0.2):
                pass
    except BaseException:
        if on_stop:
            on_stop()
            end = time.monotonic() + 30
            for ev in done:
                ev.wait(max(0.0, end - time.monotonic()))
        raise


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
            row.update(error=exc.message, hint=exc.hint, problems=[_classify(exc) or "error"])
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
    _parallel([functools.partial(one, k, b) for k, b in enumerate(fleet.boards)], bugs)
    if bugs:
        raise bugs[0]
    return out
