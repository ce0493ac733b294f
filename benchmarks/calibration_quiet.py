"""Streaming calibration vs ONNX Runtime's calibrators, wall time and peak memory, alternated (issue 20).

MobileNetV2 224 (benchmarks/_models.py), synthetic image-like samples, each run a fresh child process
(`calibration_stream.child`: peak RSS = the child's VmHWM). Entropy and percentile at 100 samples: edgeml and
ORT alternated, two rounds, the order swapped in the second. With ``--500``: 500 samples, edgeml for all three
methods and ORT's minmax (ORT's entropy/percentile keep every activation: ~5x their 6.3 GB at 100 samples, more
than this machine's 24 GiB).

    python benchmarks/calibration_quiet.py [--500] > out.json      (run it on a machine with its cores free)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import calibration_stream as cs  # noqa: E402


def run(tool: str, method: str, src: Path, n: int, **tags: object) -> dict:
    r = cs.child(tool, method, src, "synthetic", n, cs.WORK / f"quiet_{method}_{tool}_{n}.onnx")
    r.update(tool=tool, method=method, samples=n, loadavg=round(os.getloadavg()[0], 2), **tags)
    print(json.dumps(r), file=sys.stderr, flush=True)
    return r


def main() -> list[dict]:
    cs.WORK.mkdir(parents=True, exist_ok=True)
    src = cs.mobilenet()
    rows = []
    if "--500" in sys.argv:
        for method, tool in (("minmax", "onnxruntime"), ("minmax", "edgeml"), ("entropy", "edgeml"),
                             ("percentile", "edgeml")):
            rows.append(run(tool, method, src, 500))
        return rows
    for rnd in (1, 2):
        for method in ("entropy", "percentile"):
            for tool in ("onnxruntime", "edgeml") if rnd == 1 else ("edgeml", "onnxruntime"):
                rows.append(run(tool, method, src, 100, round=rnd))
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
