"""prune(): magnitude (unstructured) and channel (structured) pruning of Keras 3 models, with fine-tuning.

- ``method="magnitude"`` zeroes the smallest Conv/Dense kernel weights (per layer or one global threshold);
  with ``train`` data it fine-tunes under a constant or polynomial sparsity schedule, masks enforced after
  every optimizer step. The output is a plain Keras model whose kernels have exactly the requested sparsity.
  Unstructured zeros shrink the *compressed* size; dense kernels run just as long.
- ``method="channel"`` removes whole filters/units and rebuilds a smaller dense network (see
  ``edgeml.prune.channel``): fewer MACs, genuinely faster.
- An ``.onnx`` model gets one-shot magnitude pruning of its weight initializers.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeml import __version__
from edgeml._io import check_output, refuse_non_regular
from edgeml._types import Data, PathLike
from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError
from edgeml.options import PruneCriterion, PruneMethod, PruneOptions, PruneSchedule, PruneScope

METHODS = PruneMethod.values()
SCOPES = PruneScope.values()
SCHEDULES = PruneSchedule.values()
CRITERIA = PruneCriterion.values()
UNSTRUCTURED_NOTE = ("unstructured sparsity shrinks the compressed (gzip) size, not dense-kernel latency: runtimes "
                     "still multiply the zeros; use `method=\"channel\"` for a faster model")


@dataclass
class PruneResult:
    input: str
    output: str
    method: str
    scope: str
    sparsity: float
    criterion: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    layers: list[dict[str, Any]]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.prune/1", "edgeml": __version__, **asdict(self)}


def _file_stats(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def _keras_stats(model: Any) -> dict[str, int]:
    from edgeml.formats.keras import model_macs

    params = nonzero = 0
    for w in model.weights:
        a = np.asarray(w)
        params += a.size
        nonzero += int(np.count_nonzero(a))
    return {"params": params, "nonzero_params": nonzero, "macs": model_macs(model)}


def _load_keras(path: Path) -> tuple[Any, Any]:
    """(model, its compiled loss or None). Falls back to an uncompiled load when compiling fails."""
    from edgeml.errors import ModelLoadError
    from edgeml.formats.keras import load

    try:
        model = load(path, compile=True)
    except ModelLoadError:
        model = load(path, compile=False)
    loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    return model, loss


def _save_keras(model: Any, out: Path) -> None:
    """Save atomically: Keras insists on a .keras name, so write in a temporary folder beside ``out``.

    A compiled model is re-compiled with a fresh optimizer first: the loss stays with the model, the
    fine-tuning optimizer's state (dense moments, 2x the weights) does not ship."""
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        from edgeml._tf import keras as import_keras

        model.compile(optimizer=import_keras().optimizers.Adam(), loss=model.loss)
    with tempfile.TemporaryDirectory(prefix=".edgeml-prune-", dir=out.parent) as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        refuse_non_regular(out)
        os.replace(path, out)


def _saved_stats(model: Any, folder: Path) -> dict[str, int]:
    """File sizes of ``model`` saved the way the output will be (so before/after compare like with like)."""
    with tempfile.TemporaryDirectory(prefix=".edgeml-prune-", dir=folder) as tmp:
        path = Path(tmp) / "before.keras"
        _save_keras(model, path)
        return _file_stats(path)


def prune(model: PathLike, *, out: PathLike | None = None, sparsity: float | None = None,
          method: str = "magnitude", scope: str = "layer", criterion: str = "l1", train: Data | None = None,
          val: Data | None = None, epochs: int = 5, batch_size: int = 32, lr: float = 1e-3,
          schedule: str = "polynomial", exclude: str | None = None, force: bool = False,
          progress: Callable[[str], None] | None = None, options: PruneOptions | None = None) -> PruneResult:
    """Prune ``model`` to ``out`` (.keras for Keras input, .onnx for ONNX input); see the module docstring.

    ``options`` (a :class:`~edgeml.options.PruneOptions`) gives every option at once, in place of the keyword
    arguments of the same names (a UsageError when both are given); the work reads that one object. The values
    are checked when the options are made (:class:`~edgeml.options.PruneOptions`)."""
    o = PruneOptions.build("prune", options, locals())
    return _prune(model, o, progress)


