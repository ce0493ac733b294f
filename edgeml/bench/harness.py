"""bench(): measure models on a target (this host, or a board over SSH), or estimate without a board.

The measuring code is ``edgeml/targets/device_runner.py``; it runs in a fresh process here or on the
board, so host and board numbers come from the same code. This module prepares the job (models, data
preprocessed to the model's float inputs, options), runs it and shapes the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeml import __version__
from edgeml._io import MEMORY_ENV, check_tensor_memory, memory_ceiling
from edgeml._types import Data, InputShapes, PathLike
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError, UsageError
from edgeml.options import MAX_RUNS, BenchOptions, check_numbers  # noqa: F401 (MAX_RUNS, check_numbers: imported from here)
from edgeml.targets import protocol

if TYPE_CHECKING:
    from edgeml.targets.remote import SSHTarget

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
                "measured": self.measured, "kind": ("emulated" if (self.environment or {}).get("emulated") else
                                                     "measured") if self.measured else "estimated",
                "settings": self.settings, "environment": self.environment, "models": self.models,
                "notes": self.notes}


def estimate_bench(arts: list[ModelArtifact], profile: Any, *, threads: int | None,
                   input_shapes: Any = None, extra_notes: Sequence[str] = ()) -> BenchResult:
    """``edgeml bench --target BOARD`` without --host: estimates (edgeml.targets.estimate), labelled as such.
    It lives here, not with the estimator, so that targets never needs the bench result type."""
    from edgeml.targets.estimate import check_threads, estimate_from, refuse_unknown_cost

    check_threads(threads, profile)  # once, before any model: a UsageError, not a note per model
    models = []
    notes = [f"no board measured: estimated for {profile.name} (add `host=\"USER@BOARD\"` to measure)"]
    for art in arts:
        try:
            info = art.inspect() if input_shapes is None else art.inspect(input_shapes=input_shapes)
            if EDGETPU_OP not in (info.custom_ops or []):
                refuse_unknown_cost(info, art.path)
            e = estimate_from(info, profile, precision=None, threads=threads, name=str(art.path))
        except EdgeMLError as exc:
            if len(arts) == 1:
                raise
            notes.append(f"{art.path.name}: not estimated: {exc.message}")
            continue
        models.append({"name": art.path.name, "path": str(art.path), "size_bytes": art.inspect().size_bytes,
                       "estimate": e.to_dict()})
    notes += extra_notes
    return BenchResult(target=profile.name, where="estimate", measured=False, models=models, environment=None,
                       settings={"threads": threads}, notes=notes)


def preflight(art: ModelArtifact, profile: Any) -> dict[str, Any]:
    """Check a model can run on the target; return the runner spec (format, delegate, providers)."""
    fmt = art.format
    if fmt not in (ModelFormat.TFLITE, ModelFormat.ONNX):
        raise EdgeMLError(f"{art.path}: bench runs deployable models (.tflite, .onnx), not {fmt.value}",
                          hint=f"convert first: `edgeml.convert({str(art.path)!r}, to={profile.formats[0]!r}, "
                               f"out=\"model.{profile.formats[0]}\")`")
    if not profile.accepts(fmt.value):
        raise EdgeMLError(f"{art.path}: target {profile.name} does not run {fmt.value} models",
                          hint=f"use a {' or '.join(profile.formats)} model")
    spec: dict[str, Any] = {"format": fmt.value}
    if profile.kind == "edgetpu":
        info = art.inspect()
        if EDGETPU_OP not in info.custom_ops:
            raise EdgeMLError(f"{art.path}: not compiled for the Edge TPU (no {EDGETPU_OP}); on {profile.name} it "
                              "would run on the CPU only",
                              hint=f"quantize to full int8 and compile: `edgeml.quantize(..., target={profile.name!r}, "
                                   f"out=\"m.tflite\")`, then `edgeml.compile(\"m.tflite\", target={profile.name!r})`")
        spec["delegate"] = "edgetpu"
    elif fmt is ModelFormat.ONNX and profile.providers:
        spec["providers"] = list(profile.providers)
    elif fmt is ModelFormat.TFLITE and EDGETPU_OP in art.inspect().custom_ops:
        raise EdgeMLError(f"{art.path}: this model is compiled for the Edge TPU and needs one",
                          hint="bench it with `target=\"coral-usb\"` (or coral-devboard) and `host=BOARD`")
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
            # stored as whole batch-of-one inputs (the runner's "full" layout): inputs fed whole (scalars,
            # a non-leading batch axis) as they are, the others with their batch axis of 1
            arrays = {protocol.input_key(i): feeds[name] if name in ds.whole else feeds[name][:, None]
                      for i, name in enumerate(ds.input_names)}
            if labels is not None:
                labels = arrays[protocol.LABELS_KEY] = check_labels(labels, None, origin)
                where = lambda j, ds=ds: ds.source.where(int(ds.indices[j]))  # noqa: E731
            written[key] = f"data{len(written)}.npz"
            np.savez(job / written[key], **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
            count = len(ds)
        n_classes, _ = classes_of(info.outputs)
        if n_classes is not None and labels is not None:  # same selection for every model: same labels
            check_labels(labels, n_classes, origin, art.path.name, where=where)
        files.append(written[key])
    return files, count


def _data_shapes(spec: Any, first: ModelArtifact) -> dict[str, tuple[int, ...]]:
    """Input shapes (batch 1) of the first sample of ``spec``, for the model's dynamic dimensions."""
    from edgeml.bench.accuracy import float_inputs
    from edgeml.calibration import load_dataset

    inputs = first.inspect().inputs
    ds = load_dataset(spec, inputs=float_inputs(inputs))
    feeds = ds.sample(0).feeds
    out = {}
    for t in inputs:
        x = np.asarray(feeds[t.name])
        out[t.name] = tuple(x.shape) if x.ndim == len(t.shape) else (1, *x.shape)
    return out


