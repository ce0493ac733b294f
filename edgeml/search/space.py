"""The search space of ``edgeml search``: prune method x sparsity, quantization scheme (mode, per-channel,
calibration method), deployable format, and a float-fallback budget -- declared in TOML (``--space``) or
taken from defaults that fit the model's format and the targets.

    [prune]
    methods  = ["none", "magnitude", "channel"]   # "none": no pruning (always a baseline)
    sparsity = [0.25, 0.5]                        # crossed with every method but "none"

    [quantize]
    modes       = ["fp32", "int8", "float16"]     # fp32 = not quantized; TFLite: int8 int16x8 float16 dynamic
    per_channel = [true]                          # int8 weights per channel or per tensor
    methods     = ["minmax"]                      # calibration; ONNX also entropy, percentile
    max_float_ops = 0                             # fallback budget: ops a quantized TFLite variant may leave
                                                  # in float (ONNX quantization does not report them)

    [format]
    formats = ["tflite", "onnx"]

The cross product is filtered: a combination that cannot be built (TFLite calibrates with min/max only, ONNX
has no float16 mode, an ONNX source prunes by magnitude only, ...) is dropped with its reason. A target keeps
the variants it can run (its formats; full-int8 targets take int8 only). A space that leaves a target with no
variant is refused before any work starts.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml._io import keys_hint
from edgeml.errors import EdgeMLError
from edgeml.options import CalibMethod, ConvertTo, PruneMethod, QuantMode

# the option vocabularies, plus "none" (no pruning) and "fp32" (not quantized)
PRUNE_METHODS = ("none", *PruneMethod.values())
MODES = ("fp32", *QuantMode.values())
ONNX_MODES = ("fp32", QuantMode.INT8.value, QuantMode.DYNAMIC.value)
CALIB_METHODS = CalibMethod.values()
FORMATS = ConvertTo.values()
_KEYS = {"prune": {"methods", "sparsity"}, "quantize": {"modes", "per_channel", "methods", "max_float_ops"},
         "format": {"formats"}}


@dataclass
class Space:
    prune_methods: list[str] = field(default_factory=lambda: ["none"])
    sparsity: list[float] = field(default_factory=list)
    modes: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    per_channel: list[bool] = field(default_factory=lambda: [True])
    calib_methods: list[str] = field(default_factory=lambda: ["minmax"])
    max_float_ops: int | None = None
    formats: list[str] = field(default_factory=lambda: ["tflite"])
    origin: str = "defaults"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_toml(self) -> str:
        def val(v: Any) -> str:
            import json

            return str(v).lower() if isinstance(v, bool) else json.dumps(v)

        def lst(v: list) -> str:
            return "[" + ", ".join(val(x) for x in v) + "]"

        # a key no choice reads (sparsity without pruning, calibration without int8) is left out: load_space
        # refuses it
        lines = ["[prune]", f"methods = {lst(self.prune_methods)}"]
        lines += [f"sparsity = {lst(self.sparsity)}"] if self.sparsity else []
        lines += ["", "[quantize]", f"modes = {lst(self.modes)}"]
        if any(m in ("int8", "int16x8") for m in self.modes):
            lines += [f"per_channel = {lst(self.per_channel)}", f"methods = {lst(self.calib_methods)}"]
        if self.max_float_ops is not None:
            lines.append(f"max_float_ops = {self.max_float_ops}")
        lines += ["", "[format]", f"formats = {lst(self.formats)}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Trial:
    """One point of the space: the variant it builds is named by :attr:`name` (also its file name)."""
    prune_method: str  # none | magnitude | channel
    sparsity: float
    mode: str  # fp32 | int8 | int16x8 | float16 | dynamic
    per_channel: bool
    calib_method: str
    format: str

    @property
    def prune_id(self) -> str | None:
        if self.prune_method == "none":
            return None
        return f"{'mag' if self.prune_method == 'magnitude' else 'ch'}{round(self.sparsity * 100):d}"

    @property
    def name(self) -> str:
        q = self.mode
        if self.mode in ("int8", "int16x8") and not self.per_channel:
            q += "-pt"
        if self.mode in ("int8", "int16x8") and self.calib_method != "minmax":
            q += f"-{self.calib_method}"
        return "-".join(p for p in (self.prune_id, q) if p) + f".{self.format}"

    def options(self) -> dict[str, Any]:
        return asdict(self)


def _list(table: dict[str, Any], key: str, where: str, kind: type, allowed: tuple | None = None) -> list | None:
    if key not in table:
        return None
    v = table[key]
    v = v if isinstance(v, list) else [v]
    if not v:
        raise EdgeMLError(f"{where}: {key} is empty", hint="list at least one value, or leave the key out")
    out = []
    for x in v:
        if kind is float and isinstance(x, int) and not isinstance(x, bool):
            x = float(x)
        if not isinstance(x, kind) or (kind is not bool and isinstance(x, bool)):
            raise EdgeMLError(f"{where}: {key} = {v!r}: expected {kind.__name__} values")
        if allowed is not None and x not in allowed:
            raise EdgeMLError(f"{where}: {key}: {x!r} is not one of {', '.join(map(str, allowed))}")
        if x not in out:
            out.append(x)
    return out


def load_space(path: str | Path) -> Space:
    """A space TOML (see the module docstring); unknown tables and keys are named."""
    from edgeml._io import read_toml

    p = Path(path)
    data = read_toml(p, what="search space", hint="see `help(edgeml.search.space)` for the [prune] [quantize] "
                                                  "[format] tables")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise EdgeMLError(f"{p}: unknown table [{unknown[0]}]", hint=keys_hint(unknown[0], _KEYS))
    space = Space(origin=str(p))
    for table, keys in _KEYS.items():
        t = data.get(table, {})
        if not isinstance(t, dict):
            raise EdgeMLError(f"{p}: {table} must be a table ([{table}])")
        bad = sorted(set(t) - keys)
        if bad:
            raise EdgeMLError(f"{p}: [{table}] unknown key {bad[0]!r}", hint=keys_hint(bad[0], keys))
    pr, q, f = data.get("prune", {}), data.get("quantize", {}), data.get("format", {})
    where = str(p)
    space.prune_methods = _list(pr, "methods", f"{where} [prune]", str, PRUNE_METHODS) or space.prune_methods
    space.sparsity = _list(pr, "sparsity", f"{where} [prune]", float) or []
    for s in space.sparsity:
        if not 0 < s < 1:
            raise EdgeMLError(f"{where} [prune]: sparsity {s}: a fraction in (0, 1)",
                              hint="e.g. sparsity = [0.25, 0.5]")
    if any(m != "none" for m in space.prune_methods) and not space.sparsity:
        raise EdgeMLError(f"{where} [prune]: methods {space.prune_methods} need sparsity values",
                          hint="e.g. sparsity = [0.25, 0.5]")
    space.modes = _list(q, "modes", f"{where} [quantize]", str, MODES) or space.modes
    space.per_channel = _list(q, "per_channel", f"{where} [quantize]", bool) or space.per_channel
    space.calib_methods = _list(q, "methods", f"{where} [quantize]", str, CALIB_METHODS) or space.calib_methods
    if "max_float_ops" in q:
        m = q["max_float_ops"]
        if not isinstance(m, int) or isinstance(m, bool) or m < 0:
            raise EdgeMLError(f"{where} [quantize]: max_float_ops = {m!r}: a count >= 0")
        space.max_float_ops = m
    space.formats = _list(f, "formats", f"{where} [format]", str, FORMATS) or space.formats
    _refuse_unused(space, pr, q, where)
    return space


def _refuse_unused(space: Space, pr: dict[str, Any], q: dict[str, Any], where: str) -> None:
    """Keys the space's own choices would never read are an error, not silently dropped from the cross product."""
    if "sparsity" in pr and all(m == "none" for m in space.prune_methods):
        raise EdgeMLError(f"{where} [prune]: sparsity {space.sparsity} applies to pruning methods, and methods "
                          f"{space.prune_methods} prune nothing",
                          hint="add a method (magnitude, channel), or drop sparsity")
    calibrated = [m for m in space.modes if m in ("int8", "int16x8")]
    unused = [k for k in ("per_channel", "methods") if k in q and not calibrated]
    if unused:
        raise EdgeMLError(f"{where} [quantize]: {' and '.join(unused)} apply to int8 and int16x8 modes, and modes "
                          f"{space.modes} have neither", hint="add int8 to modes, or drop " + " and ".join(unused))


