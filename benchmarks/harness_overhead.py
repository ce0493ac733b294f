"""Section 4 of the benchmark suite: what the bench harness itself costs.

1. Overhead: `edgeml bench` p50 vs a bare LiteRT `interpreter.invoke()` loop on the same model, same thread
   count. Both run in fresh processes, alternated round by round (bare, harness, bare, harness, ...) so the
   comparison holds on a noisy machine; overhead = median of the harness p50s / median of the bare p50s - 1,
   and the paired overhead = median over rounds of (harness p50 / bare p50) - 1 (robust to drift).
2. Remote: wall time from `bench()` call to result for the int8 digits model, local vs over SSH to a real
   OpenSSH server on 127.0.0.1 (the test suite's LoopbackBoard); remote adds connect + copy + cleanup.

Run: .venv/bin/python benchmarks/harness_overhead.py [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # sshd.LoopbackBoard
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _models  # noqa: E402

BARE = r"""
import sys, time, json
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
it = Interpreter(model_path=path, num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
rng = np.random.default_rng(0)
x = rng.uniform(0, 1, d["shape"]).astype(np.float32)
if d["dtype"] != np.float32:
    scale, zp = d["quantization"]
    info = np.iinfo(d["dtype"])
    x = np.clip(np.round(x / scale + zp), info.min, info.max).astype(d["dtype"])
it.set_tensor(d["index"], x)
for _ in range(warmup):
    it.invoke()
ms = []
for _ in range(runs):
    t = time.perf_counter()
    it.invoke()
    ms.append((time.perf_counter() - t) * 1000)
print(json.dumps({"p50": float(np.median(ms))}))
"""


def models() -> dict[str, Path]:
    """MobileNetV2 fp32 .tflite (~10 ms/inference) and the int8 digits CNN (~10 us), built if missing."""
    from edgeml.convert import convert
    from edgeml.quantize import quantize

    out = {"mobilenet_v2 fp32": _models.WORK / "mobilenet_v2" / "fp32.tflite",
           "digits_cnn int8": _models.WORK / "digits_cnn" / "edgeml_int8.tflite"}
    if not out["mobilenet_v2 fp32"].exists():
        out["mobilenet_v2 fp32"].parent.mkdir(parents=True, exist_ok=True)
        convert(_models.mobilenet_v2(), to="tflite", out=out["mobilenet_v2 fp32"])
    if not out["digits_cnn int8"].exists():
        out["digits_cnn int8"].parent.mkdir(parents=True, exist_ok=True)
        digits, _ = _models.digits_cnn()
        quantize(digits, out=out["digits_cnn int8"], calib="builtin:digits?split=train&samples=100")
    return out


def bare_p50(path: Path, runs: int, warmup: int) -> float:
    proc = subprocess.run([sys.executable, "-c", BARE, str(path), str(runs), str(warmup)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])["p50"]


def harness_p50(path: Path, runs: int, warmup: int) -> float:
    from edgeml.bench.harness import bench

    res = bench([path], runs=runs, warmup=warmup, threads=1)
    return res.models[0]["latency_ms"]["p50"]


def overhead(path: Path, rounds: int, runs: int, warmup: int = 10) -> dict:
    bare, harness = [], []
    for _ in range(rounds):
        bare.append(bare_p50(path, runs, warmup))
        harness.append(harness_p50(path, runs, warmup))
    b, h = statistics.median(bare), statistics.median(harness)
    paired = statistics.median(hh / bb for bb, hh in zip(bare, harness))  # robust to drift between rounds
    return {"rounds": rounds, "runs_per_round": runs, "bare_p50_ms": bare, "harness_p50_ms": harness,
            "bare_median_ms": b, "harness_median_ms": h, "overhead_pct": (h / b - 1) * 100,
            "paired_overhead_pct": (paired - 1) * 100}


def remote(path: Path, rounds: int) -> dict:
    from sshd import LoopbackBoard, sshd_binary

    from edgeml.bench.harness import bench
    from edgeml.targets.remote import SSHTarget

    if sshd_binary() is None:
        return {"skipped": "no sshd on this machine (apt install openssh-server)"}
    with tempfile.TemporaryDirectory() as tmp:
        board = LoopbackBoard(Path(tmp))
        try:
            host = SSHTarget.parse(board.host, config=str(board.config), python=board.python)
            local, rem = [], []
            for _ in range(rounds):
                t = time.perf_counter()
                a = bench([path], runs=50, data="builtin:digits?split=test", threads=1)
                local.append(time.perf_counter() - t)
                t = time.perf_counter()
                b = bench([path], runs=50, data="builtin:digits?split=test", threads=1, host=host)
                rem.append(time.perf_counter() - t)
            same = a.models[0]["accuracy"] == b.models[0]["accuracy"]
        finally:
            board.stop()
    lm, rm = statistics.median(local), statistics.median(rem)
    return {"rounds": rounds, "local_s": local, "remote_s": rem, "local_median_s": lm, "remote_median_s": rm,
            "remote_overhead_s": rm - lm, "accuracy_identical": same}


def main(quick: bool = False) -> dict:
    paths = models()
    rounds = 3 if quick else 7
    res = {"overhead": {"mobilenet_v2 fp32": overhead(paths["mobilenet_v2 fp32"], rounds, 100 if quick else 200),
                        "digits_cnn int8": overhead(paths["digits_cnn int8"], rounds, 2000 if quick else 5000)},
           "remote": remote(paths["digits_cnn int8"], 3 if quick else 5)}
    return res


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv), indent=2))
