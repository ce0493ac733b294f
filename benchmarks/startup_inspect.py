"""`edgeml --help` start-up time and `edgeml inspect` time on MobileNetV2 .tflite and .onnx.

Each command runs 7 times in a fresh process (hyperfine-style); medians are reported. The MobileNetV2
models are made once with keras.applications (weights=None) and edgeml convert.
Run: .venv/bin/python benchmarks/startup_inspect.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).parent / "_work"
EDGEML = [sys.executable, "-m", "edgeml"]


def timed(cmd: list[str], n: int = 7) -> dict:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "runs": n}


def ensure_models() -> dict[str, Path]:
    WORK.mkdir(exist_ok=True)
    paths = {fmt: WORK / f"mobilenetv2.{fmt}" for fmt in ("keras", "tflite", "onnx")}
    if not paths["keras"].exists():
        subprocess.run([sys.executable, "-c", "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; import keras; "
                        f"keras.applications.MobileNetV2(weights=None).save(r'{paths['keras']}')"], check=True)
    for fmt in ("tflite", "onnx"):
        if not paths[fmt].exists():
            subprocess.run(EDGEML + ["-q", "convert", str(paths["keras"]), "--to", fmt, "-o", str(paths[fmt]),
                                     "--verify", "2"], check=True)
    return paths


def main() -> dict:
    paths = ensure_models()
    return {
        "python_startup": timed([sys.executable, "-c", "pass"]),
        "edgeml --help": timed(EDGEML + ["--help"]),
        "edgeml inspect mobilenetv2.tflite": timed(EDGEML + ["inspect", str(paths["tflite"])]),
        "edgeml inspect mobilenetv2.onnx": timed(EDGEML + ["inspect", str(paths["onnx"])]),
        "edgeml inspect mobilenetv2.keras": timed(EDGEML + ["inspect", str(paths["keras"])], n=3),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