def default_space(model_format: str, profiles: list[Any]) -> Space:
    """Defaults that fit the source format; formats: each target's preferred one."""
    formats: list[str] = []
    for prof in profiles:
        if prof.formats and prof.formats[0] not in formats:
            formats.append(prof.formats[0])
    if model_format == "onnx":
        return Space(prune_methods=["none", "magnitude"], sparsity=[0.5], modes=["fp32", "int8"],
                     per_channel=[True, False], calib_methods=["minmax"], formats=["onnx"])
    if model_format == "tflite":
        return Space(prune_methods=["none"], sparsity=[], modes=["fp32", "int8"], formats=["tflite"])
    if model_format == "savedmodel":
        return Space(prune_methods=["none"], sparsity=[], modes=["fp32", "int8", "float16"],
                     formats=[f for f in formats if f in FORMATS] or ["tflite"])
    return Space(prune_methods=["none", "channel"], sparsity=[0.25, 0.5], modes=["fp32", "int8", "float16"],
                 formats=[f for f in formats if f in FORMATS] or ["tflite"])


def why_invalid(t: Trial, model_format: str) -> str | None:
    """Why this combination cannot be built from a ``model_format`` source (None: it can)."""
    if t.format == "onnx" and t.mode not in ONNX_MODES:
        return f"ONNX has no {t.mode} mode (int8, dynamic)"
    if t.format == "tflite" and t.mode in ("int8", "int16x8") and t.calib_method != "minmax":
        return "TFLite calibrates with min/max only"
    if model_format == "onnx" and t.format == "tflite":
        return "an ONNX source is not converted to TFLite"
    if model_format == "tflite" and t.format == "onnx":
        return "a .tflite source is not converted to ONNX"
    if model_format == "tflite" and t.mode not in ("fp32", "int8", "int16x8", "dynamic"):
        return f"a .tflite source is quantized by the AI Edge Quantizer ({t.mode} is not offered)"
    if t.prune_method != "none":
        if model_format in ("tflite", "savedmodel"):
            return f"a {model_format} source is not pruned (prune the Keras model)"
        if model_format == "onnx" and t.prune_method == "channel":
            return "an ONNX source is pruned by magnitude only"
    return None