def bench(models: Sequence[PathLike], *, target: str | None = None, host: SSHTarget | str | None = None,
          runs: int = 50, warmup: int = 5, min_time: float = 0.0, threads: int | None = None, data: Data | None = None,
          reference: PathLike | None = None, progress: Callable[[str], None] | None = None,
          input_shapes: InputShapes | None = None, timeout: float | None = None,
          options: BenchOptions | None = None) -> BenchResult:
    """Benchmark ``models`` interleaved (A B A B ...); ``host`` is an SSHTarget (or its ``[USER@]HOST[:PORT]``
    string) for a real board.

    Input shapes: from ``data`` when given, else batch 1 with ``input_shapes`` (``NAME=D0,D1,...``) for
    other dynamic dimensions; a model with a dimension neither fixes is refused (never run at a guess).
    ``timeout`` bounds a remote run as a whole (default: :func:`default_timeout`, sized to the run).
    ``options`` (a :class:`~edgeml.options.BenchOptions`) gives every option at once, in place of the keyword
    arguments of the same names (a UsageError when both are given); the work reads that one object.
    """
    if not models:
        raise EdgeMLError("no model given", hint="`edgeml.bench([MODEL, ...])`")
    o = BenchOptions.build("bench", options, locals())
    return _bench(list(models), o, progress)


def ssh_target(host: SSHTarget | str | None) -> SSHTarget | None:
    """``BenchOptions.host`` as an SSHTarget: its string form ``[USER@]HOST[:PORT]`` parsed."""
    if isinstance(host, str):
        from edgeml.targets.remote import SSHTarget

        return SSHTarget.parse(host)
    return host


