"""The jobs of a fleet run: one model on one board, run over the board's multiplexed ssh connection, with the
fault handling ``bench_fleet`` (edgeml.fleet.runner) relies on: a board that is unreachable, times out or drops
the connection is retried (after a reboot: once it answers again), then reported as a ``Failure``; each finished
job is saved under ``out/jobs/`` keyed by content, so a re-run does only what is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError, RemoteTimeout
from edgeml.fleet.inventory import Board, Fleet
from edgeml.options import BenchOptions

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
class Job:
    board: Board
    index: int
    model: Path
    key: str
    attempts: int = 0
    not_before: float = 0.0
    last_fault: str | None = None

def content_sha(path: Path) -> str:
    """SHA-256 of a model file (or of every file of a model folder, in path order)."""
    h = hashlib.sha256()
    files = sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]
    for q in files:
        with open(q, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def job_file(out: Path, job: Job) -> Path:
    return out / "jobs" / job.board.name / f"{job.model.stem}-{job.key[:16]}.json"


def classify(exc: EdgeMLError) -> str | None:
    """The fault kind of a retryable failure (None: the job itself is wrong, retrying cannot help)."""
    from edgeml.targets.remote import SSHConnectionError

    if isinstance(exc, RemoteTimeout):
        return "timeout"
    if isinstance(exc, SSHConnectionError):  # refused, no route, no name, timed out: not there at all
        return "unreachable" if any(s in exc.message for s in UNREACHABLE) else "connection lost"
    return None


def relay(say: Callable[[str], None], tag: str, host_prefix: str, line: str) -> None:
    """A runner progress line of one job, tagged with its board and model (the runner's own host tag dropped)."""
    say(f"{tag}: {line.strip().replace(host_prefix, '')}")


def fault_message(exc: EdgeMLError, kind: str | None, label: str) -> str:
    if kind == "connection lost" and exc.message.endswith("no message"):
        return f"ssh {label}: the connection dropped mid-run (the board rebooted, lost power or its network?)"
    return exc.message


def probe(conn: Any, arts: list[Any], timeout: float) -> str | None:
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


def run_jobs(pending: list[Job], fleet: Fleet, out: Path, done: dict, failures: list[Failure], bugs: list,
         say: Callable[[str], None], opts: BenchOptions, retries: int, retry_delay: float, arts: list,
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
                why = probe(conns[b.name], [arts[j.index] for j in pending if j.board is b],
                             timeout=(opts.timeout or 120))
                if why:
                    with lock:
                        lacking.append(f"{b.name} ({b.label}, python {b.python}) lacks {why}")
                return
            except EdgeMLError as exc:
                kind = classify(exc) or "error"
                if attempt < retries and kind != "error":
                    say(f"[{b.name}] {kind}: {exc.message}; retrying in {retry_delay:g} s")
                    time.sleep(retry_delay)
                    continue
                say(f"[{b.name}] {kind}: {exc.message}")
                with lock:
                    down[b.name] = Failure(b.name, b.target, b.label, None, kind, exc.message, exc.hint, attempt + 1)
                return

    try:
        parallel([functools.partial(connect, b) for b in boards], bugs)
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
                    r = bench([j.model], options=dataclasses.replace(opts, target=b.target, host=host),
                              progress=functools.partial(relay, say, tag, f"[{host.host}] ")).to_dict()
                except EdgeMLError as exc:
                    if stop.is_set():
                        return
                    kind = j.last_fault = classify(exc)
                    exc.message = fault_message(exc, kind, b.label)
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

                r["models"][0]["sha256"] = content_sha(j.model)
                saved = job_file(out, j)
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

        parallel([functools.partial(work, b) for b in boards for _ in range(b.concurrency)], bugs, halt)
    finally:
        for c in conns.values():
            c.close()
        shutil.rmtree(sockets, ignore_errors=True)


def parallel(fns: list[Callable[[], None]], bugs: list, on_stop: Callable[[], None] | None = None) -> None:
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
