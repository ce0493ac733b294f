"""Fit a target's estimate coefficients to measurements, honestly.

* Only as many coefficients as the points have independent feature rows: three (dense, depthwise, per
  layer) with >= 3 independent points, otherwise one (a common scale of the profile's coefficients).
* The error reported is leave-one-out (each point predicted by a fit without it); in-sample is kept only
  as a secondary figure. One point has no held-out error: said, not invented.
* ``--fit`` refuses bench results measured on a machine unlike the profile (architecture, board/CPU,
  cores, runtime from the recorded environment).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError
from edgeml.targets.estimate import (
    coefficients,
    default_precision,
    design_row,
    edgetpu_features,
    features,
    refuse_unknown_cost,
)

RUNTIME_NAMES = {"ai_edge_litert": "litert", "tflite_runtime": "litert", "tensorflow": "litert",
                 "litert": "litert", "onnxruntime": "onnxruntime", "edgetpu": "edgetpu"}


def nnls(a: np.ndarray, b: np.ndarray, iters: int = 50) -> np.ndarray:
    """Non-negative least squares by repeated least squares on the still-positive columns."""
    active = np.ones(a.shape[1], bool)
    x = np.zeros(a.shape[1])
    for _ in range(iters):
        sol, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        x = np.zeros(a.shape[1])
        x[active] = sol
        if (x >= 0).all():
            return x
        active &= x > 0
        if not active.any():
            break
    return np.clip(x, 0, None)


@dataclass
class Fit:
    target: str
    precision: str
    points: int
    independent_points: int
    n_coefficients: int
    coef: list[float]
    median_abs_error: float | None  # leave-one-out; None with a single point
    median_abs_error_in_sample: float
    errors: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.estimate_fit/2", **asdict(self)}

    def basis(self, what: str) -> str:
        err = ("no held-out error (one point)" if self.median_abs_error is None else
               f"leave-one-out median abs error {100 * self.median_abs_error:.1f}%")
        kind = "3 coefficients" if self.n_coefficients == 3 else "1 coefficient (scale of the profile's)"
        return f"{kind} fitted to {self.points} {what}, {err}"


def _solve(a: np.ndarray, y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, int]:
    """Coefficients for rows ``a`` and targets ``y`` (relative error); (coef, number fitted)."""
    w = 1.0 / np.maximum(np.abs(y), 1e-9)
    rank = int(np.linalg.matrix_rank(a)) if len(a) else 0
    if rank >= a.shape[1] and len(a) >= a.shape[1]:
        return nnls(a * w[:, None], y * w), a.shape[1]
    r = (a @ base) * w  # one common scale s minimising the relative error sum(((s * pred - y) / y) ** 2)
    s = float(r.sum() / (r @ r)) if (r @ r) > 0 else 1.0
    return base * max(s, 0.0), 1


def fit(points: list[tuple[str, Any, float, int | None]], profile: Any, precision: str) -> Fit:
    """Fit to (name, inspection, measured ms, threads) points; errors are relative."""

    if not points:
        raise EdgeMLError("no measurements to fit", hint="give bench results (`to_dict()`) measured on the target")
    rows, fixed, y = [], [], []
    for _, info, ms, threads in points:
        f = features(info)
        if profile.kind == "edgetpu":  # split by the compiler plan, as the estimate does
            f = edgetpu_features(info, profile, f, [])[0]
        r, e = design_row(f, profile, precision, threads)
        rows.append(r)
        fixed.append(e)
        y.append(ms)
    a, fx, meas = np.array(rows), np.array(fixed), np.array(y)
    if np.any(meas - fx <= 0):
        bad = [p[0] for p, m, f in zip(points, meas, fx) if m - f <= 0]
        raise EdgeMLError(f"measured time of {', '.join(bad)} is below the runtime floor in profile {profile.name} "
                          "([overhead]): the floor or the measurement is wrong", hint="check [overhead] in the profile")
    try:
        base = np.array(coefficients(profile, precision)[0])
    except EdgeMLError:
        base = np.array([1.0, 1.0, 0.0])
    coef, n_coef = _solve(a, meas - fx, base)
    pred = a @ coef + fx
    loo = []
    for i in range(len(points)):
        keep = np.arange(len(points)) != i
        if keep.sum() == 0:
            break
        c, _ = _solve(a[keep], (meas - fx)[keep], base)
        loo.append(float(a[i] @ c + fx[i]) / meas[i] - 1)
    errors: list[dict[str, Any]] = [{"model": n, "measured_ms": m, "estimated_ms": float(p), "error": float(p / m - 1),
               "loo_error": loo[i] if loo else None} for i, ((n, _, m, _), p) in enumerate(zip(points, pred))]
    return Fit(profile.name, precision, len(points), int(np.linalg.matrix_rank(a)), n_coef,
               [float(round(c, 6)) for c in coef], float(np.median(np.abs(loo))) if loo else None,
               float(np.median([abs(e["error"]) for e in errors])), errors)


def check_environment(env: dict | None, runtime: str | None, profile: Any, where: str) -> list[str]:
    """Refuse results from a machine unlike the profile; notes for what could not be checked."""
    notes: list[str] = []
    if not env:
        raise EdgeMLError(f"{where}: the result records no environment (machine, CPU, runtime)",
                          hint="re-measure with this edgeml: `edgeml.bench(..., target=T, host=H)` (`to_dict()`)")
    arch = (env.get("arch") or "").lower().replace("arm64", "aarch64")
    if profile.arch and arch and arch != profile.arch.lower():
        raise EdgeMLError(f"{where}: measured on {arch} ({env.get('cpu') or env.get('board') or 'unknown CPU'}), but "
                          f"target {profile.name} is {profile.arch}: coefficients would describe another machine",
                          hint=f"fit with results measured on a {profile.name}, or copy the profile and set its arch "
                               "and [match] for your machine")
    match = profile.match or {}
    seen = " ".join(str(env.get(k) or "") for k in ("board", "cpu")).lower()
    for key in ("board", "cpu"):
        want = match.get(key)
        if want and seen.strip() and not any(w.lower() in seen for w in ([want] if isinstance(want, str) else want)):
            raise EdgeMLError(f"{where}: measured on '{seen.strip()}', not a {want} (target {profile.name})",
                              hint="fit each board's results to its own profile")
    if not seen.strip():
        notes.append(f"{where}: board/CPU model not recorded; matched on architecture only")
    if profile.cores and env.get("cores") and int(env["cores"]) != int(profile.cores):
        raise EdgeMLError(f"{where}: measured on {env['cores']} cores, target {profile.name} has {profile.cores}",
                          hint="fit with results measured on the target board")
    if runtime:
        rt = RUNTIME_NAMES.get(runtime.split(".")[0], runtime)
        if rt not in profile.runtimes:
            raise EdgeMLError(f"{where}: measured with runtime {runtime}, target {profile.name} runs "
                              f"{', '.join(profile.runtimes)}", hint="fit results of the runtime the profile models")
    return notes


def fit_from_bench(results: list[str | Path], target: str, precision: str | None = None) -> Fit:
    from edgeml.artifact import ModelArtifact
    from edgeml.targets import load_profile

    profile = load_profile(target)
    points, precisions = [], set()
    for path in results:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EdgeMLError(f"{path}: not a readable edgeml bench JSON result ({exc})",
                              hint="write one with `edgeml.bench(..., target=T, host=H)` (`to_dict()`) "
                                   "> results.json") from exc
        if not isinstance(data, dict) or data.get("schema") != "edgeml.bench/1" or not data.get("measured"):
            raise EdgeMLError(f"{path}: not a measured edgeml bench result (schema edgeml.bench/1, measured)")
        if not isinstance(data.get("models"), list):
            raise EdgeMLError(f"{path}: no 'models' list in the bench result", hint="re-run the bench and save its "
                                                                                            "result (`to_dict()`)")
        for i, m in enumerate(data["models"]):
            missing = [k for k in ("path", "latency_ms") if k not in m]
            if "latency_ms" in m and not isinstance(m["latency_ms"], dict) or \
                    isinstance(m.get("latency_ms"), dict) and "p50" not in m["latency_ms"]:
                missing.append("latency_ms.p50")
            if missing:
                raise EdgeMLError(f"{path}: model entry {i} lacks {', '.join(missing)}",
                                  hint="fit needs edgeml bench results with the model path and its p50 latency")
            check_environment(data.get("environment"), m.get("runtime"), profile, str(path))
            model_path = Path(m["path"])
            if not model_path.exists():
                raise EdgeMLError(f"{path}: the benchmarked model {model_path} is not here",
                                  hint="fit where the models are (the graph is needed, not just the times)")
            if model_path.name.endswith("_edgetpu.tflite"):  # its MACs are inside the compiled op: use the source
                source = model_path.with_name(model_path.name[:-len("_edgetpu.tflite")] + ".tflite")
                if not source.exists():
                    raise EdgeMLError(f"{path}: {model_path.name} is compiled; its MACs are not visible and "
                                      f"{source.name} (the model it was compiled from) is not beside it",
                                      hint="keep MODEL.tflite next to MODEL_edgetpu.tflite to fit Edge TPU results")
                model_path = source
            info = ModelArtifact.open(model_path).inspect()
            refuse_unknown_cost(info, model_path)
            precisions.add(precision or default_precision(info, profile))
            points.append((model_path.name, info, float(m["latency_ms"]["p50"]), m.get("threads")))
    if len(precisions) > 1:
        raise EdgeMLError(f"results mix precisions ({', '.join(sorted(precisions))})",
                          hint="fit one precision at a time: `precision` int8")
    return fit(points, profile, precisions.pop() if precisions else "fp32")


def profile_with_fit(profile: Any, result: Fit, what: str = "measured edgeml bench results") -> str:
    """The profile's TOML text with the fitted coefficients in its [estimate] table."""
    text = Path(profile.path if Path(profile.path).exists() else
                Path(__file__).parent / "profiles" / f"{profile.name}.toml").read_text()
    lines = [f"coef_{result.precision} = [{', '.join(repr(c) for c in result.coef)}]",
             f'basis_{result.precision} = "{result.basis(what)}"']
    if "\n[estimate]\n" not in text:
        return text.rstrip() + "\n\n[estimate]\n" + "\n".join(lines) + "\n"
    head, rest = text.split("\n[estimate]\n", 1)
    nxt = re.search(r"^\[", rest, flags=re.M)
    body, tail = (rest[:nxt.start()], rest[nxt.start():]) if nxt else (rest, "")
    keep = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith((f"coef_{result.precision}",
                                                                               f"basis_{result.precision}"))]
    return head + "\n[estimate]\n" + "\n".join(keep + lines) + "\n\n" + tail


__all__ = ["Fit", "check_environment", "fit", "fit_from_bench", "nnls", "profile_with_fit"]