def expand(space: Space, model_format: str) -> tuple[list[Trial], dict[str, int]]:
    """The valid trials of ``space`` (prune outer, format inner) and {reason: count} for the dropped ones."""
    prunes = [("none", 0.0)] if "none" in space.prune_methods else []
    prunes += [(m, s) for m in space.prune_methods if m != "none" for s in space.sparsity]
    quants: list[tuple[str, bool, str]] = []
    for mode in space.modes:
        combos: list[tuple[bool, str]]
        if mode in ("int8", "int16x8"):
            combos = list(itertools.product(space.per_channel, space.calib_methods))
        else:  # no calibration choices: one variant
            combos = [(True, "minmax")]
        quants += [(mode, pc, cm) for pc, cm in combos]
    trials: list[Trial] = []
    dropped: dict[str, int] = {}
    seen = set()
    for (pm, sp), (mode, pc, cm), fmt in itertools.product(prunes, quants, space.formats):
        t = Trial(pm, sp, mode, pc, cm, fmt)
        why = why_invalid(t, model_format)
        if why:
            dropped[why] = dropped.get(why, 0) + 1
        elif t.name not in seen:
            seen.add(t.name)
            trials.append(t)
    return trials, dropped


def runs_on(t: Trial, profile: Any) -> str | None:
    """Why ``profile`` cannot run trial ``t``'s variant (None: it can)."""
    if not profile.accepts(t.format):
        return f"{profile.name} runs {', '.join(profile.formats)} models"
    if profile.full_int8 and t.mode != "int8":
        return f"{profile.name} runs full-int8 models only"
    return None
