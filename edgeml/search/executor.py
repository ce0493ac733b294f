"""Where search trials run: Ray tasks (local with bounded CPUs, or an existing cluster) or, without Ray, a
sequential loop in this process. Both run the same functions (``edgeml.search.trial``) in the same order of
dependencies: each prune once, then the builds that use it; results are handed to callbacks as they finish,
so the caller writes (caches) each one at once and an interrupted search keeps what finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError

RAY_HINT = "pip install 'edgeml-toolchain[ray]'"


@dataclass
class Jobs:
    source: dict[str, Any]  # {"name", "data"} or {"path"}
    ctx: dict[str, Any]
    prunes: dict[str, dict[str, Any]] = field(default_factory=dict)  # prune id -> options (to run)
    pruned: dict[str, dict[str, Any]] = field(default_factory=dict)  # prune id -> src of a cached prune
    builds: list[tuple[dict[str, Any], str, str | None]] = field(default_factory=list)  # (trial, name, prune id)


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def default_cpus() -> int:
    """Local Ray CPUs when not given: the cores this process may use, at most 4 (each trial loads a framework)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


def choose(kind: str, ray_address: str | None) -> str:
    """'ray' or 'sequential' for ``kind`` (auto | ray | sequential); refuses Ray options Ray cannot serve."""
    if kind not in ("auto", "ray", "sequential"):
        raise EdgeMLError(f"`executor` {kind}: auto, ray or sequential")
    if kind == "sequential":
        if ray_address:
            raise EdgeMLError("`ray_address` with `executor` sequential", hint="drop one of them")
        return "sequential"
    if ray_available():
        return "ray"
    if kind == "ray" or ray_address:
        raise EdgeMLError("Ray is not installed", hint=f"{RAY_HINT}, or `executor` sequential")
    return "sequential"


class Sequential:
    name = "sequential"

    def describe(self) -> str:
        return "one after another in this process"

    def run(self, jobs: Jobs, on_prune: Callable[[str, dict], None], on_build: Callable[[str, dict], None]) -> None:
        from edgeml._io import raise_if_stopped
        from edgeml.search.trial import build_task, prune_task

        done = dict(jobs.pruned)
        for pid, opts in jobs.prunes.items():
            raise_if_stopped()
            res = prune_task(jobs.source, opts, jobs.ctx)
            on_prune(pid, res)
            done[pid] = res
        for trial, name, prune_id in jobs.builds:
            raise_if_stopped()
            on_build(name, build_task(trial, name, done[prune_id] if prune_id else jobs.source, jobs.ctx))

    def close(self) -> None:
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, num_cpus: int | None, object_store_bytes: int):
        import logging

        import ray

        self.ray = ray
        self.address = address
        kw: dict[str, Any] = {"log_to_driver": False, "configure_logging": True, "logging_level": logging.ERROR}
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        if address:
            if num_cpus:
                raise EdgeMLError("`num_cpus` with `ray_address`", hint="an existing cluster has its own CPUs; "
                                                                       "drop `num_cpus`")
            # the cluster's workers run this edgeml's code (its package is shipped with the job); TensorFlow,
            # ONNX Runtime and the data paths must be there already
            pkg = str(Path(__file__).resolve().parent.parent)
            try:
                ray.init(address=address, runtime_env={"py_modules": [pkg], "excludes": ["__pycache__"]}, **kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EdgeMLError(f"`ray_address` {address}: cannot connect to the Ray cluster "
                                  f"({' '.join(str(exc).split())[:200]})",
                                  hint="check the address (HOST:6379, or ray://HOST:10001); a cluster with token "
                                       "authentication needs RAY_AUTH_MODE=token and its token (~/.ray/auth_token)"
                                  ) from exc
        else:
            self.cpus = num_cpus or default_cpus()
            # address="local": always a new Ray of our own, never a cluster someone else started on this
            # machine (`ray start` leaves one for a plain ray.init() to join)
            ray.init(address="local", num_cpus=self.cpus, include_dashboard=False,
                     object_store_memory=object_store_bytes, **kw)
        self.cpus = int(ray.cluster_resources().get("CPU", 0))

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "local Ray"
        return f"on {where} ({self.cpus} CPU{'s' * (self.cpus != 1)}, one trial per CPU)"

    def run(self, jobs: Jobs, on_prune: Callable[[str, dict], None], on_build: Callable[[str, dict], None]) -> None:
        from edgeml.search.trial import build_task, prune_task

        ray = self.ray
        prune_r = ray.remote(num_cpus=1, max_retries=0)(prune_task)
        build_r = ray.remote(num_cpus=1, max_retries=0)(build_task)
        source = ray.put(jobs.source)
        ctx = ray.put(jobs.ctx)
        refs: dict[Any, tuple[str, str]] = {}
        prune_refs = {}
        for pid, opts in jobs.prunes.items():
            ref = prune_r.remote(source, opts, ctx)
            prune_refs[pid] = ref
            refs[ref] = ("prune", pid)
        cached = {pid: ray.put(src) for pid, src in jobs.pruned.items()}
        for trial, name, prune_id in jobs.builds:
            src = source if prune_id is None else prune_refs.get(prune_id) or cached[prune_id]
            refs[build_r.remote(trial, name, src, ctx)] = ("build", name)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                kind, key = refs[done[0]]
                try:
                    res = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 -- a worker that died (killed, out of memory)
                    from edgeml.search.trial import failure

                    res = failure(exc)
                (on_prune if kind == "prune" else on_build)(key, res)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        self.ray.shutdown()


def make(kind: str, *, ray_address: str | None = None, num_cpus: int | None = None,
         object_store_bytes: int = 256 << 20) -> Any:
    chosen = choose(kind, ray_address)
    if chosen == "ray":
        return RayExecutor(ray_address, num_cpus, object_store_bytes)
    return Sequential()
