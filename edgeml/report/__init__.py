"""edgeml report: the cheap-inference asymmetry and the variants table, from the JSON results of the
other commands (bench, estimate, prune, quantize, a pipeline run's manifest, the demo's training record).

Training cost comes from what edgeml measured (training and fine-tuning wall time and FLOPs), else from the
user (``train_flops``; ``train_samples`` x ``epochs`` x 3 x forward FLOPs; ``gpu_hours`` x ``power_w``).
Per-inference cost comes from each target's bench result: measured on the host or a board, or estimated
(always labelled). Break-even = how many inferences cost as much as training did, in FLOPs, time and
energy (where both sides are known).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml import __version__
from edgeml.errors import EdgeMLError, UsageError

KNOWN = ("edgeml.bench/1", "edgeml.estimate/1", "edgeml.prune/1", "edgeml.quantize/1", "edgeml.train/1",
         "edgeml.run/1", "edgeml.check/1", "edgeml.fleet/1")


@dataclass
class Cost:
    """Per-target cost of one inference of one variant."""
    target: str
    kind: str  # measured | estimated
    ms: float
    p90_ms: float | None = None
    energy_mj: float | None = None
    power_basis: str | None = None
    where: str | None = None
    stats: dict[str, float] | None = None  # min/p50/p90/p99/max when measured
    extrapolated: bool = False  # an estimate far outside the models its coefficients were fitted on
    ci95: list[float] | None = None  # 95 % confidence interval of the measured median (ms)
    lower_bound: bool = False  # an estimate that is only a lower bound (a compiled Edge TPU model)

    @property
    def label(self) -> str:
        return ", ".join([self.kind] + ["extrapolated"] * self.extrapolated + ["lower bound"] * self.lower_bound)


@dataclass
class Variant:
    name: str
    path: str | None = None
    size_bytes: int | None = None
    macs: int | None = None
    accuracy: float | None = None
    costs: dict[str, Cost] = field(default_factory=dict)

    @property
    def flops(self) -> int | None:
        return 2 * self.macs if self.macs else None


@dataclass
class Training:
    flops: float | None = None
    wall_s: float | None = None
    energy_j: float | None = None
    parts: list[str] = field(default_factory=list)  # where each number came from


@dataclass
class Report:
    variants: list[Variant]
    targets: list[str]
    training: Training
    deploy: str
    sources: list[str]
    notes: list[str] = field(default_factory=list)

    def asymmetry(self) -> list[dict[str, Any]]:
        """One row per target for the deployed variant: per-inference cost and break-even inferences."""
        v = next(x for x in self.variants if x.name == self.deploy)
        t = self.training
        rows = []
        for target in self.targets:
            c = v.costs.get(target)
            if c is None:
                continue
            row = {"target": target, "kind": c.label, "model": v.name, "latency_ms": c.ms,
                   "latency_lower_bound": c.lower_bound, "flops": v.flops,
                   "energy_mj": c.energy_mj, "break_even_flops": None, "break_even_time": None,
                   "break_even_energy": None}
            if t.flops and v.flops:
                row["break_even_flops"] = t.flops / v.flops
            if t.wall_s and c.ms:
                row["break_even_time"] = t.wall_s / (c.ms / 1000)
            if t.energy_j and c.energy_mj:
                row["break_even_energy"] = t.energy_j / (c.energy_mj / 1000)
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.report/1", "edgeml": __version__, "deploy": self.deploy, "targets": self.targets,
                "training": asdict(self.training), "asymmetry": self.asymmetry(),
                "variants": [asdict(v) | {"flops": v.flops} for v in self.variants], "sources": self.sources,
                "notes": self.notes}


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EdgeMLError(f"{path}: no such results file", hint="pass the JSON of an edgeml bench/estimate/prune "
                                                                "result (`to_dict()`), or a run folder's run.json")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgeMLError(f"{path}: not JSON ({exc})", hint="save results as JSON (`to_dict()`) to a file") from exc
    if not isinstance(data, dict) or data.get("schema") not in KNOWN:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise EdgeMLError(f"{path}: not an edgeml result (schema {schema!r})",
                          hint=f"edgeml report reads {', '.join(KNOWN)}")
    return data


class _Builder:
    def __init__(self) -> None:
        self.variants: dict[str, Variant] = {}
        self.estimate_notes: dict[str, list[str]] = {}
        self.targets: list[str] = []
        self.training = Training()
        self.sources: list[str] = []
        self.notes: list[str] = []
        self._trained: set[str] = set()
        self.best: str | None = None  # a pipeline run's best variant (run.json "best")

    def variant(self, path: str | None, name: str) -> Variant:
        v = self.variants.get(name)
        if v is None:
            v = self.variants[name] = Variant(name=name, path=path)
        if path and v.path is None:
            v.path = path
        return v

    def target(self, name: str) -> None:
        if name not in self.targets:
            self.targets.append(name)

    def add(self, data: dict[str, Any], origin: Path) -> None:
        self.sources.append(str(origin))
        schema = data["schema"]
        if schema == "edgeml.run/1":
            self.best = (data.get("best") or {}).get("best") or self.best
            for stage in data.get("stages", {}).values():
                for res in stage.get("results", []):
                    p = (origin.parent / res)
                    if p.exists():
                        self.add(_load(p), p)
        elif schema == "edgeml.bench/1":
            self._bench(data)
        elif schema == "edgeml.fleet/1":  # one bench record per board (a shared target gets the board's name)
            from edgeml.fleet.results import board_label

            for rec in data["records"]:
                self._bench(dict(rec, target=board_label(rec, data["records"])))
        elif schema == "edgeml.estimate/1":
            self._estimate(data, data.get("model"))
        elif schema == "edgeml.prune/1":
            if data.get("training"):
                self._train(data["training"], f"fine-tuning after {data['method']} pruning ({data['output']})",
                            key=data["output"])
        elif schema == "edgeml.train/1":
            self._train(data, data.get("what", "training"), key=data.get("model", "train"))
        elif schema == "edgeml.quantize/1":
            acc = data.get("accuracy") or {}
            if acc.get("quantized") is not None:
                v = self.variant(data["output"], Path(data["output"]).name)
                v.accuracy = v.accuracy if v.accuracy is not None else acc["quantized"]

    def _train(self, t: dict[str, Any], what: str, key: str) -> None:
        if key in self._trained:
            return
        self._trained.add(key)
        tr = self.training
        tr.flops = (tr.flops or 0) + float(t.get("flops") or 0) or None
        tr.wall_s = (tr.wall_s or 0) + float(t.get("wall_s") or 0) or None
        tr.parts.append(f"{what}: measured {t.get('wall_s', 0):.1f} s, {t.get('flops', 0):.3g} FLOPs "
                        f"({t.get('flops_basis', '3 x forward FLOPs x samples x epochs')})")

    def _bench(self, data: dict[str, Any]) -> None:
        emulated = bool((data.get("environment") or {}).get("emulated"))  # never shown as the board's latency
        target = data["target"] + (" (emulated)" if emulated and "(emulated)" not in data["target"] else "")
        self.target(target)
        for m in data["models"]:
            if m.get("role") == "reference":
                continue
            v = self.variant(m.get("path"), m["name"])
            v.size_bytes = m.get("size_bytes", v.size_bytes)
            if m.get("accuracy") and v.accuracy is None:
                v.accuracy = m["accuracy"]["top1"]
            if "estimate" in m:
                self._estimate(m["estimate"], m.get("path"), name=m["name"])
            elif m.get("latency_ms"):
                lat = m["latency_ms"]
                v.costs[target] = Cost(target, "emulated" if emulated else "measured", lat["p50"], lat.get("p90"),
                                       where=data.get("where"),
                                       stats={k: lat[k] for k in ("min", "p50", "p90", "p99", "max") if k in lat},
                                       ci95=list(lat["median_ci95"]) if lat.get("median_ci95") else None)

    def _estimate(self, e: dict[str, Any], path: str | None, name: str | None = None) -> None:
        self.target(e["target"])
        v = self.variant(path, name or Path(path or e["model"]).name)
        for n in e.get("notes", []):
            self.estimate_notes.setdefault(f"{e['target']}: {n}", []).append(v.name)
        v.costs[e["target"]] = Cost(e["target"], "estimated", e["ms"], energy_mj=e.get("energy_mj"),
                                    power_basis=f"{e.get('power_w')} W board power from the {e['target']} profile"
                                    if e.get("power_w") else None, extrapolated=bool(e.get("extrapolated")),
                                    lower_bound=bool(e.get("lower_bound")))


def build_report(results: list[str | Path], *, train_flops: float | None = None, train_samples: int | None = None,
                 epochs: int | None = None, train_gpu_hours: float | None = None,
                 train_power_w: float | None = None, deploy: str | None = None) -> Report:
    """Collect results into a Report; the training-cost options fill in (or add to) what was measured."""
    if not results:
        raise EdgeMLError("no results given", hint="edgeml report RUN_DIR/run.json -o report.html, or bench/estimate "
                                                   "JSON files")
    b = _Builder()
    for r in results:
        p = Path(r)
        if p.is_dir():
            p = p / "fleet.json" if (p / "fleet.json").is_file() and not (p / "run.json").exists() else p / "run.json"
        data = _load(p)
        try:
            b.add(data, p)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else f"malformed ({exc})"
            raise EdgeMLError(f"{p}: not a complete {data.get('schema')} result: {what}",
                              hint="pass the JSON exactly as edgeml wrote it (`to_dict()`)") from exc
    if not b.variants:
        raise EdgeMLError("the results hold no models", hint="include an edgeml bench or estimate result")
    for v in b.variants.values():
        if v.macs is None and v.path and Path(v.path).exists():
            from edgeml.artifact import inspect_model

            try:
                info = inspect_model(v.path)
                v.macs = None if info.macs_partial else (info.macs or None)  # a partial count is no figure
            except EdgeMLError:
                pass
        if v.size_bytes is None and v.path and Path(v.path).exists():
            v.size_bytes = Path(v.path).stat().st_size
    tr = b.training
    first = next(iter(b.variants.values()))
    if train_flops is not None:
        if train_samples is not None or epochs is not None:  # else they would be silently dropped
            raise UsageError("`train_flops` is the training cost as given; `train_samples` and `epochs` derive "
                             "another one", hint="pass `train_flops`, or `train_samples` with `epochs`, not both")
        tr.flops = train_flops
        tr.parts.append(f"`train_flops` {train_flops:.3g} (given)")
    elif train_samples is not None or epochs is not None:
        if train_samples is None or epochs is None or not first.flops:
            raise EdgeMLError("`train_samples` and `epochs` go together and need a model with known FLOPs",
                              hint="pass both, or `train_flops`")
        tr.flops = 3 * first.flops * train_samples * epochs
        tr.parts.append(f"3 x forward FLOPs of {first.name} x {train_samples} samples x {epochs} epochs (derived)")
    if train_gpu_hours is not None:
        tr.wall_s = train_gpu_hours * 3600
        tr.parts.append(f"`train_gpu_hours` {train_gpu_hours:g} (given)")
    if train_power_w is not None:
        if not tr.wall_s:
            raise EdgeMLError("`train_power_w` needs a training time", hint="add `train_gpu_hours`")
        tr.energy_j = tr.wall_s * train_power_w
        tr.parts.append(f"energy = training time x `train_power_w` {train_power_w:g} W")
    for note, models in b.estimate_notes.items():
        b.notes.append(f"{note} ({', '.join(models) if len(models) < len(b.variants) else 'all models'})")
    if not (tr.flops or tr.wall_s):
        b.notes.append("no training cost known: pass `train_flops`, `train_samples`/`epochs` or `train_gpu_hours`")
    names = list(b.variants)
    if deploy is not None and deploy not in names:
        raise EdgeMLError(f"`deploy` {deploy}: no such model in the results", hint=f"one of: {', '.join(names)}")
    costed = [n for n in names if b.variants[n].costs]
    if not costed:
        raise EdgeMLError("the results hold no latency", hint="include an edgeml bench or estimate result")
    # default: a pipeline run's best variant (edgeml.report.rank); else the model costed on the most targets
    # (the one being deployed), the later one on a tie
    best = max(range(len(costed)), key=lambda i: (len(b.variants[costed[i]].costs), i))
    default = b.best if b.best in costed else costed[best]
    return Report(variants=list(b.variants.values()), targets=b.targets, training=tr,
                  deploy=deploy or default, sources=b.sources, notes=b.notes)


def write_report(report: Report, out: str | Path, *, force: bool = False) -> Path:
    """Write .html (self-contained, plots inline when matplotlib is installed), .md or .json."""
    from edgeml._io import check_output, json_text, write_bytes_atomic
    from edgeml.report.render import html, markdown

    out = check_output(out, force=force)
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md", ".json"):
        raise EdgeMLError(f"{out}: report format from the suffix: .html, .md or .json", hint="e.g. -o report.html")
    text = json_text(report.to_dict()) if suffix == ".json" else markdown(report) if suffix == ".md" else html(report)
    write_bytes_atomic(out, text.encode())
    return out
