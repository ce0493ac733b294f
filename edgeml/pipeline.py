"""The one-command pipeline behind ``edgeml optimize`` and ``edgeml run RECIPE.toml``:
prune -> convert (fp32 variants) -> quantize -> bench (host / board) or estimate -> report -> check.

The CLI options and the recipe are the same config (``Recipe``). Every artifact lands in ``out`` with a
manifest (``run.json``, schema edgeml.run/1): input hashes, options, library versions and each stage's
outputs. A stage whose inputs (content hashes) and options did not change since the last run is skipped.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeml import __version__
from edgeml._io import json_text, keys_hint, rebase_path, rebase_spec, spec_parts, write_bytes_atomic
from edgeml.errors import EdgeMLError, UsageError

if TYPE_CHECKING:
    from edgeml.check import CheckResult
    from edgeml.report import Report
    from edgeml.report.rank import Ranking

MANIFEST = "run.json"
LIBS = ("tensorflow", "keras", "ai-edge-litert", "onnx", "onnxruntime", "onnxsim", "numpy")


@dataclass
class RunConfig:
    """What a pipeline run (``Recipe``) and a search (``edgeml.search.SearchConfig``) both take."""

    model: str
    out: str
    targets: list[str] = field(default_factory=lambda: ["host"])
    calib: str | None = None
    eval: str | None = None
    train: str | None = None
    epochs: int = 5
    runs: int = 50
    budget: dict[str, Any] = field(default_factory=dict)
    input_shape: list[str] | None = None  # ["NAME=D0,D1,..."]: dynamic input dims (edgeml.formats.shapes)


@dataclass
class Recipe(RunConfig):
    """A pipeline run; ``edgeml optimize``'s options and a recipe TOML are this same config."""

    prune: float = 0.0
    prune_method: str = "channel"
    lr: float = 1e-3
    # None: tflite for a Keras/SavedModel source, the source's own format for a .tflite/.onnx one; an ONNX
    # source also goes to tflite when asked (onnx2tf, edgeml.convert.onnx_tflite)
    formats: list[str] | None = None
    calib_samples: int = 200
    host: str | None = None  # SSH board for the first non-host target
    training: str | None = None  # an edgeml.train/1 JSON: how the model was trained (for the report)
    train_power_w: float | None = None  # average power while training: energy break-even in the report
    max_accuracy_drop: float | None = None  # quantize budget: top-1 drop on eval (edgeml.quantize.budget)
    min_fidelity: float | None = None  # quantize budget: worst output's mean cosine vs float

    def validate(self) -> Recipe:
        if not Path(self.model).exists():
            raise EdgeMLError(f"{self.model}: model not found", hint="check the model path (relative to the recipe)")
        if not self.calib:
            raise EdgeMLError("the pipeline quantizes to int8 and needs calibration data",
                              hint="`calib` SPEC (recipe: calib = \"SPEC\"), e.g. builtin:digits?split=train")
        if self.train_power_w is not None and not self.train_power_w > 0:
            raise EdgeMLError(f"train_power_w = {self.train_power_w}: watts, > 0")
        if not 0 <= self.prune < 1:
            raise EdgeMLError(f"prune = {self.prune}: a sparsity in [0, 1)", hint="0 skips pruning; e.g. 0.5")
        if self.prune and not self.train:
            raise EdgeMLError("pruning in the pipeline fine-tunes and needs `train` SPEC",
                              hint="add `train` (recipe: train = \"SPEC\") or drop `prune`")
        if self.input_shape is not None:
            from edgeml.formats.shapes import format_input_shapes

            self.input_shape = format_input_shapes(self.input_shape)  # refuses a malformed one
        self._refuse_unused()
        bad = [f for f in self.formats or () if f not in ("tflite", "onnx")]
        if bad or self.formats == []:
            raise EdgeMLError(f"formats = {self.formats}: tflite and/or onnx")
        from edgeml.targets import load_profile

        for t in self.targets:
            load_profile(t)
        return self

    def _refuse_unused(self) -> None:
        """Keys set away from their defaults that the chosen stages would not read are refused, never dropped."""
        defaults = {f.name: f.default for f in fields(Recipe)}
        unused = [k for k in ("prune_method", "epochs", "lr", "train") if getattr(self, k) != defaults[k]]
        if unused and not self.prune:
            raise UsageError(f"{', '.join(f'`{k}`' for k in unused)}: used by pruning only, and `prune` is 0 "
                             "(no pruning)", hint="set `prune` SPARSITY (e.g. 0.5), or drop them")
        if self.host and all(t == "host" for t in self.targets):
            raise UsageError(f"`host` {self.host}: no board target to measure on it (`targets` {self.targets})",
                             hint="add the board's `targets` profile (e.g. rpi4), or drop `host`")
        if self.budget:  # the check stage's budget: malformed, unknown or unread keys refused before any work
            from edgeml.check import recipe_budget

            recipe_budget(self.budget, self.model, target=self.targets[0], data=self.eval, baseline=self.model)

    def to_toml(self, base: str | Path | None = None) -> str:
        """The recipe as TOML: `edgeml optimize ... --dry-run > recipe.toml` then `edgeml run recipe.toml`.

        With ``base`` (the folder the recipe file will be in), relative paths -- given relative to the current
        directory -- are rewritten relative to ``base``, the way :func:`load_recipe` reads them back; absolute
        paths stay absolute. So a recipe of relative paths can be committed next to its model.
        """
        def val(v: Any) -> str:
            return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

        data = asdict(self)
        if base is not None:
            for key in PATH_KEYS:
                if isinstance(data.get(key), str):
                    data[key] = rebase_path(data[key], Path.cwd(), Path(base))
            for key in SPEC_KEYS:
                if isinstance(data.get(key), str):
                    data[key] = rebase_spec(data[key], Path.cwd(), Path(base))
        lines = [f"{k} = {val(v)}" for k, v in data.items() if k != "budget" and v is not None]
        if self.budget:
            lines += ["", "[budget]"] + [f"{k} = {val(v)}" for k, v in self.budget.items()]
        return "\n".join(lines) + "\n"


