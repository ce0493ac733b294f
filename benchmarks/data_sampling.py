"""Peak memory of sampling calibration data from a 10,000-image folder (issue: calibration data).

Creates benchmarks/_work/images10k (10,000 random 64x64 RGB PNGs, once), then in fresh subprocesses
measures peak RSS (ru_maxrss) of (a) importing edgeml's data layer only and (b) sampling 200 images
for a 224x224x3 model and iterating them. Prints a markdown row; run: .venv/bin/python benchmarks/data_sampling.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).parent / "_work" / "images10k"
N, SIZE = 10_000, 64

CHILD = r"""
import json, resource, sys, time
from edgeml.calibration import DataSpec, load_dataset
from edgeml.formats.common import TensorSpec
mode, folder = sys.argv[1], sys.argv[2]
t = time.perf_counter()
count = 0
if mode == "sample":
    ds = load_dataset(DataSpec.parse(folder, samples=200, seed=0),
                      inputs=[TensorSpec("x", (None, 224, 224, 3), "float32")])
    for s in ds:
        count += 1
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - t, "samples": count}))
"""


def make_folder() -> None:
    from PIL import Image

    if WORK.is_dir() and len(list(WORK.glob("*.png"))) == N:
        return
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(N):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(WORK / f"{i:05d}.png")


def measure(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(WORK)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict:
    make_folder()
    base = [measure("import") for _ in range(3)]
    run = [measure("sample") for _ in range(3)]
    result = {
        "images": N, "image_size": SIZE, "samples": 200, "model_input": [224, 224, 3],
        "baseline_peak_rss_mib": float(np.median([b["peak_rss_mib"] for b in base])),
        "sample_peak_rss_mib": float(np.median([r["peak_rss_mib"] for r in run])),
        "sample_seconds": float(np.median([r["seconds"] for r in run])),
        "whole_folder_float32_at_224_mib": N * 224 * 224 * 3 * 4 / 2**20,
    }
    result["delta_mib"] = result["sample_peak_rss_mib"] - result["baseline_peak_rss_mib"]
    return result


if __name__ == "__main__":
    t = time.time()
    print(json.dumps(main(), indent=2))
