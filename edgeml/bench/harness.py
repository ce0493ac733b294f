"""bench(): measure models on a target (this host, or a board over SSH), or estimate without a board.

The measuring code is ``edgeml/targets/device_runner.py``; it runs in a fresh process here or on the
board, so host and board numbers come from the same code. This module prepares the job (models, data
preprocessed to the model's float inputs, options), runs it and shapes the result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeml import __version__
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError

EDGETPU_OP = "edgetpu-custom-op"


@dataclass
class BenchResult:
    target: str
    where: str
    measured: bool
    models: list[dict[str, Any]]
    environment: dict[str, Any] | None
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.bench/1", "edgeml": __version__, "target": self.target, "where": self.where,
                "measured": self.measured, "kind": "measured" if self.measured else "estimated",
                "settings": self.settings, "environment": self.environment, "models": self.models,
                "notes": self.notes}


def preflight(art: ModelArtifact, profile: Any) -> dict[str, Any]:
    """Check a model can run on the target; return the runner spec (format, delegate, providers)."""
    fmt = art.format
    if fmt not in (ModelFormat.TFLITE, ModelFormat.ONNX):
        raise EdgeMLError(f"{art.path}: bench runs deployable models (.tflite, .onnx), not {fmt.value}",
                          hint=f"convert first: edgeml convert {art.path} --to {profile.formats[0]} -o model."
                               f"{profile.formats[0]}")
    if not profile.accepts(fmt.value):
        raise EdgeMLError(f"{art.path}: target {profile.name} does not run {fmt.value} models",
                          hint=f"use a {' or '.join(profile.formats)} model")
    spec: dict[str, Any] = {"format": fmt.value}
    if profile.kind == "edgetpu":
        info = art.inspect()
        if EDGETPU_OP not in info.custom_ops:
            raise EdgeMLError(f"{art.path}: not compiled for the Edge TPU (no {EDGETPU_OP}); on {profile.name} it "
                              "would run on the CPU only",
                              hint=f"quantize to full int8 and compile: edgeml quantize ... --target {profile.name} "
                                   f"-o m.tflite && edgeml compile m.tflite --target {profile.name}")
        spec["delegate"] = "edgetpu"
    elif fmt is ModelFormat.ONNX and profile.providers:
        spec["providers"] = list(profile.providers)
    elif fmt is ModelFormat.TFLITE and EDGETPU_OP in art.inspect().custom_ops:
        raise EdgeMLError(f"{art.path}: this model is compiled for the Edge TPU and needs one",
                          hint="bench it with --target coral-usb (or coral-devboard) --host BOARD")
    return spec


def _same_io(a: list, b: list) -> bool:
    return [(t.name, tuple(t.shape)) for t in a] == [(t.name, tuple(t.shape)) for t in b]


def _data(spec: Any, arts: list[ModelArtifact], ref_index: int | None, job: Path) -> tuple[list[str], int]:
    """Write each model's data, bound to its own inputs (size, layout, dtype, quantization): returns the file
    per model and the sample count. Models with the same inputs share a file. A float reference whose inputs
    match the first model's quantized ones gets that data's real values (what the quantized model reads)."""
    from edgeml.bench.accuracy import check_labels, classes_of, float_inputs
    from edgeml.calibration import DataSpec, load_dataset
    from edgeml.calibration.domain import is_quantized

    spec = DataSpec.parse(spec) if isinstance(spec, str) else spec
    origin = spec.origin or spec.source
    infos = [a.inspect() for a in arts]
    files: list[str] = []
    written: dict[tuple, str] = {}
    labels: np.ndarray | None = None
    count = 0
    for k, (art, info) in enumerate(zip(arts, infos)):
        inputs = list(info.inputs)
        first = infos[0].inputs
        if (k == ref_index and not any(is_quantized(t) for t in inputs) and any(is_quantized(t) for t in first)
                and _same_io(inputs, first)):
            inputs = float_inputs(first)
        key = tuple((type(t).__name__, t.name, tuple(t.shape), t.dtype, t.quantization) for t in inputs)
        if key not in written:
            ds = load_dataset(spec, inputs=inputs)
            feeds, labels = ds.arrays()
            arrays = {f"in{i}": feeds[name] for i, name in enumerate(ds.input_names)}
            if labels is not None:
                labels = arrays["labels"] = check_labels(labels, None, origin)
                where = lambda j, ds=ds: ds.source.where(int(ds.indices[j]))  # noqa: E731
            written[key] = f"data{len(written)}.npz"
            np.savez(job / written[key], **arrays)
            count = len(ds)
        n_classes, _ = classes_of(info.outputs)
        if n_classes is not None and labels is not None:  # same selection for every model: same labels
            check_labels(labels, n_classes, origin, art.path.name, where=where)
        files.append(written[key])
    return files, count


def bench(models: list[str | Path], *, target: str | None = None, host: Any = None, runs: int = 50, warmup: int = 5,
          min_time: float = 0.0, threads: int | None = None, data: Any = None, reference: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> BenchResult:
    """Benchmark ``models`` interleaved (A B A B ...); ``host`` is an SSHTarget for a real board."""
    from edgeml.targets import load_profile

    say = progress or (lambda msg: None)
    if not models:
        raise EdgeMLError("no model given", hint="edgeml bench MODEL [MODEL ...]")
    if runs < 1 or warmup < 0 or min_time < 0:
        raise EdgeMLError("--runs must be >= 1, --warmup and --min-time >= 0")
    profile = load_profile(target)
    arts = [ModelArtifact.open(m) for m in models]
    if host is None and not profile.is_host:
        from edgeml.targets.estimate import estimate_bench

        say(f"no --host given: estimating for {profile.name} (no board measured)")
        return estimate_bench(arts, profile, threads=threads)
    specs = [preflight(a, profile) for a in arts]
    ref_art = ModelArtifact.open(reference) if reference else None
    if ref_art is not None:
        specs.append(dict(preflight(ref_art, profile), time=False))
    all_arts = arts + ([ref_art] if ref_art else [])
    threads = threads or (profile.cores if not profile.is_host else None) or None
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-") as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        entries = []
        for k, (art, spec) in enumerate(zip(all_arts, specs)):
            name = f"m{k}{art.path.suffix}"
            shutil.copyfile(art.path, job / name)
            entries.append({"name": art.path.name, "file": name, "threads": threads, **spec})
        ref_index = len(arts) if ref_art is not None else None
        n_data = 0
        if data is not None:
            data_files, n_data = _data(data, all_arts, ref_index, job)
            for entry, data_file in zip(entries, data_files):
                entry["data"] = data_file
        if ref_art is not None and data is None:
            from edgeml.convert.verify import random_feeds

            feeds = random_feeds(ref_art.inspect().inputs, 16, seed=0)
            np.savez(job / "data.npz", **{f"in{i}": np.concatenate([f[t] for f in feeds])
                                           for i, t in enumerate(feeds[0])})
        (job / "job.json").write_text(json.dumps({"models": entries, "runs": runs, "warmup": warmup,
                                                  "min_time": min_time, "reference": ref_index}))
        if host is None:
            say(f"measuring {len(arts)} model(s) on this machine")
            raw = run_local(job, progress=say)
            where = "local"
        else:
            from edgeml.targets.remote import run_job

            raw = run_job(host, job, progress=say)
            where = host.label
    out = []
    base = None
    for k, (art, entry) in enumerate(zip(all_arts, raw["models"])):
        entry = dict(entry, path=str(art.path), size_bytes=art.path.stat().st_size)
        entry["name"] = art.path.name
        if k == ref_index:
            entry["role"] = "reference"
        lat = entry.get("latency_ms")
        if lat:
            base = base or lat["p50"]
            entry["ratio_to_first"] = lat["p50"] / base if base else None
        out.append(entry)
    origin = (getattr(data, "origin", None) or getattr(data, "source", None) or str(data)) if data is not None else None
    settings = {"runs": raw["runs"], "warmup": warmup, "min_time_s": min_time, "threads": threads,
                "data": origin, "data_samples": n_data, "reference": str(ref_art.path) if ref_art else None,
                "interleaved": len(arts) > 1, "peak_rss_mib": raw.get("peak_rss_mib")}
    notes = [f"{e['name']}: {', '.join(e['missing_providers'])} not available there; ran on {e['providers'][0]}"
             for e in out if e.get("missing_providers")]
    for e in out:
        acc = e.get("accuracy") or {}
        if "error" in acc:
            from edgeml.errors import DataError

            raise DataError(f"data '{origin}' on {e['name']}: {acc['error']}",
                            hint="check the labels file / class folders match the model's class order")
        if "not_applicable" in acc:
            notes.append(f"{e['name']}: no top-1: {acc['not_applicable']}")
    return BenchResult(target=profile.name, where=where, measured=True, models=out, environment=raw["environment"],
                       settings=settings, notes=notes)


def run_local(job: Path, *, progress: Callable[[str], None] | None = None, python: str | None = None) -> dict:
    """Run the device runner in a fresh local process (clean peak RSS and cold start)."""
    from edgeml.targets.remote import RUNNER, _result

    proc = subprocess.Popen([python or sys.executable, str(RUNNER), str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err_lines = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        err_lines.append(line.rstrip())
        if progress and line.strip() and not line.startswith(("INFO:", "WARNING:")):
            progress(f"  {line.rstrip()}")
    out = proc.stdout.read()
    return _result(proc.wait(), out, "\n".join(err_lines), "this machine")