def _prune(model: PathLike, o: PruneOptions, progress: Callable[[str], None] | None) -> PruneResult:
    """:func:`prune` with its options in one object."""
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    art = ModelArtifact.open(model)
    out = check_output(o.out, inputs=[art.path, o.train, o.val], force=o.force)
    if art.format is ModelFormat.ONNX:
        return _prune_onnx(art, out, o.sparsity, o.method, o.scope, o.exclude, o.train, o.val, t0)
    if art.format not in (ModelFormat.KERAS, ModelFormat.H5):
        raise EdgeMLError(f"{art.path}: prune works on Keras models (.keras, .h5) and ONNX, not {art.format.value}",
                          hint="prune the Keras model before converting it")
    if out.suffix != ".keras":
        raise EdgeMLError(f"{out}: the pruned Keras model is saved as .keras (the Keras 3 format, which saves and "
                          "reloads the whole model; edgeml prunes .h5 input to .keras too)",
                          hint=f"use -o {out.with_suffix('.keras').name}, then edgeml convert/quantize it")
    from edgeml.calibration.labelled import load_labelled
    from edgeml.prune.finetune import accuracy, avoid_onednn_crash

    # before TensorFlow is imported (see there)
    onednn_note, onednn_warning = avoid_onednn_crash(art.path) if o.train is not None else (None, None)
    say(f"loading {art.path}")
    keras_model, compiled_loss = _load_keras(art.path)

    train_xy = load_labelled(o.train, keras_model, "`train`") if o.train is not None else None
    val_xy = load_labelled(o.val, keras_model, "`val`") if o.val is not None else None
    warnings: list[str] = []
    if train_xy is None:
        warnings.append("no `train` data: one-shot pruning without fine-tuning; accuracy may drop "
                        "(pass `train=SPEC` to fine-tune)")
    before: dict[str, Any] = {**_keras_stats(keras_model), **_saved_stats(keras_model, out.parent)}
    if val_xy is not None:
        before["accuracy"] = accuracy(keras_model, *val_xy)
    runner = _magnitude if o.method == "magnitude" else _channel
    pruned, layers, skipped, notes, training = runner(
        keras_model, sparsity=o.sparsity, scope=o.scope, criterion=o.criterion, exclude=o.exclude, train=train_xy,
        val=val_xy, epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, schedule=o.schedule,
        compiled_loss=compiled_loss, say=say)
    after: dict[str, Any] = {**_keras_stats(pruned)}
    if val_xy is not None:
        after["accuracy"] = accuracy(pruned, *val_xy)
    say(f"saving {out}")
    _save_keras(pruned, out)
    after.update(_file_stats(out))
    if onednn_note:
        notes.append(onednn_note)
    if onednn_warning:
        warnings.append(onednn_warning)
    if art.format is ModelFormat.H5:
        notes.append(f"{art.path.name} is a (Keras 2) HDF5 model; the pruned model is saved in the Keras 3 .keras "
                     "format (keras.saving.load_model reads it; sizes before are of the input re-saved as .keras)")
    return PruneResult(input=str(art.path), output=str(out), method=o.method, scope=o.scope, sparsity=o.sparsity,
                       criterion=o.criterion if o.method == "channel" else None, before=before, after=after,
                       layers=layers, skipped=skipped, training=training, seconds=time.perf_counter() - t0,
                       notes=notes, warnings=warnings)