_FIELDS = {f.name for f in fields(Recipe)}
PATH_KEYS = ("model", "out", "training")  # file paths in a recipe
SPEC_KEYS = ("calib", "eval", "train")  # data specs: PATH[?k=v...], a .toml spec or builtin:NAME


def load_recipe(path: str | Path, **overrides: Any) -> Recipe:
    """A recipe TOML; relative paths resolve against its folder; unknown keys are named."""
    from edgeml._io import read_toml

    p = Path(path)
    data = read_toml(p, what="recipe", hint="`edgeml.optimize(..., dry_run=True)` > recipe.toml writes one")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise UsageError(f"{p}: unknown key {unknown[0]!r}", hint=keys_hint(unknown[0], _FIELDS))
    for key in PATH_KEYS:
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str(p.parent / data[key])
    for key in SPEC_KEYS:  # a data file named in a committed recipe is next to the recipe, like the model
        spec = data.get(key)
        if isinstance(spec, str) and spec and not spec.startswith("builtin:"):
            path, query = spec_parts(spec, p.parent)
            if path and not Path(path).is_absolute():
                data[key] = str(p.parent / path) + query
    if isinstance(data.get("targets"), str):
        data["targets"] = [data["targets"]]
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "model" not in data or "out" not in data:
        raise EdgeMLError(f"{p}: needs model = \"PATH\" and out = \"RUN_DIR\"")
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise EdgeMLError(f"{p}: {exc}") from exc


def sha256(path: str | Path) -> str:
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else "").encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"edgeml": __version__}
    for lib in LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def stage_key(name: str, options: dict[str, Any], input_hashes: list[str]) -> str:
    """The content-hash key of a stage: its name, options and the sha256 of each input (the stage cache;
    ``edgeml search`` keys its trials the same way)."""
    return hashlib.sha256(json_text({"stage": name, "options": options, "inputs": input_hashes}).encode()).hexdigest()


def outputs_intact(folder: Path, outputs: dict[str, str]) -> bool:
    """Every recorded output (name -> sha256) is still in ``folder`` with the same content."""
    return all((folder / o).exists() and sha256(folder / o) == h for o, h in outputs.items())


@dataclass
class RunResult:
    out: str
    manifest: dict[str, Any]
    report: Report
    check: CheckResult | None
    ranking: Ranking | None = None  # the variants, best first

    @property
    def passed(self) -> bool:
        return self.check is None or self.check.passed