def _bench(models: list[PathLike], o: BenchOptions, progress: Callable[[str], None] | None) -> BenchResult:
    """:func:`bench` with its options in one object."""
    from edgeml.targets import load_profile

    say = progress or (lambda msg: None)
    host = ssh_target(o.host)
    input_shapes, threads = o.input_shapes, o.threads  # resolved further below (from the data; the target's cores)
    profile = load_profile(o.target)
    arts = [ModelArtifact.open(m) for m in models]
    if host is None and not profile.is_host:
        if o.reference is not None:  # nothing runs, so nothing is compared: refused, never silently dropped
            raise UsageError(f"`reference` {o.reference}: an estimate for {profile.name} runs no model, so "
                             "nothing is compared with it",
                             hint="add `host=\"USER@BOARD\"` to measure on the board, or drop `reference`")
        say(f"no `host` given: estimating for {profile.name} (no board measured)")
        if o.data is not None and not input_shapes:  # the data decides dynamic dims
            input_shapes = _data_shapes(o.data, arts[0])
        return estimate_bench(arts, profile, threads=threads, input_shapes=input_shapes, extra_notes=_unused(o))
    if host is None and o.timeout is not None:  # it bounds a remote run; a local one is never cut short
        raise UsageError(f"`timeout` {o.timeout:g}: bounds a run on a board over SSH, and this one runs here",
                         hint="add `host=\"USER@BOARD\"`, or drop `timeout`")
    specs = [preflight(a, profile) for a in arts]
    ref_art = ModelArtifact.open(o.reference) if o.reference else None
    if ref_art is not None:
        specs.append(dict(preflight(ref_art, profile), time=False))
    all_arts = arts + ([ref_art] if ref_art else [])
    for a in all_arts:  # before anything is allocated (here or on the board): declared shapes fit in memory
        info = a.inspect()
        check_tensor_memory([*info.inputs, *info.outputs], str(a.path))
    if ref_art is not None:
        _same_inputs(ref_art, arts)
    threads = threads or (profile.cores if not profile.is_host else None) or None
    with tempfile.TemporaryDirectory(prefix="edgeml-bench-") as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        entries = []
        for k, (art, spec) in enumerate(zip(all_arts, specs)):
            name = _copy_model(art, job, k)
            entries.append({"name": art.path.name, "file": name, "threads": threads, **spec})
        ref_index = len(arts) if ref_art is not None else None
        n_data = 0
        if o.data is not None:
            data_files, n_data = _data(o.data, all_arts, ref_index, job)
            for entry, data_file in zip(entries, data_files):
                entry["data"] = data_file
        generated: dict[int, str] = {}
        if o.data is None:
            from edgeml.convert.verify import random_feeds, random_feeds_label

            for k, (art, entry) in enumerate(zip(all_arts, entries)):
                info = art.inspect()
                inputs = info.inputs
                feed = random_feeds(inputs, 1, seed=0, input_shapes=input_shapes, values=info.input_values,
                                    what="benchmarking without `data`")[0]
                generated[k] = random_feeds_label(inputs, info.input_values)
                np.savez(job / f"feed{k}.npz",
                         **{protocol.input_key(i): feed[t.name] for i, t in enumerate(inputs)})  # type: ignore[arg-type]
                entry["feed"] = f"feed{k}.npz"
        if ref_art is not None and o.data is None:
            from edgeml.convert.verify import random_feeds

            feeds = random_feeds(ref_art.inspect().inputs, 16, seed=0, input_shapes=input_shapes,
                                 values=ref_art.inspect().input_values, what="comparing with `reference`")
            np.savez(job / protocol.DEFAULT_DATA,
                     **{protocol.input_key(i): np.stack([f[t] for f in feeds]) for i, t in enumerate(feeds[0])})  # type: ignore[arg-type]
        # max_memory_bytes here: this machine's ceiling; on a board: its own, unless EDGEML_MAX_MEMORY sets one
        protocol.write_job(job, models=entries, runs=o.runs, warmup=o.warmup, min_time=o.min_time,
                           reference=ref_index,
                           max_memory_bytes=memory_ceiling() if host is None or os.environ.get(MEMORY_ENV) else None)
        if host is None:
            say(f"measuring {len(arts)} model(s) on this machine")
            raw = run_local(job, progress=say)
            where = "local"
        else:
            from edgeml.targets.remote import run_job

            limit = o.timeout or default_timeout(len(all_arts), o.runs, o.warmup, o.min_time, n_data or 16)
            raw = run_job(host, job, progress=say, timeout=limit)
            where = host.label
    out = []
    base = None
    for k, (art, entry) in enumerate(zip(all_arts, raw["models"])):
        entry = dict(entry, path=str(art.path), size_bytes=art.inspect().size_bytes)
        if k in generated:
            entry["inputs"] = generated[k]  # what was fed without --data
        entry["name"] = art.path.name
        if k == ref_index:
            entry["role"] = "reference"
        lat = entry.get("latency_ms")
        if lat:
            base = base or lat["p50"]
            entry["ratio_to_first"] = lat["p50"] / base if base else None
        out.append(entry)
    origin = ((getattr(o.data, "origin", None) or getattr(o.data, "source", None) or str(o.data))
              if o.data is not None else None)
    settings = {"runs": raw["runs"], "warmup": o.warmup, "min_time_s": o.min_time, "threads": threads,
                "data": origin, "data_samples": n_data, "reference": str(ref_art.path) if ref_art else None,
                "interleaved": len(arts) > 1, "peak_rss_mib": raw.get("peak_rss_mib")}
    notes = [f"{e['name']}: {', '.join(e['missing_providers'])} not available there; ran on {e['providers'][0]}"
             + "".join(f" ({p} cannot load: {why})" for p, why in (e.get("provider_problems") or {}).items())
             for e in out if e.get("missing_providers")]
    notes += [f"{all_arts[k].path.name}: no `data`, fed {label}" for k, label in generated.items() if ";" in label]
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


