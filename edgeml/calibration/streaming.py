"""Streaming calibration for ONNX static quantization: memory independent of the number of samples.

ONNX Runtime's entropy and percentile calibrators keep every intermediate tensor of every sample in memory
before building histograms (~6.4 GB for MobileNetV2 224 with 100 samples). Here the model runs one sample at
a time with every tensor that needs a range as an extra output, and each tensor's statistics are folded into
fixed-size state as it arrives, so peak memory is O(tensors x bins) plus one sample's activations:

- pass 1 (every method): running min/max per tensor (and min |x| for symmetric percentile), with a check
  that names the first tensor, in graph order, where a NaN or Inf appears;
- pass 2 (entropy, percentile): per-tensor histograms over the final pass-1 range, summed sample by sample.
  Because the bin edges are the ones ONNX Runtime computes from the same global min/max, the summed
  histograms equal the ones ORT builds from all samples at once, bin for bin, and the thresholds come from
  ORT's own ``HistogramCollector`` (KL divergence as in TensorRT, or the percentile of the CDF).

The ranges go to ORT's quantizer through its calibration cache (``quantize_static(...,
calibration_cache_path=...)``), so the QDQ graph construction stays ORT's. Nothing is random: the same
model and samples give the same ranges, and the same quantized model.

    >>> ranges = calibrate(model_proto, dataset_feeds, method="entropy", progress=lambda p, i, n: ...)
    >>> ranges.tensors_data()      # onnxruntime.quantization.TensorsData
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.calibration.augmented import AugmentedSession, infer_shapes, tensors_to_calibrate
from edgeml.calibration.ranges import METHODS, ORT_DEFAULTS, StreamingRanges, TensorStats, options_for, thresholds
from edgeml.errors import DataError, EdgeMLError

HISTOGRAM_THREADS = 2  # histogram folding threads (beside ORT's own): numpy's histogram is single-threaded

Progress = Callable[[str, int, int], None]  # (phase, samples done, samples total or 0 when unknown)


def _proc_status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def vm_hwm_mib() -> float | None:
    """This process's peak resident set so far (Linux VmHWM), MiB; None where /proc is unavailable."""
    return _proc_status_mib("VmHWM")


def _samples(source: Any) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """A restartable stream of feeds from a list/Dataset-like iterable, a zero-arg callable, or an ORT
    ``CalibrationDataReader`` with ``rewind()`` (edgeml's readers have one)."""
    if callable(source) and not hasattr(source, "get_next"):
        return source
    if hasattr(source, "get_next"):
        def from_reader() -> Iterator[dict[str, np.ndarray]]:
            if hasattr(source, "rewind"):
                source.rewind()
            while True:
                feed = source.get_next()
                if not feed:
                    return
                yield feed

        from_reader.restartable = hasattr(source, "rewind")  # type: ignore[attr-defined]
        return from_reader
    if hasattr(source, "input_names") and hasattr(source, "sample"):  # an edgeml Dataset: batch-of-one feeds
        return lambda: ({n: s.batch1()[n] for n in source.input_names} for s in source)
    return lambda: iter(source)


def _count(source: Any) -> int:
    try:
        return len(source)
    except TypeError:
        return 0


def _producers(model) -> dict[str, str]:
    out = {}
    for node in model.graph.node:
        for o in node.output:
            out[o] = f"{node.op_type} node '{node.name}'" if node.name else f"{node.op_type} node"
    return out


def _nonfinite(model, name: str, index: int, total: int, x: np.ndarray) -> DataError:
    what = _producers(model).get(name, "model input")
    kind = "NaN" if np.isnan(x).any() else "Inf"
    return DataError(f"calibration sample {index + 1}{f' of {total}' if total else ''}: tensor '{name}' "
                     f"(output of {what}) is the first with {kind} values",
                     hint="check the data's preprocessing (scale, mean/std: values far outside the training range "
                          "overflow) or the op's input domain (Log/Sqrt/Div of zero or negatives); nothing was "
                          "written")


