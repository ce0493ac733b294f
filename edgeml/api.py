"""The public Python API: one typed function per stage, re-exported lazily by :mod:`edgeml`.

    >>> import edgeml
    >>> info = edgeml.inspect("model.onnx")
    >>> r = edgeml.quantize("model.keras", calib="builtin:digits?split=train", out="model_int8.tflite")

Each function takes the model as a path, keyword-only options, and returns a result dataclass with
``to_dict()`` (the JSON the CLI prints with ``--json``). Heavy libraries (TensorFlow, tf2onnx) are imported
only by the stage that needs them. Every function raises :class:`edgeml.EdgeMLError` (or a subclass, see
:mod:`edgeml.errors`) for a problem with the input; the message names the object and the hint what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgeml._types import Data, InputShapes, PathLike, Progress
from edgeml.options import (
    BenchOptions,
    CheckOptions,
    ConvertOptions,
    EstimateOptions,
    PruneOptions,
    QuantizeOptions,
)

if TYPE_CHECKING:
    from edgeml.bench.harness import BenchResult
    from edgeml.check import Budget, CheckResult
    from edgeml.convert import ConvertResult
    from edgeml.formats.common import Inspection
    from edgeml.pipeline import Recipe, RunResult
    from edgeml.prune import PruneResult
    from edgeml.quantize import QuantizeResult
    from edgeml.targets.estimate import Estimate
    from edgeml.targets.remote import SSHTarget

#: The type aliases of the signatures below (``PathLike``, ``Data``, ``InputShapes``, ``Progress``) are defined
#: in :mod:`edgeml._types`, shared with the options dataclasses of :mod:`edgeml.options`.


def inspect(model: PathLike, *, input_shapes: InputShapes | None = None) -> Inspection:
    """Describe a model: inputs/outputs (with quantization), op histogram, parameters, MACs, weight dtypes.

    Args:
        model: a .tflite, .onnx, .keras, Keras 2 .h5 file or a SavedModel directory (format detected from
            the content).
        input_shapes: sizes for dynamic input dimensions, used for the MAC count.

    Returns:
        The :class:`~edgeml.formats.common.Inspection` (``to_dict()`` is the ``edgeml.inspect/1`` JSON).

    Raises:
        ModelLoadError: the file is missing, unreadable or of an unknown format.
        MissingDependencyError: the format needs TensorFlow and it is not installed.
    """
    from edgeml.artifact import inspect_model

    return inspect_model(model, input_shapes=input_shapes)


def convert(model: PathLike, *, to: str | None = None, out: PathLike | None = None, opset: int = 17,
            simplify: bool = True, float16: bool = False, verify: int = 8, calib: Data | None = None,
            atol: float | None = None, strict: bool = False, force: bool = False,
            input_shapes: InputShapes | None = None, progress: Progress | None = None,
            options: ConvertOptions | None = None) -> ConvertResult:
    """Convert a model to TFLite or ONNX and verify the output against the source on a few samples.

    Args:
        model: Keras/.h5/SavedModel, .tflite or .onnx.
        to: ``"tflite"`` or ``"onnx"`` (:class:`edgeml.options.ConvertTo`).
        out: the output file; written atomically, only when the verification passes.
        opset: the ONNX opset for Keras -> ONNX.
        simplify: run onnx-simplifier on ONNX output.
        float16: store TFLite weights as float16.
        verify: how many samples to compare source and output on (0: no verification).
        calib: data for the verification samples (random inputs when None).
        atol: the largest accepted absolute output difference (default by precision).
        strict: refuse instead of warning when the verification finds a difference.
        force: overwrite ``out`` if it exists.
        input_shapes: sizes for dynamic input dimensions of the verification samples.
        progress: called with one line per step.
        options: all of the above but ``progress`` as one :class:`edgeml.options.ConvertOptions`, in place of
            the keyword arguments.

    Returns:
        A :class:`~edgeml.convert.ConvertResult` with the verification it ran.

    Raises:
        EdgeMLError: an unsupported conversion, a failed verification, an existing ``out`` without ``force``.
        UsageError: ``options`` and keyword options both given, or ``to``/``out`` missing.
    """
    from edgeml.convert import convert as _convert

    return _convert(model, to=to, out=out, opset=opset, simplify=simplify, float16=float16, verify=verify,
                    calib=calib, atol=atol, force=force, strict=strict, progress=progress,
                    input_shapes=input_shapes, options=options)


def quantize(model: PathLike, *, out: PathLike | None = None, calib: Data | None = None, format: str | None = None,
             mode: str = "int8", io: str | None = None, per_channel: bool = True, method: str = "minmax",
             calib_samples: int | None = None, target: str | None = None, eval: Data | None = None,
             report: PathLike | None = None, keep_degraded: bool = False, force: bool = False,
             input_shapes: InputShapes | None = None, progress: Progress | None = None,
             max_accuracy_drop: float | None = None, min_fidelity: float | None = None, keep_best: bool = False,
             fallback: str | None = None, speed_seconds: float = 0.0, train: Data | None = None, epochs: int = 3,
             lr: float = 1e-4, options: QuantizeOptions | None = None) -> QuantizeResult:
    """Post-training quantization (int8, int16x8, float16, dynamic) with calibration data, then a fidelity check.

    Args:
        model: Keras/.h5/SavedModel, a float .tflite or .onnx.
        out: the quantized model (.tflite or .onnx); written atomically after it loads and runs.
        calib: calibration data (100-500 representative samples); needed for int8 and int16x8.
        format: ``"tflite"`` or ``"onnx"`` (default: from ``out``'s suffix).
        mode: ``"int8"``, ``"int16x8"``, ``"float16"`` or ``"dynamic"`` (:class:`edgeml.options.QuantMode`).
        io: the model's input/output type: ``"float32"``, ``"int8"``, ``"uint8"`` or ``"int16"`` (default: by
            mode and target).
        per_channel: per-channel weight scales (per-tensor when False).
        method: activation range calibration: ``"minmax"``, ``"entropy"`` or ``"percentile"``; ``"qat"``:
            quantization-aware fine-tuning of a Keras model on ``train`` for ``epochs`` at ``lr``, then full int8.
        calib_samples: how many calibration samples to take from ``calib``.
        target: a target profile name; its requirements (full int8, IO type) apply.
        eval: labelled data; top-1 of the float and quantized model are compared.
        report: write a per-layer error report (.json or .md) here.
        keep_degraded: write the model even when the fidelity check fails (the result still says so).
        force: overwrite existing outputs.
        input_shapes: sizes for dynamic input dimensions.
        progress: called with one line per step.
        max_accuracy_drop: budget: largest top-1 drop (a fraction) on labelled ``eval``; the worst layers fall
            back until it holds (:mod:`edgeml.quantize.budget`).
        min_fidelity: budget without labels: every output's cosine vs float (on ``eval``, else calibration
            samples) at least this.
        keep_best: when the budget cannot be met, write the best reached (``result.budget["met"]`` is False).
        fallback: what fallen-back layers become: ``"float"`` or ``"int16x8"`` (a float .tflite only).
        speed_seconds: time float vs quantized interleaved on this host for at most this long (0: skip).
        train: labelled training data for ``method="qat"``.
        epochs: ``method="qat"`` fine-tuning epochs.
        lr: ``method="qat"`` learning rate.
        options: all of the above but ``progress`` as one :class:`edgeml.options.QuantizeOptions`, in place of
            the keyword arguments.

    Returns:
        A :class:`~edgeml.quantize.QuantizeResult`: sizes, metrics, the worst layers first; ``budget``,
        ``speed`` and ``training`` when asked for.

    Raises:
        EdgeMLError: missing calibration data, an unsupported mode for the format, a failed fidelity check.
        UsageError: a malformed budget, ``max_accuracy_drop`` without labelled ``eval`` data, ``options`` and
            keyword options both given, or no ``out``.
        CheckFailed: the budget cannot be met (``BudgetNotMet``; nothing written unless ``keep_best``).
        DataError: calibration or evaluation data that does not fit the model.
    """
    from edgeml.quantize import quantize as _quantize

    return _quantize(model, out=out, calib=calib, format=format, mode=mode, io=io, per_channel=per_channel,
                     method=method, calib_samples=calib_samples, target=target, eval=eval, report=report,
                     force=force, progress=progress, input_shapes=input_shapes, keep_degraded=keep_degraded,
                     max_accuracy_drop=max_accuracy_drop, min_fidelity=min_fidelity, keep_best=keep_best,
                     fallback=fallback, speed_seconds=speed_seconds, train=train, epochs=epochs, lr=lr,
                     options=options)


def prune(model: PathLike, *, out: PathLike | None = None, sparsity: float | None = None, method: str = "magnitude",
          scope: str = "layer", criterion: str = "l1", train: Data | None = None, val: Data | None = None,
          epochs: int = 5, batch_size: int = 32, lr: float = 1e-3, schedule: str = "polynomial",
          exclude: str | None = None, force: bool = False, progress: Progress | None = None,
          options: PruneOptions | None = None) -> PruneResult:
    """Prune a Keras model (magnitude or channel pruning, optionally fine-tuned) or an ONNX model (magnitude).

    Args:
        model: .keras/.h5 (saved as .keras) or .onnx.
        out: the pruned model.
        sparsity: the fraction of weights (magnitude) or channels (channel) to remove, in [0, 1).
        method: ``"magnitude"`` or ``"channel"`` (:class:`edgeml.options.PruneMethod`).
        scope: ``"layer"`` (each layer to ``sparsity``) or ``"global"`` (one threshold over all layers).
        criterion: channel scores: ``"l1"``, ``"l2"`` or ``"bn"`` (batch-norm scale).
        train: labelled training data; fine-tunes under a sparsity schedule when given.
        val: labelled validation data; accuracy before and after is reported.
        epochs: fine-tuning epochs.
        batch_size: fine-tuning batch size.
        lr: fine-tuning learning rate.
        schedule: ``"polynomial"`` or ``"constant"`` sparsity schedule.
        exclude: a regular expression of layer names to leave dense.
        force: overwrite ``out`` if it exists.
        progress: called with one line per step.
        options: all of the above but ``progress`` as one :class:`edgeml.options.PruneOptions`, in place of
            the keyword arguments.

    Returns:
        A :class:`~edgeml.prune.PruneResult`: before/after statistics and the pruned layers.

    Raises:
        EdgeMLError: an unsupported model or option, nothing prunable.
        UsageError: ``options`` and keyword options both given, or ``out``/``sparsity`` missing.
    """
    from edgeml.prune import prune as _prune

    return _prune(model, out=out, sparsity=sparsity, method=method, scope=scope, criterion=criterion, train=train,
                  val=val, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, exclude=exclude,
                  force=force, progress=progress, options=options)


def bench(models: Sequence[PathLike], *, target: str | None = None, host: str | SSHTarget | None = None,
          runs: int = 50, warmup: int = 5, min_time: float = 0.0, threads: int | None = None,
          data: Data | None = None, reference: PathLike | None = None, timeout: float | None = None,
          input_shapes: InputShapes | None = None, progress: Progress | None = None,
          options: BenchOptions | None = None) -> BenchResult:
    """Measure latency (and accuracy on labelled data) on this machine or a board over SSH; estimate otherwise.

    Args:
        models: .tflite/.onnx models, timed interleaved (A B A B ...).
        target: a target profile name or TOML file (default: this host). Without ``host`` a board target is
            estimated, and the result says so.
        host: ``"[USER@]HOST[:PORT]"`` or an :class:`~edgeml.targets.remote.SSHTarget` (which also carries the
            ssh options: ``identity``, ``config``, ``python``, ``connect_timeout``): run on that board.
        runs: timed runs per model.
        warmup: untimed runs first.
        min_time: keep timing until this many seconds have passed.
        threads: interpreter threads (default: the target's cores).
        data: labelled data for top-1 (or any data: feeds for timing).
        reference: a model whose outputs the others are compared with.
        timeout: give up on a remote run after this many seconds.
        input_shapes: sizes for dynamic input dimensions.
        progress: called with one line per step.
        options: all of the above but ``models`` and ``progress`` as one :class:`edgeml.options.BenchOptions`,
            in place of the keyword arguments.

    Returns:
        A :class:`~edgeml.bench.harness.BenchResult` (``measured`` False for estimates).

    Raises:
        EdgeMLError: a model the target cannot run, a board that fails (RemoteError).
        UsageError: out-of-range numbers (``runs``, ``warmup``, ``min_time``, ``timeout``), or ``options`` and
            keyword options both given.
    """
    from edgeml.bench.harness import bench as _bench

    return _bench(list(models), target=target, host=host, runs=runs, warmup=warmup, min_time=min_time,
                  threads=threads, data=data, reference=reference, progress=progress, input_shapes=input_shapes,
                  timeout=timeout, options=options)


def estimate(model: PathLike, *, target: str | None = None, precision: str | None = None,
             threads: int | None = None, top: int = 8, input_shapes: InputShapes | None = None,
             options: EstimateOptions | None = None) -> Estimate:
    """Estimate latency and energy on a target from the model's graph and the target's published figures.

    Args:
        model: a .tflite or .onnx model (or any format edgeml inspects).
        target: a target profile name (``edgeml targets``) or TOML file; required (here or in ``options``).
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (default: from the model's weights).
        threads: CPU threads (default: the target's cores).
        top: how many of the costliest ops to list.
        input_shapes: sizes for dynamic input dimensions.
        options: all of the above but ``model`` as one :class:`edgeml.options.EstimateOptions`, in place of the
            keyword arguments.

    Returns:
        An :class:`~edgeml.targets.estimate.Estimate`, labelled as an estimate with its basis.

    Raises:
        EdgeMLError: an unknown target, the host (measured, not estimated), ops whose cost is unknown.
        UsageError: no ``target``, an unknown ``precision``, or ``options`` and keyword options both given.
    """
    from edgeml.targets.estimate import estimate as _estimate

    return _estimate(model, target=target, precision=precision, threads=threads, top=top,
                     input_shapes=input_shapes, options=options)


def check(budgets: PathLike | Sequence[Budget], *, repeat: int = 3, runs: int = 50,
          input_shapes: InputShapes | None = None, progress: Progress | None = None,
          options: CheckOptions | None = None) -> CheckResult:
    """Check budgets (size, latency, accuracy, accuracy drop) for CI; ``result.passed`` is the verdict.

    Args:
        budgets: a budget TOML file (or a pyproject.toml with ``[tool.edgeml]``), or
            :class:`~edgeml.check.Budget` objects.
        repeat: latency budgets are measured this many times; the median decides.
        runs: timed runs per latency measurement.
        input_shapes: sizes for dynamic input dimensions (latency runs).
        progress: called with one line per step.
        options: ``repeat``, ``runs`` and ``input_shapes`` as one :class:`edgeml.options.CheckOptions`, in place
            of the keyword arguments.

    Returns:
        A :class:`~edgeml.check.CheckResult` (``to_junit()`` / ``to_markdown()`` for CI).

    Raises:
        BudgetError: a malformed budget (a usage error).
        UsageError: ``options`` and keyword options both given.
        EdgeMLError: a model or data that cannot be measured.
    """
    from edgeml.check import load_budgets, run_check

    items = (load_budgets(budgets) if isinstance(budgets, (str, Path))
             else [b.validate().refuse_unused(b.set_keys()) for b in budgets])
    return run_check(items, repeat=repeat, runs=runs, progress=progress, input_shapes=input_shapes, options=options)


def run_pipeline(recipe: Recipe | PathLike, *, progress: Progress | None = None) -> RunResult:
    """Run (or bring up to date) prune -> convert -> quantize -> bench/estimate -> report -> check.

    Args:
        recipe: a :class:`~edgeml.pipeline.Recipe` or a recipe TOML file (``edgeml run RECIPE.toml``).
        progress: called with one line per step.

    Returns:
        A :class:`~edgeml.pipeline.RunResult`: the run folder's manifest, report, check and ranking.

    Raises:
        EdgeMLError: an invalid recipe or a stage that fails; stages already done stay cached.
    """
    from edgeml.pipeline import load_recipe
    from edgeml.pipeline import run_pipeline as _run

    return _run(load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe, progress=progress)
