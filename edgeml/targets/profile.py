"""TargetProfile: what a device is, as data. Built-in profiles live in profiles/*.toml; a user's own
profile is any TOML file with the same keys (``--target ./my-board.toml``)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeml._compat import tomllib
from edgeml._io import keys_hint
from edgeml.errors import EdgeMLError

PROFILE_DIR = Path(__file__).parent / "profiles"
KINDS = ("cpu", "edgetpu", "gpu")
RUNTIMES = ("litert", "onnxruntime", "edgetpu")


@dataclass
class TargetProfile:
    name: str
    description: str
    kind: str = "cpu"
    arch: str = ""
    runtime: str = "litert"
    runtimes: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=lambda: ["tflite", "onnx"])
    full_int8: bool = False
    cores: int = 0
    clock_ghz: float = 0.0
    ram_gb: float | None = None
    bandwidth_gbs: float | None = None
    param_cache_mib: float | None = None
    idle_w: float | None = None
    load_w: float | None = None
    link: str = ""
    link_gbs: float | None = None
    host: str = ""
    peak_gops: dict[str, float] = field(default_factory=dict)
    quantize: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, Any] = field(default_factory=dict)
    overhead: dict[str, Any] = field(default_factory=dict)  # runtime floors: invoke_ms, per_op_ms, source
    match: dict[str, Any] = field(default_factory=dict)  # what a measured environment must show: board, cpu
    sources: dict[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def is_host(self) -> bool:
        return self.name == "host"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.target/1", **asdict(self)}

    def accepts(self, fmt: str) -> bool:
        return fmt in self.formats


def _host_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"arch": platform.machine(), "cores": os.cpu_count() or 1}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.lower().startswith(("model name", "hardware")):
                facts["description"] = f"this machine: {line.split(':', 1)[1].strip()} (measured, never estimated)"
                break
        mhz = [float(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
        if mhz:
            facts["clock_ghz"] = round(max(mhz) / 1000, 2)
    except (OSError, ValueError):
        pass
    return facts


_PRECISIONS = ("fp32", "fp16", "int8")
# the keys each table's readers know ([sources] is free text); cpu_fp32: a GPU board's CPU peak, for the record
_TABLE_KEYS = {
    "peak_gops": {*_PRECISIONS, "cpu_fp32"},
    "estimate": {"coef", "basis", "thread_alpha", *(f"{k}_{p}" for k in ("coef", "basis") for p in _PRECISIONS)},
    "overhead": {"invoke_ms", "per_op_ms", "cpu_fallback_scale", "source"},
    "quantize": {"tflite_io", "onnx_activation", "onnx_weight", "onnx_symmetric", "onnx_basis"},
    "match": {"board", "cpu"},
}


def _from_dict(data: dict[str, Any], where: str) -> TargetProfile:
    known = set(TargetProfile.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise EdgeMLError(f"{where}: unknown key '{unknown[0]}' in target profile",
                          hint=keys_hint(unknown[0], known - {"path"}))
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data.get(key):
            raise EdgeMLError(f"{where}: target profile needs a '{key}' string",
                              hint="see the built-in profiles (edgeml/targets/profiles/*.toml)")
    if data.get("kind", "cpu") not in KINDS:
        raise EdgeMLError(f"{where}: kind = '{data['kind']}' is not one of {', '.join(KINDS)}")
    if data.get("runtime", "litert") not in RUNTIMES:
        raise EdgeMLError(f"{where}: runtime = '{data['runtime']}' is not one of {', '.join(RUNTIMES)}")
    for key in ("peak_gops", "quantize", "estimate", "sources", "overhead", "match"):
        if key in data and not isinstance(data[key], dict):
            raise EdgeMLError(f"{where}: '{key}' must be a table ([{key}])")
    for table, keys in _TABLE_KEYS.items():  # a misspelt key would silently fall back (int8 at the fp32 peak)
        bad = sorted(set(data.get(table) or {}) - keys)
        if bad:
            raise EdgeMLError(f"{where}: unknown key '{bad[0]}' in [{table}] of the target profile",
                              hint=keys_hint(bad[0], keys))
    try:
        profile = TargetProfile(**data, path=where)
    except TypeError as exc:
        raise EdgeMLError(f"{where}: malformed target profile: {exc}") from exc
    for key in ("invoke_ms", "per_op_ms"):
        value = profile.overhead.get(key, 0.0)
        if not isinstance(value, (int, float)) or value < 0:
            raise EdgeMLError(f"{where}: [overhead] {key} must be a number >= 0 (milliseconds)")
    if not profile.runtimes:
        profile.runtimes = [profile.runtime]
    return profile


def builtin_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(target: str | Path | None) -> TargetProfile:
    """A built-in profile by name, or a user's TOML file by path. ``None`` means the host."""
    target = str(target or "host")
    path = Path(target)
    if path.suffix == ".toml" or os.sep in target:
        if not path.is_file():
            raise EdgeMLError(f"`target` {target}: no such profile file", hint="give a .toml path or a built-in name")
        where = str(path)
    else:
        path = PROFILE_DIR / f"{target}.toml"
        where = f"target '{target}'"
        if not path.is_file():
            raise EdgeMLError(f"`target` {target}: unknown target",
                              hint=f"use one of {', '.join(builtin_names())}, or a profile .toml")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgeMLError(f"{where}: not valid TOML: {exc}",
                          hint="fix the file (see the built-in profiles: edgeml/targets/profiles/*.toml)") from exc
    profile = _from_dict(data, str(path) if where == str(path) else f"profiles/{path.name}")
    if profile.is_host:
        for key, value in _host_facts().items():
            setattr(profile, key, value)
    return profile


def list_profiles() -> list[TargetProfile]:
    return [load_profile(n) for n in builtin_names()]