def calibrate(model, samples: Any, *, method: str = "minmax", progress: Progress | None = None,
              op_types: Iterable[str] | None = None, **options: Any) -> StreamingRanges:
    """Calibrate ``model`` (a float ModelProto) on ``samples``; see the module docstring.

    ``options`` override ORT's defaults for the method: ``symmetric``, ``num_bins``, ``num_quantized_bins``,
    ``percentile``. Raises ``DataError`` naming the first tensor (graph order) with NaN/Inf values."""
    import time

    t0 = time.perf_counter()
    rss0 = _proc_status_mib("VmRSS")
    opts = options_for(method, **options)
    stream = _samples(samples)
    total = _count(samples)
    passes = 1 if method == "minmax" else 2
    if passes == 2 and getattr(stream, "restartable", True) is False:
        raise EdgeMLError(f"{method} calibration streams the samples twice, but this data reader cannot rewind",
                          hint="give a reader with rewind(), a list, or an edgeml Dataset")
    inferred = infer_shapes(model)
    names = tensors_to_calibrate(inferred, op_types)
    stats = {n: TensorStats() for n in names}
    say = progress or (lambda phase, done, n: None)
    need_abs = method == "percentile" and opts["symmetric"]
    max_act = 0
    session = AugmentedSession(inferred, names)
    try:
        count = 0
        for count, feed in enumerate(stream(), 1):  # pass 1: ranges, NaN/Inf check
            values = session.run(feed)
            max_act = max(max_act, sum(v.nbytes for v in values.values()))
            for name in names:
                x = values[name]
                if x.size == 0:
                    continue
                lo, hi = x.min(), x.max()
                if not (np.isfinite(lo) and np.isfinite(hi)):
                    raise _nonfinite(model, name, count - 1, total, x)
                s = stats[name]
                s.lo = lo if s.lo is None else min(s.lo, lo)
                s.hi = hi if s.hi is None else max(s.hi, hi)
                if need_abs:  # min |x| needs a pass over x only when x has both signs
                    a = abs(lo) if lo >= 0 else abs(hi) if hi <= 0 else np.abs(x).min()
                    s.alo = a if s.alo is None else min(s.alo, a)
            del values
            say("ranges", count, total)
        if count == 0:
            raise DataError("calibration data is empty (0 samples)", hint="check the data spec")
        total = total or count
        for s in stats.values():
            if s.lo is None:  # no elements in any sample: ORT uses 0
                s.lo = s.hi = s.alo = np.float32(0)
        if passes == 2:
            _histograms(session, stream, stats, opts, method, need_abs, say, total)
    finally:
        del session
    ranges = thresholds(stats, opts, method)
    state = sum(s.nbytes() for s in stats.values())
    return StreamingRanges(method=method, options=opts, ranges=ranges, samples=count, passes=passes,
                           state_bytes=state, max_activation_bytes=max_act, peak_rss_mib=vm_hwm_mib(),
                           seconds=time.perf_counter() - t0, order=names,
                           rss_start_mib=rss0)