class _Run:
    def __init__(self, recipe: Recipe, say: Callable[[str], None]):
        self.r = recipe
        self.dir = Path(recipe.out)
        self.say = say
        old = self.dir / MANIFEST
        self.old = json.loads(old.read_text()).get("stages", {}) if old.exists() else {}
        self.stages: dict[str, dict[str, Any]] = {}
        self.n = 0

    def stage(self, name: str, options: dict[str, Any], inputs: list[Path], fn: Callable[[], dict[str, Any]],
              total: int) -> dict[str, Any]:
        """Run ``fn`` unless the same options and input hashes produced outputs that are still there."""
        self.n += 1
        key = stage_key(name, options, [sha256(p) for p in inputs])
        prev = self.old.get(name)
        if prev and prev.get("key") == key and outputs_intact(self.dir, prev.get("outputs", {})):
            self.say(f"[{self.n}/{total}] {name}: up to date (inputs and options unchanged), skipped")
            self.stages[name] = dict(prev, status="skipped")
            return self.stages[name]
        self.say(f"[{self.n}/{total}] {name}")
        t = time.perf_counter()
        res = fn()
        outputs = {o: sha256(self.dir / o) for o in res.get("outputs", [])}
        self.stages[name] = {"key": key, "options": options, "inputs": {str(p): sha256(p) for p in inputs},
                             "outputs": outputs, "results": res.get("results", []), "status": "ran",
                             "seconds": round(time.perf_counter() - t, 2)}
        return self.stages[name]

    def save(self, extra: dict[str, Any]) -> dict[str, Any]:
        manifest = {"schema": "edgeml.run/1", "edgeml": __version__,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "config": asdict(self.r), "inputs": {self.r.model: sha256(self.r.model)},
                    "versions": versions(), "stages": self.stages, **extra}
        write_bytes_atomic(self.dir / MANIFEST, json_text(manifest).encode())
        return manifest


def _write(path: Path, data: dict[str, Any]) -> str:
    write_bytes_atomic(path, json_text(data).encode())
    return path.name


