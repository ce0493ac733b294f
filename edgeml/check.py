"""edgeml check: CI gates on model size, latency and accuracy budgets.

Budgets come from a TOML file, ``[tool.edgeml]`` in pyproject.toml, or flags; the layout is the same
everywhere::

    [defaults]                      # optional, applied to every budget
    target = "host"
    data = "builtin:digits?split=test"

    [[budget]]
    model = "model_int8.tflite"     # relative to the budget file
    max_size = "300KiB"             # B, KB, KiB, MB, MiB, GB, GiB
    max_latency_ms = 5
    percentile = "p90"              # p50 (default), p90, p99, mean, max
    min_accuracy = 0.95
    max_accuracy_drop = 0.01        # with baseline = "model.tflite"

Latency on a noisy CI runner: the model is benchmarked ``repeat`` times, each in a fresh process; the budget
is compared with the median of the per-run percentiles, and the spread across runs is reported. A target
without a board (``--target rpi4`` and no ``host``) is checked against the labelled estimate.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeml import __version__
from edgeml._io import keys_hint, path_size
from edgeml._types import InputShapes
from edgeml.errors import BudgetError
from edgeml.options import BenchOptions, CheckOptions, Percentile

UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000 ** 2, "mib": 1024 ** 2, "gb": 1000 ** 3, "gib": 1024 ** 3}
PERCENTILES = Percentile.values()




def parse_size(value: Any, where: str = "max_size") -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in UNITS or float(m.group(1)) <= 0:
        raise BudgetError(f"{where} = {value!r}: not a size", hint="e.g. 300KiB, 1.5MB, 2MiB or a byte count")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


@dataclass
class Budget:
    model: str
    target: str = "host"
    host: str | None = None
    data: str | None = None
    max_size: int | None = None
    max_latency_ms: float | None = None
    percentile: str = "p50"
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    baseline: str | None = None
    origin: str = "flags"

    def validate(self) -> Budget:
        where = self.origin
        if self.percentile not in PERCENTILES:
            raise BudgetError(f"{where}: percentile = {self.percentile!r}", hint=f"one of {', '.join(PERCENTILES)}")
        for key in ("max_latency_ms", "min_accuracy", "max_accuracy_drop"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
                raise BudgetError(f"{where}: {key} = {v!r} must be a non-negative number")
        for key in ("min_accuracy", "max_accuracy_drop"):
            v = getattr(self, key)
            if v is not None and v > 1:
                raise BudgetError(f"{where}: {key} = {v} is a fraction", hint=f"e.g. {key} = {v / 100:g} for {v:g} %")
        if self.max_accuracy_drop is not None and not self.baseline:
            raise BudgetError(f"{where}: max_accuracy_drop needs a baseline model", hint="add baseline = \"MODEL\"")
        if (self.min_accuracy is not None or self.max_accuracy_drop is not None) and not self.data:
            raise BudgetError(f"{where}: accuracy budgets need labelled data", hint="add data = \"SPEC\" (or `data`)")
        if None is self.max_size is self.max_latency_ms is self.min_accuracy is self.max_accuracy_drop:
            raise BudgetError(f"{where}: budget for {self.model} sets no limit",
                              hint="set max_size, max_latency_ms, min_accuracy or max_accuracy_drop")
        return self

    def set_keys(self) -> set[str]:
        """The keys set away from their defaults (a Budget made in Python: what its caller gave)."""
        return {f.name for f in fields(self) if f.name != "origin" and getattr(self, f.name) != f.default}

    def refuse_unused(self, given: Any) -> Budget:
        """Keys in ``given`` (set for this budget itself, not in [defaults]) that no limit of it reads are an
        error: ``percentile = "p90"`` without max_latency_ms would otherwise pass unchecked."""
        for key, needs in _USED_BY.items():
            if key in given and all(getattr(self, n) is None for n in needs):
                raise BudgetError(f"{self.origin}: {key} applies to {' or '.join(needs)}, which this budget does not "
                                  "set", hint=f"add {' or '.join(needs)}, or drop {key}")
        return self


# keys read only by these limits (a key in [defaults] applies to every budget and may go unused by some)
_USED_BY = {"percentile": ("max_latency_ms",), "target": ("max_latency_ms",), "host": ("max_latency_ms",),
            "baseline": ("max_accuracy_drop",), "data": ("min_accuracy", "max_accuracy_drop")}

_KEYS = {f.name for f in fields(Budget)} - {"origin"}


def make_budget(entry: Any, defaults: dict[str, Any], base: Path, origin: str) -> Budget:
    if not isinstance(entry, dict):
        raise BudgetError(f"{origin}: each [[budget]] must be a table")
    merged = {**defaults, **entry}
    unknown = sorted(set(merged) - _KEYS)
    if unknown:
        raise BudgetError(f"{origin}: unknown key {unknown[0]!r}", hint=keys_hint(unknown[0], _KEYS))
    if "model" not in merged:
        raise BudgetError(f"{origin}: missing key 'model'", hint="each [[budget]] names its model = \"PATH\"")
    for key in ("model", "baseline"):
        if merged.get(key) is not None:
            p = Path(str(merged[key]))
            merged[key] = str(p if p.is_absolute() else base / p)
    if merged.get("max_size") is not None:
        merged["max_size"] = parse_size(merged["max_size"], f"{origin}: max_size")
    return Budget(**merged, origin=origin).validate().refuse_unused(entry)


def recipe_budget(table: dict[str, Any], model: str | Path, *, target: str, data: str | None,
                  baseline: str | Path) -> Budget:
    """A pipeline recipe's [budget] table for ``model``: the run's first target and eval data as defaults, an
    accuracy drop measured against ``baseline`` unless the table names one."""
    entry = dict(table, model=str(model))
    if "max_accuracy_drop" in entry:
        entry.setdefault("baseline", str(baseline))
    return make_budget(entry, {"target": target, "data": data}, Path("."), "recipe [budget]")


def load_budgets(path: str | Path) -> list[Budget]:
    """Budgets from a budget TOML file or a pyproject.toml (its [tool.edgeml] table)."""
    from edgeml._io import read_toml

    p = Path(path)
    data = read_toml(p, what="budget file", hint="pass `budget=FILE`, or set [tool.edgeml] in pyproject.toml",
                     error=BudgetError)
    if p.name == "pyproject.toml":
        data = data.get("tool", {}).get("edgeml")
        if data is None:
            raise BudgetError(f"{p}: no [tool.edgeml] table", hint="add [[tool.edgeml.budget]] entries")
    unknown = sorted(set(data) - {"defaults", "budget"})
    if unknown:
        raise BudgetError(f"{p}: unknown key {unknown[0]!r}",
                          hint="a budget file has [defaults] and [[budget]] tables; "
                               + keys_hint(unknown[0], ("defaults", "budget")))
    entries = data.get("budget", [])
    if not isinstance(entries, list) or not entries:
        raise BudgetError(f"{p}: no [[budget]] entries", hint="add at least one [[budget]] with model = \"PATH\"")
    defaults = data.get("defaults", {})
    return [make_budget(e, defaults, p.parent, f"{p} budget #{i + 1}") for i, e in enumerate(entries)]


def pyproject_budgets(path: str | Path = "pyproject.toml") -> list[Budget] | None:
    """Budgets from ``[tool.edgeml]`` in a pyproject.toml; None when there is no such file or table.

    The file is parsed for real (never searched as text): malformed TOML is a BudgetError, not "no budgets".
    """
    from edgeml._io import read_toml

    p = Path(path)
    if not p.is_file():
        return None
    data = read_toml(p, what="pyproject.toml", hint="", error=BudgetError)
    tool = data.get("tool")
    if not isinstance(tool, dict) or "edgeml" not in tool:
        return None
    if not isinstance(tool["edgeml"], dict):
        raise BudgetError(f"{p}: [tool.edgeml] must be a table", hint="add [[tool.edgeml.budget]] entries")
    return load_budgets(p)


@dataclass
class Item:
    model: str
    budget: str
    limit: float
    measured: float | None
    unit: str
    passed: bool
    detail: str = ""
    kind: str = "measured"

    @property
    def status(self) -> str:
        return "pass" if self.passed else "FAIL"


@dataclass
class CheckResult:
    items: list[Item]
    noise: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.check/1", "edgeml": __version__, "passed": self.passed,
                "items": [asdict(i) | {"status": i.status} for i in self.items], "noise": self.noise}


def _latency(b: Budget, o: CheckOptions, say: Callable[[str], None]) -> tuple[float, str, str]:
    from edgeml.bench.harness import bench, ssh_target

    # one bench per repeat: the budget's target and board, the check's runs and input shapes
    bench_options = BenchOptions(target=b.target, host=ssh_target(b.host or None), runs=o.runs,
                                 input_shapes=o.input_shapes)
    values = []
    for k in range(o.repeat):
        r = bench([b.model], options=bench_options)
        m = r.models[0]
        if not r.measured:
            e = m["estimate"]
            return e["ms"], f"estimated for {b.target} ({e['basis']})", "estimated"
        say(f"  {Path(b.model).name} on {b.target}: run {k + 1}/{o.repeat} {b.percentile} "
            f"{m['latency_ms'][b.percentile]:.4g} ms")
        values.append(m["latency_ms"][b.percentile])
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med * 100 if med else 0.0
    return med, (f"median of {o.repeat} runs x {o.runs}: {b.percentile} per run "
                 f"{', '.join(f'{v:.4g}' for v in values)} ms (spread {spread:.0f} %)"), "measured"


def _parse_model(art: Any) -> None:
    """Parse the model's structure (cheaply: no runtime, no TensorFlow); a non-model raises ModelLoadError.

    Detection reads only the first bytes (a text file can look like an ONNX protobuf), so ONNX and TFLite
    files are parsed whole; Keras zips (config.json), HDF5 and SavedModel folders were already checked.
    """
    from edgeml.artifact import ModelFormat

    if art.format is ModelFormat.ONNX:
        from edgeml.formats.onnx import check_safe

        check_safe(art.path)
    elif art.format is ModelFormat.TFLITE:
        art.inspect()


def run_check(budgets: list[Budget], *, repeat: int = 3, runs: int = 50,
              progress: Callable[[str], None] | None = None, input_shapes: InputShapes | None = None,
              results: list[dict[str, Any]] | None = None, options: CheckOptions | None = None) -> CheckResult:
    """Check every budget; ``input_shapes`` (``NAME=D0,D1,...``) fix dynamic inputs for latency runs.

    ``results`` (fleet results, :func:`edgeml.fleet.load_fleet_results`): latency budgets are checked against
    what every board of the budget's target measured (one item per board) instead of measuring again.
    ``options`` (a :class:`~edgeml.options.CheckOptions`) gives ``repeat``, ``runs`` and ``input_shapes`` at
    once, in place of the keyword arguments (a UsageError when both are given); the work reads that one object."""
    o = CheckOptions.build("check", options, locals())
    return _run_check(budgets, o, progress, results)


def _run_check(budgets: list[Budget], o: CheckOptions, progress: Callable[[str], None] | None,
               results: list[dict[str, Any]] | None) -> CheckResult:
    """:func:`run_check` with its options in one object."""
    from edgeml.artifact import ModelArtifact, ModelFormat

    say = progress or (lambda m: None)
    items: list[Item] = []
    acc_cache: dict[tuple[str, str], float] = {}

    def acc(model: str | None, data: str | None) -> float:
        assert model is not None and data is not None  # Budget.validate() requires data (and a baseline)
        if (model, data) not in acc_cache:
            from edgeml.bench.accuracy import top1

            say(f"  accuracy of {Path(model).name} on {data}")
            acc_cache[(model, data)] = top1(model, data)
        return acc_cache[(model, data)]

    for b in budgets:
        art = ModelArtifact.open(b.model)
        _parse_model(art)  # a size budget alone must not "pass" a file that is no model at all
        name = str(art.path)
        if b.max_size is not None:
            size = art.inspect().size_bytes if art.format is ModelFormat.ONNX else path_size(art.path)
            items.append(Item(name, "max_size", b.max_size, size, "bytes", size <= b.max_size))
        if b.max_latency_ms is not None and results is not None:
            from edgeml.fleet.results import fleet_latencies

            for board, ms, detail in fleet_latencies(results, art.path, b.target, b.percentile):
                items.append(Item(name, f"max_latency_ms ({b.percentile}, {b.target}, {board})", b.max_latency_ms,
                                  ms, "ms", ms <= b.max_latency_ms, detail))
        elif b.max_latency_ms is not None:
            say(f"latency of {art.path.name} on {b.target} ({b.percentile})")
            ms, detail, kind = _latency(b, o, say)
            items.append(Item(name, f"max_latency_ms ({b.percentile}, {b.target})", b.max_latency_ms, ms, "ms",
                              ms <= b.max_latency_ms, detail, kind))
        if b.min_accuracy is not None:
            a = acc(name, b.data)
            items.append(Item(name, "min_accuracy", b.min_accuracy, a, "top-1", a >= b.min_accuracy, f"on {b.data}"))
        if b.max_accuracy_drop is not None:
            a, base = acc(name, b.data), acc(b.baseline, b.data)
            drop = base - a
            items.append(Item(name, "max_accuracy_drop", b.max_accuracy_drop, drop, "top-1",
                              drop <= b.max_accuracy_drop + 1e-12,
                              f"baseline {Path(str(b.baseline)).name} {base:.4f} -> {a:.4f} on {b.data}"))
    return CheckResult(items)


def fmt_value(item: Item, value: float | None) -> str:
    from edgeml.formats.common import human_bytes

    if value is None:
        return "—"
    if item.unit == "bytes":
        return human_bytes(value)
    if item.unit == "ms":
        from edgeml._units import format_ms

        return format_ms(value)
    return f"{value:.4f}"


def junit_xml(result: CheckResult) -> str:
    import xml.etree.ElementTree as ET

    fails = sum(not i.passed for i in result.items)
    suite = ET.Element("testsuite", name="edgeml check", tests=str(len(result.items)), failures=str(fails))
    for i in result.items:
        case = ET.SubElement(suite, "testcase", classname=f"edgeml.check.{Path(i.model).name}", name=i.budget)
        msg = f"measured {fmt_value(i, i.measured)} vs limit {fmt_value(i, i.limit)} ({i.kind})"
        if not i.passed:
            ET.SubElement(case, "failure", message=msg).text = (msg + ("\n" + i.detail if i.detail else ""))
        else:
            ET.SubElement(case, "system-out").text = msg + ("\n" + i.detail if i.detail else "")
    root = ET.Element("testsuites")
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def markdown(result: CheckResult) -> str:
    head = "✅ all budgets met" if result.passed else f"❌ {sum(not i.passed for i in result.items)} budget(s) exceeded"
    lines = [f"### edgeml check: {head}", "", "| model | budget | limit | measured | status |", "|---|---|---|---|---|"]
    for i in result.items:
        status = "✅ pass" if i.passed else "❌ **FAIL**"
        est = " (estimated)" if i.kind == "estimated" else ""
        lines.append(f"| `{Path(i.model).name}` | {i.budget} | {fmt_value(i, i.limit)} "
                     f"| {fmt_value(i, i.measured)}{est} | {status} |")
    notes = [f"- `{Path(i.model).name}` {i.budget}: {i.detail}" for i in result.items if i.detail]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def github_annotations(result: CheckResult) -> list[str]:
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return []
    return [f"::error file={i.model},title=edgeml check {i.budget}::{Path(i.model).name}: {i.budget} measured "
            f"{fmt_value(i, i.measured)} exceeds limit {fmt_value(i, i.limit)}" for i in result.items if not i.passed]
