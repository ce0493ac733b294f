"""Streaming calibration's state and results: the methods and ORT's defaults for them, the fixed-size
per-tensor statistics (``TensorStats``: min/max, histogram), the thresholds ORT's own ``HistogramCollector``
computes from them, and ``StreamingRanges`` (the ranges, ORT's ``TensorsData``/cache, the cost)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError

METHODS = ("minmax", "entropy", "percentile")
# ONNX Runtime's defaults (create_calibrator), so that the same method means the same thing here and there.
ORT_DEFAULTS: dict[str, dict[str, Any]] = {
    "minmax": {"symmetric": False},
    "entropy": {"symmetric": False, "num_bins": 128, "num_quantized_bins": 128},
    "percentile": {"symmetric": True, "num_bins": 2048, "percentile": 99.999},
}


def options_for(method: str, **overrides: Any) -> dict[str, Any]:
    if method not in METHODS:
        raise EdgeMLError(f"calibration method '{method}' is unknown", hint=f"use one of {', '.join(METHODS)}")
    opts = dict(ORT_DEFAULTS[method])
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return opts


@dataclass
class TensorStats:
    """One tensor's statistics, folded sample by sample (size independent of the number of samples)."""

    lo: Any = None  # np.float32/float16 scalars, as ORT keeps them
    hi: Any = None
    alo: Any = None  # min |x| (symmetric percentile: ORT histograms |x| over [min |x|, max |x|])
    hist: np.ndarray | None = None
    edges: np.ndarray | None = None
    threshold: Any = None
    hi_abs: Any = None

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.hist, self.edges) if a is not None) + 4 * 8


@dataclass
class StreamingRanges:
    """Per-tensor ranges from a streaming calibration, plus what it cost.

    ``state_bytes``: the statistics kept (histograms, min/max), independent of the number of samples;
    ``max_activation_bytes``: the largest set of tensors one sample produced; ``peak_rss_mib``: the process's
    high-water mark (VmHWM) at the end of calibration, an upper bound of calibration's own peak (it includes
    whatever the process held before, see ``rss_start_mib``)."""

    method: str
    options: dict[str, Any]
    ranges: dict[str, tuple[Any, Any]]
    samples: int
    passes: int
    state_bytes: int
    max_activation_bytes: int
    peak_rss_mib: float | None
    seconds: float
    rss_start_mib: float | None = None
    order: list[str] = field(default_factory=list)

    def tensors_data(self):
        """ORT's ``TensorsData`` (ranges only: the integer quantizers read nothing else)."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[self.method]
        data = {name: TensorData(lowest=np.asarray(lo), highest=np.asarray(hi))
                for name, (lo, hi) in sorted(self.ranges.items())}
        return TensorsData(method, data)

    def write_cache(self, path: Path) -> Path:
        """Write the ranges as ORT's calibration cache (JSON) for ``quantize_static(calibration_cache_path=)``."""
        from onnxruntime.quantization.calibrate import save_tensors_data

        save_tensors_data(self.tensors_data(), path)
        return path

    def summary(self) -> dict[str, Any]:
        return {"calibrator": "edgeml streaming", "method": self.method, "options": self.options,
                "tensors": len(self.ranges), "samples": self.samples, "passes": self.passes,
                "state_bytes": self.state_bytes, "max_activation_bytes": self.max_activation_bytes,
                "rss_at_start_mib": self.rss_start_mib, "peak_rss_mib": self.peak_rss_mib,
                "calibration_seconds": round(self.seconds, 3)}


def thresholds(stats: dict[str, TensorStats], opts, method) -> dict[str, tuple[Any, Any]]:
    if method == "minmax":
        out = {}
        for name, s in stats.items():  # ORT: ReduceMin/ReduceMax reshaped to [-1], np.nanmin over samples
            lo, hi = np.asarray([s.lo]), np.asarray([s.hi])
            if opts["symmetric"]:
                m = np.max([np.abs(lo), np.abs(hi)], axis=0)
                lo, hi = -m, m
            out[name] = (lo, hi)
        return out
    from onnxruntime.quantization.calibrate import HistogramCollector

    collector = HistogramCollector(method=method, symmetric=opts["symmetric"], num_bins=opts["num_bins"],
                                   num_quantized_bins=opts.get("num_quantized_bins", 128),
                                   percentile=opts.get("percentile", 99.999), scenario="same")
    for name, s in stats.items():
        if method == "percentile" and opts["symmetric"]:
            collector.histogram_dict[name] = (s.hist, s.edges, s.lo, s.hi)
        else:
            collector.histogram_dict[name] = (s.hist, s.edges, s.lo, s.hi, s.threshold)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        result = collector.compute_collection_result()
    return {name: (np.asarray(v[0]), np.asarray(v[1])) for name, v in result.items()}