def run_pipeline(recipe: Recipe, *, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run (or bring up to date) the pipeline for ``recipe``; see the module docstring."""
    from edgeml.artifact import ModelArtifact, ModelFormat

    say = progress or (lambda m: None)
    r = dataclasses.replace(recipe).validate()  # a copy: the caller's recipe is not changed
    d = Path(r.out)
    d.mkdir(parents=True, exist_ok=True)
    run = _Run(r, say)
    src = Path(r.model)
    fmt = ModelArtifact.open(src).format
    keras_like = fmt in (ModelFormat.KERAS, ModelFormat.H5, ModelFormat.SAVEDMODEL)
    if r.prune and fmt not in (ModelFormat.KERAS, ModelFormat.H5):
        raise EdgeMLError(f"{src}: the pipeline prunes Keras models (.keras, .h5)", hint="drop `prune`")
    total = 4 + bool(r.prune) + bool(r.budget)  # [prune] convert quantize bench report [check]
    sources = {"fp32": src}
    if r.prune:
        def do_prune() -> dict[str, Any]:
            from edgeml.options import PruneOptions
            from edgeml.prune import prune

            res = prune(src, options=PruneOptions(out=d / "pruned.keras", sparsity=r.prune, method=r.prune_method,
                                                  train=r.train, val=r.eval, epochs=r.epochs, lr=r.lr, force=True),
                        progress=say)
            return {"outputs": ["pruned.keras"], "results": [_write(d / "prune.json", res.to_dict())]}

        run.stage("prune", {k: getattr(r, k) for k in ("prune", "prune_method", "train", "eval", "epochs", "lr")},
                  [src], do_prune, total)
        sources["pruned"] = d / "pruned.keras"

    if r.formats is None and fmt is ModelFormat.ONNX:
        from edgeml.targets import load_profile

        # an ONNX model for a TFLite-only target (coral-usb): convert it rather than refuse
        r.formats = ["onnx"] if load_profile(r.targets[0]).accepts("onnx") else ["tflite"]
    if r.formats is None or (not keras_like and fmt is not ModelFormat.ONNX):
        # a deployable source is the fp32 variant in its own format; an ONNX one may also become TFLite (onnx2tf)
        r.formats = ["tflite"] if keras_like else [fmt.value]
    formats: list[str] = list(r.formats)

    def do_convert() -> dict[str, Any]:
        from edgeml.convert import convert
        from edgeml.options import ConvertOptions

        outs = []
        for name, s in sources.items():
            for f in formats:
                if keras_like or f != fmt.value:  # ONNX -> TFLite: onnx2tf, verified on the calibration data
                    convert(s, options=ConvertOptions(to=f, out=d / f"{name}.{f}", force=True,
                                                      input_shapes=r.input_shape,
                                                      calib=None if keras_like else r.calib), progress=say)
                else:
                    write_bytes_atomic(d / f"{name}.{f}", s.read_bytes())
                outs.append(f"{name}.{f}")
        return {"outputs": outs}

    shapes = {"input_shape": r.input_shape} if r.input_shape else {}  # part of the stage cache keys
    conv = run.stage("convert", {"formats": r.formats, **shapes}, list(sources.values()), do_convert, total)
    deployables = list(conv["outputs"])

    def do_quantize() -> dict[str, Any]:
        from edgeml.options import QuantizeOptions
        from edgeml.quantize import quantize

        outs, results = [], []
        for name, s in sources.items():
            for f in formats:
                out = f"{'int8' if name == 'fp32' else name + '_int8'}.{f}"
                o = QuantizeOptions(out=d / out, calib=r.calib, format=f, eval=r.eval, calib_samples=r.calib_samples,
                                    target=r.targets[0], force=True, input_shapes=r.input_shape,
                                    max_accuracy_drop=r.max_accuracy_drop, min_fidelity=r.min_fidelity)
                q = quantize(s, options=o, progress=say)
                outs.append(out)
                results.append(_write(d / f"quantize_{Path(out).stem}_{f}.json", q.to_dict()))
        return {"outputs": outs, "results": results}

    qopts = {**shapes, "calib": r.calib, "calib_samples": r.calib_samples, "formats": r.formats,
             "target": r.targets[0], "eval": r.eval,
             **{k: v for k, v in (("max_accuracy_drop", r.max_accuracy_drop), ("min_fidelity", r.min_fidelity))
                if v is not None}}
    quant = run.stage("quantize", qopts, list(sources.values()), do_quantize, total)
    deployables += list(quant["outputs"])

    def do_bench() -> dict[str, Any]:
        from edgeml.bench.harness import bench
        from edgeml.options import BenchOptions
        from edgeml.targets import load_profile

        results = []
        board = next((t for t in r.targets if t != "host"), None)
        for t in r.targets:
            prof = load_profile(t)
            models = [d / m for m in deployables if prof.accepts(Path(m).suffix[1:])]
            host = None
            if r.host and t == board:
                from edgeml.targets.remote import SSHTarget

                host = SSHTarget.parse(r.host)
            res = bench(models, options=BenchOptions(target=t, host=host, runs=r.runs,
                                                     data=r.eval if (prof.is_host or host) else None,
                                                     input_shapes=r.input_shape), progress=say)
            results.append(_write(d / f"bench_{prof.name}.json", res.to_dict()))
        return {"results": results}

    run.stage("bench", {"targets": r.targets, "runs": r.runs, "eval": r.eval, "host": r.host, **shapes},
              [d / m for m in deployables], do_bench, total)
    if r.training:
        run.stages["training"] = {"status": "given", "results": [str(Path(r.training).resolve())]}
    manifest = run.save({})
    say(f"[{run.n + 1}/{total}] report")
    from edgeml.report import build_report, write_report
    from edgeml.report.rank import rank_variants

    rep = build_report([d / MANIFEST], train_power_w=r.train_power_w)
    ranking = rank_variants(rep, r.budget, target=rep.targets[0] if rep.targets else None)
    if ranking.best:  # headline (and gate) the best variant, not the last one benched
        rep.deploy = ranking.best
    for suffix in (".html", ".md", ".json"):
        write_report(rep, d / f"report{suffix}", force=True)
    manifest = run.save({"best": ranking.to_dict()})
    check = None
    if r.budget:
        say(f"[{run.n + 2}/{total}] check")
        from edgeml.check import recipe_budget, run_check
        from edgeml.options import CheckOptions

        final = d / rep.deploy
        budget = recipe_budget(r.budget, final, target=r.targets[0], data=r.eval,
                               baseline=d / f"fp32.{final.suffix[1:]}")
        check = run_check([budget], options=CheckOptions(repeat=3, runs=r.runs, input_shapes=r.input_shape),
                          progress=say)
        _write(d / "check.json", check.to_dict())
        manifest = run.save({"best": ranking.to_dict(), "check": "check.json"})
    return RunResult(out=str(d), manifest=manifest, report=rep, check=check, ranking=ranking)