def _unused(o: BenchOptions) -> list[str]:
    """Notes naming the options an estimate does not use (set away from their defaults): it runs nothing."""
    defaults = BenchOptions()
    unused = [n for n in ("runs", "warmup", "min_time", "timeout") if getattr(o, n) != getattr(defaults, n)]
    notes = [f"{', '.join(f'`{n}`' for n in unused)} not used: nothing was run to time"] if unused else []
    if o.data is not None:
        notes.append("`data` used for its input shapes only: an estimate gives no accuracy")
    return notes


def _shapes(art: ModelArtifact) -> list[tuple[int | None, ...]]:
    return [tuple(t.shape[1:]) for t in art.inspect().inputs]


def _same_inputs(ref: ModelArtifact, arts: list[ModelArtifact]) -> None:
    """The reference is fed the same samples as the models: its inputs must take them (batch and dynamic
    dimensions aside), else the comparison is refused here, not as a runtime error on the board."""
    want = _shapes(ref)
    for a in arts:
        got = _shapes(a)
        same = len(got) == len(want) and all(
            len(g) == len(w) and all(x is None or y is None or x == y for x, y in zip(g, w)) for g, w in zip(got, want))
        if not same:
            raise EdgeMLError(f"`reference` {ref.path}: its inputs {[list(s) for s in want]} do not match "
                              f"{a.path.name}'s {[list(s) for s in got]} (per sample)",
                              hint="the reference is the same model in another precision or format (e.g. the float "
                                   "model a quantized one was made from)")


def default_timeout(n_models: int, runs: int, warmup: int, min_time: float, n_samples: int) -> float:
    """A generous bound for a remote run: start-up and copying, plus up to 1 s per timed/untimed/data run."""
    return 300.0 + n_models * (runs + warmup + n_samples) * 1.0 + 2 * min_time


def _copy_model(art: ModelArtifact, job: Path, k: int) -> str:
    """Copy a model into the job folder; an ONNX model's external data files (validated: confined to its
    folder, in range) go with it, in a folder of its own so that two models' data never collide."""
    files: list[str] = []
    if art.format is ModelFormat.ONNX:
        from edgeml.formats.onnx import external_files, parse_proto

        files = external_files(parse_proto(art.path), art.path.parent, art.path)
    if not files:
        name = f"m{k}{art.path.suffix}"
        shutil.copyfile(art.path, job / name)
        return name
    folder = job / f"m{k}"
    folder.mkdir()
    shutil.copyfile(art.path, folder / art.path.name)
    for rel in files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(art.path.parent / rel, folder / rel)
    return f"m{k}/{art.path.name}"


def run_local(job: Path, *, progress: Callable[[str], None] | None = None, python: str | None = None) -> dict:
    """Run the device runner in a fresh local process (clean peak RSS and cold start)."""
    from edgeml.targets.remote import progress_filter

    proc = subprocess.Popen([python or sys.executable, str(protocol.RUNNER), str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        err_lines: list[str] = []
        show = progress_filter(progress, "  ")
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            err_lines.append(line.rstrip())
            show(line.rstrip())
        out = proc.stdout.read()
        return protocol.read_result(proc.wait(), out, "\n".join(err_lines), "this machine")
    finally:  # interrupted (Ctrl-C, SIGTERM): the runner does not outlive us
        if proc.poll() is None:
            proc.kill()
            proc.wait()