def _histograms(session: AugmentedSession, stream, stats: dict[str, TensorStats], opts, method, need_abs, say,
                total) -> None:
    bins = opts["num_bins"]
    for s in stats.values():
        if need_abs:  # ORT collect_absolute_value: np.histogram(|x|, bins) over all of |x|
            s.hi_abs = max(abs(s.lo), abs(s.hi))
            s.hist, s.edges = np.histogram(np.zeros(0, s.lo.dtype), bins, range=(s.alo, s.hi_abs))
        else:  # ORT collect_value: symmetric range around 0 from the global min/max
            s.threshold = np.array(max(abs(s.lo), abs(s.hi)), dtype=s.lo.dtype)
            s.hist, s.edges = np.histogram(np.zeros(0, s.lo.dtype), bins, range=(-s.threshold, s.threshold))
        s.hist = s.hist.astype(np.int64)
        s.edges = s.edges.astype(s.lo.dtype)
    items = list(stats.items())
    workers = HISTOGRAM_THREADS

    def fold(values: dict[str, np.ndarray], part: int) -> None:
        for name, s in items[part::workers]:
            x = values[name].ravel()
            if x.size == 0:
                continue
            if need_abs:  # |x| is x itself when the tensor is never negative (ReLU outputs): no copy
                h, _ = np.histogram(x if s.lo >= 0 else np.abs(x), bins, range=(s.alo, s.hi_abs))
            else:
                h, _ = np.histogram(x, bins, range=(-s.threshold, s.threshold))
            s.hist += h

    # Worker threads fold sample k into the histograms (each its own share of the tensors) while ORT runs
    # sample k+1; numpy and ORT release the GIL. At most two samples' activations are alive. Each tensor's
    # histogram is updated by one thread, in sample order, with integer counts: the result does not depend on
    # timing.
    from concurrent.futures import ThreadPoolExecutor

    done = 0
    pending: list = []
    with ThreadPoolExecutor(workers, thread_name_prefix="edgeml-histogram") as pool:
        for done, feed in enumerate(stream(), 1):
            values = session.run(feed)
            if pending:
                [f.result() for f in pending]
                say("histograms", done - 1, total)
            pending = [pool.submit(fold, values, part) for part in range(workers)]
            del values
        if pending:
            [f.result() for f in pending]
            say("histograms", done, total)
    if done != total:
        raise DataError(f"calibration data changed between passes ({total} samples, then {done})",
                        hint="use a data source that yields the same samples each time")



def ort_calibration(model_path: Path, samples: Any, *, method: str, work_dir: Path,
                    progress: Progress | None = None, **options: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Streaming-calibrate ``model_path`` and hand the ranges to ORT's ``quantize_static`` through its cache hook.

    Returns ``(calibration_data_reader, extra quantize_static kwargs, summary)``: ``(None,
    {"calibration_cache_path": ...}, ...)``, or, on an onnxruntime without the hook, ``(samples, {}, ...)`` so
    that ORT's own (in-memory) calibrator runs as before. The cache lives in ``work_dir``."""
    import onnx

    if not supported():
        return samples, {}, {"calibrator": "onnxruntime (in memory: this onnxruntime has no calibration cache hook)",
                             "method": method}
    ranges = calibrate(onnx.load(str(model_path)), samples, method=method, progress=progress, **options)
    cache = ranges.write_cache(Path(work_dir) / "edgeml-ranges.json")
    return None, {"calibration_cache_path": str(cache)}, ranges.summary()


def progress_lines(say: Callable[[str], None], step: float = 0.25) -> Progress:
    """A :data:`Progress` that reports through ``say`` (status lines) every ``step`` of a pass."""
    at: dict[str, float] = {"next": 0.0}
    current: list[str | None] = [None]  # the phase being reported

    def report(phase: str, done: int, total: int) -> None:
        if phase != current[0]:
            current[0], at["next"] = phase, step
        if total and (done / total >= at["next"] or done == total):
            at["next"] = (int(done / total / step) + 1) * step
            say(f"  calibration {phase}: {done}/{total} samples")
        elif not total and done % 50 == 0:
            say(f"  calibration {phase}: {done} samples")

    return report


def supported() -> bool:
    """Whether the installed onnxruntime takes precomputed ranges (``quantize_static(calibration_cache_path=)``)."""
    import inspect

    from onnxruntime.quantization import quantize_static as ort_quantize_static

    return "calibration_cache_path" in inspect.signature(ort_quantize_static).parameters


__all__ = ["METHODS", "ORT_DEFAULTS", "AugmentedSession", "StreamingRanges", "TensorStats", "calibrate", "infer_shapes",
           "options_for", "ort_calibration", "progress_lines", "supported", "tensors_to_calibrate", "vm_hwm_mib"]