def _magnitude(model: Any, *, sparsity, scope, exclude, train, val, epochs, batch_size, lr, schedule,
               compiled_loss, say, **_) -> tuple:
    from edgeml.prune.magnitude import Pruner, callback, targets

    tgts, excluded = targets(model, exclude)
    pruner = Pruner(tgts, scope)
    training = None
    if train is not None:
        from edgeml.prune.finetune import fine_tune, loss_for

        loss, loss_note = loss_for(model, compiled_loss)
        steps = int(np.ceil(len(train[1]) / batch_size)) * epochs
        cb = callback(pruner, sparsity, schedule, steps)
        ramp_epochs = int(np.ceil(cb.ramp_end_step / max(1, steps // epochs))) if schedule == "polynomial" else 0
        say(f"fine-tuning {epochs} epoch(s) with {schedule} sparsity to {sparsity:.0%} ({loss_note})")
        training = fine_tune(model, train, val, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                             callbacks=[cb], patience_from=ramp_epochs, progress=say)
        training["loss"] = loss_note
    pruner.update(sparsity)  # exact final sparsity (also the one-shot path)
    notes = [UNSTRUCTURED_NOTE]
    if excluded:
        notes.append(f"left dense by `exclude`: {', '.join(excluded)}")
    skipped = [{"layers": [name], "reason": "excluded by `exclude`"} for name in excluded]
    return model, pruner.report(), skipped, notes, training


def _channel(model: Any, *, sparsity, scope, criterion, exclude, train, val, epochs, batch_size, lr,
             compiled_loss, say, **_) -> tuple:
    from edgeml.prune.channel import functional, plan, rebuild

    graph_model = functional(model)
    say(f"planning channel groups ({criterion} ranking, {scope} scope)")
    graph, keep, skipped, notes = plan(graph_model, sparsity, criterion=criterion, scope=scope, exclude=exclude)
    pruned = rebuild(model, graph, keep)  # a Sequential model is rebuilt as a Sequential
    layers = []
    for r, k in keep.items():
        grp = graph.groups[r]
        if grp.blocked:
            continue
        for p in grp.producers:
            layers.append({"name": p.name, "op": type(p).__name__, "channels_before": grp.size,
                           "channels_after": int(len(k)), "coupled_with": [q.name for q in grp.producers
                                                                           if q is not p]})
    training = None
    if train is not None:
        from edgeml.prune.finetune import fine_tune, loss_for

        loss, loss_note = loss_for(pruned, compiled_loss)
        say(f"fine-tuning the pruned model for {epochs} epoch(s) ({loss_note})")
        training = fine_tune(pruned, train, val, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                             callbacks=[], progress=say)
        training["loss"] = loss_note
    return pruned, layers, skipped, notes, training


def _prune_onnx(art: ModelArtifact, out: Path, sparsity: float, method: str, scope: str, exclude: str | None,
                train: Any, val: Any, t0: float) -> PruneResult:
    from edgeml._io import atomic_path
    from edgeml.prune.onnx import onnx_stats, prune_onnx

    if method != "magnitude":
        raise EdgeMLError(f"{art.path}: channel pruning rebuilds Keras models; ONNX models get magnitude pruning only",
                          hint="prune the Keras model with `method` channel, or use `method` magnitude")
    if out.suffix != ".onnx":
        raise EdgeMLError(f"{out}: an ONNX model is pruned to .onnx", hint=f"use -o {out.with_suffix('.onnx').name}")
    macs = art.inspect().macs
    before = {**onnx_stats(art.path), "macs": macs, **_file_stats(art.path)}
    with atomic_path(out) as tmp:
        layers = prune_onnx(art.path, tmp, sparsity, scope=scope, exclude=exclude)
    after = {**onnx_stats(out), "macs": macs, **_file_stats(out)}
    warnings = ["ONNX models are pruned one-shot (no fine-tuning); accuracy may drop: prune the Keras model with "
                "`train` to fine-tune"]
    # said, not refused: edgeml.search hands its `train`/`eval` data to every prune trial, ONNX ones included
    warnings += [f"`{n}` is ignored for ONNX input" + (" (no accuracy is measured)" if n == "val" else "")
                 for n, v in (("train", train), ("val", val)) if v is not None]
    return PruneResult(input=str(art.path), output=str(out), method=method, scope=scope, sparsity=sparsity,
                       criterion=None, before=before, after=after, layers=layers,
                       seconds=time.perf_counter() - t0, notes=[UNSTRUCTURED_NOTE], warnings=warnings)


def summary_lines(r: PruneResult) -> list[str]:
    """Human summary: before -> after for params, MACs, size and accuracy."""
    b, a = r.before, r.after

    def ratio(k: str) -> str:
        return f"{b[k]:,} -> {a[k]:,} ({(a[k] / b[k] - 1) * 100:+.1f} %)" if b.get(k) else f"{b.get(k)} -> {a.get(k)}"

    lines = [f"params        {ratio('params')}",
             f"non-zero      {ratio('nonzero_params')}",
             f"MACs          {ratio('macs')}",
             f"size          {ratio('size_bytes')} bytes",
             f"gzip size     {ratio('gzip_bytes')} bytes"]
    if "accuracy" in b:
        lines.append(f"accuracy      {b['accuracy']:.2%} -> {a['accuracy']:.2%} "
                     f"({(a['accuracy'] - b['accuracy']) * 100:+.2f} pt)")
    if r.training:
        t = r.training
        lines.append(f"fine-tuning   {t['epochs']} epoch(s) on {t['samples']} samples, {t['wall_s']:.1f} s, "
                     f"{t['flops']:.3g} FLOPs ({t['flops_basis']})")
    return lines
