"""``edgeml search``: build every variant of a declared space, measure or estimate it per target, and return
the Pareto front per target (top-1 vs latency vs size) and the best variant within the budgets.

Phases (everything lands in the output folder, each result as soon as it exists):

1. plan -- the space is expanded and checked against the source format and every target; a space with no
   valid variant for a target, an unknown target or missing data is refused before any work;
2. build -- prunes (once per method x sparsity) and variants (convert or quantize, then top-1 on the eval
   data) run as Ray tasks, or one after another without Ray;
3. cost -- boards without a measurement are estimated (labelled); the host is measured here, one variant at a
   time after every build finished, so no trial's load skews another's latency (``edgeml.search.cost``);
4. rank -- front per target (``edgeml.search.pareto``), best variant by ``edgeml.report.rank`` within the
   budgets, the HTML/Markdown/JSON report with a Pareto plot per target, and ``search.json``.

Each stage result is keyed by content hash like the pipeline's stage cache (``edgeml.pipeline.stage_key``):
a re-run (after an interruption, or with a larger space) does only what is missing.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeml import __version__
from edgeml._io import json_text, write_bytes_atomic
from edgeml.errors import EdgeMLError
from edgeml.search.cost import CostPhase, trial_dir
from edgeml.search.plan import Plan, SearchConfig, plan_search
from edgeml.search.space import Trial

SCHEMA = "edgeml.search/1"
TRIAL_SCHEMA = "edgeml.search-trial/1"


@dataclass
class SearchResult:
    out: str
    plan: Plan
    records: dict[str, dict[str, Any]]  # trial name -> its record (trial.json)
    fronts: dict[str, list[dict[str, Any]]]
    best: dict[str, str | None]
    rankings: dict[str, Any]
    report: Any
    executor: str
    counts: dict[str, int]
    manifest: dict[str, Any]

    @property
    def passed(self) -> bool:
        """Budgets given: every target has a variant that meets them."""
        return not self.manifest["budget"] or all(self.best.values())


def _source(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve())} if path.is_dir() else {"name": path.name, "data": path.read_bytes()}


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_files(folder: Path, files: dict[str, bytes]) -> dict[str, str]:
    from edgeml.pipeline import sha256

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in files.items():
        write_bytes_atomic(folder / name, data)
        out[name] = sha256(folder / name)
    return out


def _peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class _Search(CostPhase):
    def __init__(self, cfg: SearchConfig, plan: Plan, say: Callable[[str], None]):
        from edgeml.pipeline import sha256

        self.cfg, self.plan, self.say = cfg, plan, say
        self.dir = Path(cfg.out)
        self.model_sha = sha256(cfg.model)
        self.records: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # trial names in the order their builds finished (this run)
        self.counts = {"built": 0, "cached": 0, "failed": 0, "pruned": 0, "prune_cached": 0}

    # --- keys -------------------------------------------------------------------------------------------
    def prune_key(self, t: Trial) -> str:
        from edgeml.pipeline import stage_key

        return stage_key("search-prune", {"method": t.prune_method, "sparsity": t.sparsity, "train": self.cfg.train,
                                          "eval": self.cfg.eval, "epochs": self.cfg.epochs}, [self.model_sha])

    def build_key(self, t: Trial) -> str:
        from edgeml.pipeline import stage_key

        c = self.cfg
        opts = {**t.options(), "prune": self.prune_key(t) if t.prune_id else None, "calib": c.calib,
                "calib_samples": c.calib_samples, "eval": c.eval, "quantize_target": self.quantize_target(t),
                "max_float_ops": self.plan.space.max_float_ops, "input_shape": c.input_shape}
        return stage_key("search-build", opts, [self.model_sha])

    def quantize_target(self, t: Trial) -> str:
        """The strictest requested target that runs ``t`` (a full-int8 one first): its quantization rules."""
        from edgeml.targets import load_profile

        profs = [load_profile(n) for n in self.plan.per_target if t.name in self.plan.per_target[n]]
        strict = [p for p in profs if p.full_int8]
        return (strict or profs or [load_profile("host")])[0].name

    # --- phase 2: build -----------------------------------------------------------------------------------
    def build(self, make_executor: Callable[[], Any]) -> Any:
        """Build what is not cached; returns the executor used (None when everything was cached)."""
        from edgeml.pipeline import outputs_intact
        from edgeml.search.executor import Jobs

        ctx = {"calib": self.cfg.calib, "eval": self.cfg.eval, "train": self.cfg.train, "epochs": self.cfg.epochs,
               "calib_samples": self.cfg.calib_samples, "max_float_ops": self.plan.space.max_float_ops,
               "input_shapes": self._shapes()}
        jobs = Jobs(source=_source(Path(self.cfg.model)), ctx=ctx)
        todo = []
        for t in self.plan.trials:
            folder = trial_dir(self.dir, t.name)
            rec = _read_json(folder / "trial.json") or {}
            build = (rec.get("stages") or {}).get("build") or {}
            if build.get("key") == self.build_key(t) and outputs_intact(folder, build.get("outputs", {})):
                self.records[t.name] = rec
                self.counts["cached"] += 1
                self.counts["failed"] += bool(build.get("error"))
                continue
            todo.append(t)
        for t in todo:
            if t.prune_id and t.prune_id not in jobs.prunes and t.prune_id not in jobs.pruned:
                folder = self.dir / "prune" / t.prune_id
                rec = _read_json(folder / "prune.json") or {}
                same = rec.get("key") == self.prune_key(t)
                if same and rec.get("outputs") and outputs_intact(folder, rec["outputs"]):
                    (fname,) = rec["outputs"]
                    jobs.pruned[t.prune_id] = {"name": fname, "data": (folder / fname).read_bytes()}
                    self.counts["prune_cached"] += 1
                elif same and rec.get("error") and rec.get("known"):
                    jobs.pruned[t.prune_id] = {"error": rec["error"], "hint": rec.get("hint"), "known": True}
                    self.counts["prune_cached"] += 1
                else:
                    jobs.prunes[t.prune_id] = {"method": t.prune_method, "sparsity": t.sparsity,
                                               "key": self.prune_key(t)}
            trial_ctx = {"quantize_target": self.quantize_target(t)}
            jobs.builds.append(({**t.options(), **trial_ctx}, t.name, t.prune_id))
        by_name = {t.name: t for t in todo}
        total = len(self.plan.trials)
        if not todo:
            self.say(f"all {total} trials up to date (cached), nothing to build")
            return None
        executor = make_executor()
        self.say(f"building {len(todo)} of {total} trials ({total - len(todo)} cached) {executor.describe()}")

        def on_prune(pid: str, res: dict[str, Any]) -> None:
            folder = self.dir / "prune" / pid
            opts = jobs.prunes[pid]
            rec = {"schema": "edgeml.search-prune/1", "id": pid, "key": opts["key"], "seconds": res.get("seconds")}
            if "error" in res:
                rec.update(error=res["error"], hint=res.get("hint"), known=res.get("known"))
                self.say(f"  prune {pid}: failed: {res['error']}")
            else:
                rec["outputs"] = _write_files(folder, res["files"])
                rec["result"] = res["result"]
                self.counts["pruned"] += 1
                self.say(f"  prune {pid}: done ({res.get('seconds')} s)")
            folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(folder / "prune.json", json_text(rec).encode())

        def on_build(name: str, res: dict[str, Any]) -> None:
            t = by_name[name]
            folder = trial_dir(self.dir, name)
            build: dict[str, Any] = {"key": self.build_key(t), "seconds": res.get("seconds"), "status": "ran"}
            rec: dict[str, Any]
            rec = {"schema": TRIAL_SCHEMA, "name": name, "options": t.options(), "stages": {"build": build}}
            k = len(self.order) + 1
            self.order.append(name)
            if "error" in res:
                self.counts["failed"] += 1
                build.update(error=res["error"], hint=res.get("hint"), known=res.get("known"))
                if not res.get("known"):
                    build["key"] = None  # not cached: retried next time
                    build["traceback"] = res.get("traceback")
                self.say(f"  [{k}/{len(todo)}] {name}: failed: {res['error']}")
                build["outputs"] = {}
            else:
                self.counts["built"] += 1
                build["outputs"] = _write_files(folder, res["files"])
                rec["accuracy"] = res.get("accuracy")
                rec["size_bytes"] = (folder / name).stat().st_size
                if res.get("quantize"):
                    q = res["quantize"]
                    rec["quantize"] = {k2: q.get(k2) for k2 in ("mode", "io", "per_channel", "method", "target",
                                                                "float_ops", "fidelity", "warnings", "metrics")}
                acc = "—" if rec["accuracy"] is None else f"top-1 {rec['accuracy']:.2%}"
                self.say(f"  [{k}/{len(todo)}] {name}: {acc}, {rec['size_bytes']} bytes ({res.get('seconds')} s)")
            folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(folder / "trial.json", json_text(rec).encode())
            self.records[name] = rec

        try:
            executor.run(jobs, on_prune, on_build)
        finally:
            executor.close()
        return executor

    # --- phase 4: rank --------------------------------------------------------------------------------------
    def report(self) -> Any:
        from edgeml.report import Cost, Report, Training, Variant

        variants = []
        for t in self.plan.trials:
            rec = self.records.get(t.name)
            if not rec or rec["stages"]["build"].get("error"):
                continue
            path = trial_dir(self.dir, t.name) / t.name
            v = Variant(name=t.name, path=str(path), size_bytes=rec.get("size_bytes"), accuracy=rec.get("accuracy"))
            try:
                from edgeml.artifact import inspect_model

                info = inspect_model(path)
                v.macs = None if info.macs_partial else (info.macs or None)
            except EdgeMLError:
                pass
            for target in self.plan.per_target:
                if t.name not in self.plan.per_target[target]:
                    continue
                c = rec["stages"].get(f"cost:{target}") or {}
                r = c.get("result")
                if not r:
                    continue
                if c.get("kind") == "measured":
                    lat = r.get("latency_ms") or {}
                    if lat.get("p50"):
                        v.costs[target] = Cost(target, "measured", lat["p50"], lat.get("p90"), where=c.get("where"),
                                               stats={k: lat[k] for k in ("min", "p50", "p90", "p99", "max")
                                                      if k in lat},
                                               ci95=list(lat["median_ci95"]) if lat.get("median_ci95") else None)
                else:
                    v.costs[target] = Cost(target, "estimated", r["ms"], energy_mj=r.get("energy_mj"),
                                           extrapolated=bool(r.get("extrapolated")),
                                           lower_bound=bool(r.get("lower_bound")))
            variants.append(v)
        if not variants:
            raise EdgeMLError(f"every trial failed ({len(self.records)}); nothing to rank",
                              hint=f"see the errors in {self.dir}/trials/*/trial.json (or above)")
        return Report(variants=variants, targets=list(self.plan.per_target), training=Training(),
                      deploy=variants[0].name, sources=[str(self.dir / "search.json")], notes=[])


def fronts_and_best(report: Any, plan: Plan, budget: dict[str, Any]) -> tuple[dict, dict, dict]:
    from edgeml.report.rank import rank_variants
    from edgeml.search.pareto import Point, front

    fronts, best, rankings = {}, {}, {}
    for target in plan.per_target:
        pts = [Point(v.name, v.accuracy, v.costs[target].ms, v.size_bytes,
                     tuple(v.costs[target].ci95) if v.costs[target].ci95 else None) for v in report.variants
               if target in v.costs and v.size_bytes and (v.accuracy is not None or all(
                   x.accuracy is None for x in report.variants))]
        fr = front(pts)
        fronts[target] = [{"name": p.name, "accuracy": p.accuracy, "latency_ms": p.ms,
                           "kind": report_kind(report, p.name, target), "size_bytes": p.size} for p in fr]
        sub = dataclasses.replace(report, variants=[v for v in report.variants if target in v.costs])
        ranking = rank_variants(sub, budget, target=target) if sub.variants else None
        rankings[target] = ranking
        ok = ranking is not None and ranking.best and budget and ranking.rows[0].blown == 0
        best[target] = ranking.best if ranking is not None and ok else None
    return fronts, best, rankings


def report_kind(report: Any, name: str, target: str) -> str:
    v = next(x for x in report.variants if x.name == name)
    return v.costs[target].label


def search(cfg: SearchConfig, *, progress: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume) the search of ``cfg``; see the module docstring."""
    from edgeml.report import write_report
    from edgeml.search import executor as ex

    say = progress or (lambda m: None)
    t0 = time.perf_counter()
    plan = plan_search(cfg)
    kind = ex.choose(cfg.executor, cfg.ray_address)
    if kind == "sequential" and cfg.executor == "auto":
        say(f"Ray is not installed: running the trials one after another in this process ({ex.RAY_HINT} to run "
            "them in parallel)")
    d = Path(cfg.out)
    d.mkdir(parents=True, exist_ok=True)
    s = _Search(cfg, plan, say)
    model_bytes = Path(cfg.model).stat().st_size if Path(cfg.model).is_file() else 0
    t_build = time.perf_counter()
    executor = s.build(lambda: ex.make(kind, ray_address=cfg.ray_address, num_cpus=cfg.num_cpus,
                                       object_store_bytes=int(min(2 << 30, max(256 << 20, 8 * model_bytes)))))
    used: dict[str, str | None] = {"kind": executor.name, "describe": executor.describe()} if executor else \
        {"kind": None, "describe": "nothing to build (every trial cached)"}
    build_s = time.perf_counter() - t_build
    t_cost = time.perf_counter()
    s.cost()
    cost_s = time.perf_counter() - t_cost
    report = s.report()
    fronts, best, rankings = fronts_and_best(report, plan, cfg.budget)
    first = next(iter(plan.per_target), None)
    if first and best.get(first):
        report.deploy = best[first]
    elif first and fronts.get(first):
        report.deploy = fronts[first][0]["name"]
    for target, fr in fronts.items():
        report.notes.append(f"Pareto front on {target} (top-1 vs latency vs size): "
                            f"{', '.join(p['name'] for p in fr) or 'none'}")
        if cfg.budget:
            report.notes.append(f"best on {target} within the budgets: {best[target] or 'no variant meets them'}")
    report.notes.append("the fronts above weigh top-1, latency and size together; the dashed line in each "
                        "accuracy-vs-latency plot is the front of those two axes alone")
    report.notes += plan.notes
    failed = {n: r["stages"]["build"]["error"] for n, r in s.records.items() if r["stages"]["build"].get("error")}
    report.notes += [f"{n}: not built: {e}" for n, e in failed.items()]
    for suffix in (".html", ".md", ".json"):
        write_report(report, d / f"report{suffix}", force=True)
    manifest = {"schema": SCHEMA, "edgeml": __version__, "config": dataclasses.asdict(cfg), "plan": plan.to_dict(),
                "executor": used,
                "counts": s.counts, "build_order": s.order, "budget": cfg.budget,
                "fronts": fronts, "best": best,
                "rankings": {t: r.to_dict() if r else None for t, r in rankings.items()},
                "failed": failed, "seconds": {"build": round(build_s, 2), "cost": round(cost_s, 2),
                                              "total": round(time.perf_counter() - t0, 2)},
                "driver_peak_rss_mib": _peak_rss_mib()}
    write_bytes_atomic(d / "search.json", json_text(manifest).encode())
    return SearchResult(out=str(d), plan=plan, records=s.records, fronts=fronts, best=best, rankings=rankings,
                        report=report, executor=str(used["describe"]), counts=s.counts, manifest=manifest)
