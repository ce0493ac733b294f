"""``edgeml search``'s plan phase: the search's configuration (``SearchConfig``), the space expanded and checked
against the source format, every target and the data (``plan_search``), and the fleet boards that measure
targets (``Plan``). Nothing is built here; a space without a valid variant is refused before any work."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError, UsageError
from edgeml.pipeline import RunConfig
from edgeml.search.space import Space, Trial, default_space, expand, load_space, runs_on


@dataclass
class SearchConfig(RunConfig):
    """A search: what a pipeline run takes (``RunConfig``: model, out, targets, data, epochs, runs, budget,
    input shapes) and the space to explore, how many trials, and where they run."""

    space: str | None = None  # a space TOML; None: defaults for the model's format and the targets
    max_trials: int | None = None
    seed: int = 0
    calib_samples: int | None = None
    executor: str = "auto"  # auto | ray | sequential
    ray_address: str | None = None
    num_cpus: int | None = None
    fleet: str | None = None  # a board inventory (edgeml.fleet): its boards' targets are measured there


@dataclass
class Plan:
    source_format: str
    space: Space
    trials: list[Trial]
    dropped: dict[str, int]  # reason -> count (combinations that cannot be built)
    skipped: int  # valid trials left out by max_trials
    per_target: dict[str, list[str]]  # target -> names of the trials it runs
    not_run: dict[str, dict[str, str]]  # target -> {trial name: why the target cannot run it}
    notes: list[str] = field(default_factory=list)
    boards: dict[str, list[str]] = field(default_factory=dict)  # target -> fleet boards that measure it
    fleet: Any = None  # edgeml.fleet.Fleet of those boards

    def to_dict(self) -> dict[str, Any]:
        return {"source_format": self.source_format, "space": self.space.to_dict(),
                "trials": [t.name for t in self.trials], "dropped": self.dropped, "skipped": self.skipped,
                "per_target": self.per_target, "notes": self.notes, "boards": self.boards}


def plan_search(cfg: SearchConfig) -> Plan:
    """Expand and check the space (no work done); raises on a space without a valid variant."""
    from edgeml.artifact import ModelArtifact
    from edgeml.targets import load_profile

    if not Path(cfg.model).exists():
        raise EdgeMLError(f"{cfg.model}: model not found", hint="check the model path")
    if not cfg.targets:
        raise EdgeMLError("no `targets` given", hint='name at least one target, e.g. ["host", "rpi4"]')
    profiles = [load_profile(t) for t in cfg.targets]  # an unknown target is refused here
    fmt = ModelArtifact.open(cfg.model).format.value
    if fmt not in ("keras", "h5", "savedmodel", "tflite", "onnx"):
        raise EdgeMLError(f"{cfg.model}: edgeml search starts from a Keras, SavedModel, TFLite or ONNX model")
    space = load_space(cfg.space) if cfg.space else default_space(fmt, profiles)
    trials, dropped = expand(space, "keras" if fmt == "h5" else fmt)
    notes = []
    if not trials:
        why = "; ".join(f"{why} ({n})" for why, n in dropped.items()) or "it is empty"
        raise EdgeMLError(f"the search space ({space.origin}) produces no valid variant for {cfg.model} "
                          f"(a {fmt} source): {why}", hint="widen [quantize] modes / [format] formats in `space`")
    if any(t.mode != "fp32" for t in trials) and not cfg.calib:
        raise EdgeMLError("the space quantizes and needs calibration data",
                          hint="`calib=SPEC`, e.g. builtin:digits?split=train; or [quantize] modes = [\"fp32\"]")
    _check_data(cfg)
    if space.max_float_ops is not None and any(t.format == "onnx" and t.mode != "fp32" for t in trials):
        notes.append("max_float_ops is checked on TFLite variants only: ONNX quantization does not report the ops "
                     "it leaves in float")
    if not any(t.prune_method != "none" for t in trials):  # fine-tuning options with nothing to fine-tune
        unused = (["`train`"] if cfg.train else []) + (["`epochs`"] if cfg.epochs != SearchConfig.epochs else [])
        if unused:
            raise UsageError(f"{' and '.join(unused)}: used to fine-tune pruned variants, and the space "
                             f"({space.origin}) builds none", hint="add [prune] methods and sparsity to `space`, or "
                                                                   f"drop {' and '.join(unused)}")
    elif not cfg.train:
        notes.append("pruning without `train` is one-shot (no fine-tuning); accuracy may drop")
    skipped = 0
    if cfg.max_trials is not None and len(trials) > cfg.max_trials:
        base = [t for t in trials if t.prune_method == "none"]  # the unpruned reference set: no prune stage
        rest = [t for t in trials if t not in base]
        random.Random(cfg.seed).shuffle(rest)
        keep = set((base + rest)[:cfg.max_trials])
        skipped = len(trials) - len(keep)
        trials = [t for t in trials if t in keep]
        notes.append(f"`max_trials={cfg.max_trials}`: {skipped} of {len(trials) + skipped} valid trials left out "
                     f"(the unpruned variants first, the pruned ones sampled with `seed={cfg.seed}`)")
    per_target: dict[str, list[str]] = {}
    not_run: dict[str, dict[str, str]] = {}
    for prof in profiles:
        why_not = {t.name: runs_on(t, prof) for t in trials}
        runs = [n for n, why in why_not.items() if why is None]
        not_run[prof.name] = {n: why for n, why in why_not.items() if why is not None}
        if not runs:
            whys = sorted(set(not_run[prof.name].values()))
            raise EdgeMLError(f"the search space ({space.origin}) produces no variant that `target={prof.name!r}` can "
                              f"run: {'; '.join(whys)}",
                              hint="add a format/mode the target runs to `space`, or raise `max_trials`")
        per_target[prof.name] = runs
    plan = Plan(fmt, space, trials, dropped, skipped, per_target, not_run, notes)
    if cfg.fleet:
        _plan_fleet(cfg, plan, profiles)
    return plan


def _check_data(cfg: SearchConfig) -> None:
    """Each data spec parses and its file/folder exists (a typo is refused now, not in every trial)."""
    from edgeml.calibration import DataSpec

    for opt, spec in (("`calib`", cfg.calib), ("`eval`", cfg.eval), ("`train`", cfg.train)):
        if not spec:
            continue
        ds = DataSpec.parse(spec)
        if not ds.is_builtin and not ds.path.exists():
            raise EdgeMLError(f"{opt} {spec}: {ds.path} not found", hint="check the data path")


def _plan_fleet(cfg: SearchConfig, plan: Plan, profiles: list[Any]) -> None:
    """The inventory's boards of the requested targets (checked before any work): those targets are measured on
    them; the others stay estimated (the host is measured here)."""
    try:
        from edgeml.fleet import load_inventory
    except ImportError as exc:
        raise EdgeMLError("`fleet`: this edgeml has no board fleet (edgeml.fleet)",
                          hint="drop `fleet` (boards are then estimated)") from exc
    from edgeml.targets import load_profile

    assert cfg.fleet is not None  # only called with a fleet
    fleet = load_inventory(cfg.fleet)
    want = {p.name for p in profiles if not p.is_host}
    boards = [b for b in fleet.boards if load_profile(b.target).name in want]
    if not boards:
        searched = ", ".join(sorted(want)) or "host only"
        raise EdgeMLError(f"`fleet={str(cfg.fleet)!r}`: no board of the targets searched ({searched})",
                          hint="targets there: " + ", ".join(sorted({b.target for b in fleet.boards})))
    plan.fleet = type(fleet)(boards=boards, path=fleet.path)
    for b in boards:
        plan.boards.setdefault(load_profile(b.target).name, []).append(b.name)
    left = sorted(want - set(plan.boards))
    if left:
        plan.notes.append(f"no board in {cfg.fleet} for {', '.join(left)}: estimated")
