"""Honest speed: time the float and the quantized model side by side on this host.

The models run interleaved (float, int8, float, int8, ...) on the same input, one thread each, after a
warm-up, for at most ``seconds`` or ``max_rounds`` rounds, so that a load change on the machine hits both
alike. The figure reported is the ratio of medians (float p50 / quantized p50): > 1 means the quantized model
is faster *here*. Nothing is claimed for another machine, and nothing at all when a model does not run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

SECONDS = 3.0
MAX_ROUNDS = 300
MIN_ROUNDS = 10
WARMUP = 3


def _runner(path: Path, feed: dict[str, np.ndarray]):
    from edgeml.quantize.budget import RealSession
    from edgeml.runtimes.session import open_session

    session = open_session(path, threads=1)
    real = RealSession(session)
    from edgeml.convert.verify import to_domain

    names = list(real.specs)
    feed = dict(zip(names, feed.values())) if set(feed) != set(names) else feed
    x = {k: to_domain(v, real.specs[k], real.iq.get(k), "quantized") for k, v in feed.items()}
    return lambda: session.run(x, raw=True)


def compare_speed(models: dict[str, Path], feed: dict[str, np.ndarray], *, seconds: float = SECONDS,
                  max_rounds: int = MAX_ROUNDS) -> dict[str, Any]:
    """p50 latency (ms) of each of ``models`` ({label: path}), interleaved; ``ratio`` = first / each."""
    runs = {label: _runner(p, feed) for label, p in models.items()}
    for _ in range(WARMUP):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {label: [] for label in runs}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < MIN_ROUNDS or time.perf_counter() - start < seconds):
        for label, run in runs.items():
            t = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - t)
        rounds += 1
    p50 = {label: 1000 * statistics.median(v) for label, v in times.items()}
    first = next(iter(p50))
    return {"host": "this machine, 1 thread", "rounds": rounds, "seconds": round(time.perf_counter() - start, 3),
            "p50_ms": {k: round(v, 4) for k, v in p50.items()},
            "speedup_vs_" + first: {k: round(p50[first] / v, 3) for k, v in p50.items() if k != first}}


def verdict(speed: dict[str, Any], fmt: str, label: str = "int8") -> tuple[str, str | None]:
    """(the line to print, advice when the quantized model is slower here)."""
    p50 = speed["p50_ms"]
    ratio = speed["speedup_vs_float"][label]
    line = (f"speed     float {_ms(p50['float'])}, {label} {_ms(p50[label])} p50 on this host "
            f"({speed['rounds']} interleaved rounds, 1 thread): ")
    if ratio >= 1.05:
        return line + f"{label} {ratio:.2f}x faster", None
    if ratio > 1 / 1.05:
        return line + f"no measurable difference ({ratio:.2f}x)", None
    advice = (f"the {label} model is {1 / ratio:.2f}x SLOWER than float on this host (measured): for this host keep "
              "the float model")
    if fmt == "onnx":
        advice += (", or measure another recipe here (e.g. `format=\"tflite\"`) with edgeml bench; ONNX Runtime's CPU "
                   "kernels for int8 (QDQ or dynamic) are only faster on some ops and CPUs")
    else:
        advice += "; measure on the target itself (edgeml bench with `host`) before deploying either"
    return line + f"{label} {1 / ratio:.2f}x slower", advice


def _ms(v: float) -> str:
    return f"{v:.3g} ms"


__all__ = ["compare_speed", "verdict"]
