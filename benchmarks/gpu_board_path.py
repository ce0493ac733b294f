"""The Jetson path (ONNX Runtime with TensorRT > CUDA > CPU) run for real on an NVIDIA GPU machine.

What a Jetson board runs when edgeml benches an ONNX model there is edgeml's self-contained device runner
with the profile's provider list. This script runs that same runner, with the jetson-orin-nano profile's
providers, on whatever machine it is started on (the project's lent GPU machine; never needed by tests),
and the same models with the CPU provider only, so each result names the provider that actually ran and
what it cost. It does not claim Jetson latencies: the numbers are this machine's GPU, labelled as such.

    python benchmarks/gpu_board_path.py MODEL.onnx [MODEL.onnx ...] [--runs 200] [--out gpu.json]
    python benchmarks/gpu_board_path.py MODEL.onnx --input-shape x=1,3,320,320   (dynamic dims)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from edgeml.artifact import ModelArtifact  # noqa: E402
from edgeml.bench.harness import preflight, run_local  # noqa: E402
from edgeml.convert.verify import random_feeds  # noqa: E402
from edgeml.targets import load_profile  # noqa: E402


def _job(models: list[Path], providers: list[str] | None, runs: int, root: Path) -> Path:
    profile = load_profile("jetson-orin-nano")
    job = root / ("job-" + ("-".join(p[:4] for p in providers) if providers else "profile"))
    job.mkdir()
    entries = []
    for k, path in enumerate(models):
        art = ModelArtifact.open(path)
        spec = preflight(art, profile)
        if providers is not None:
            spec["providers"] = providers
        name = f"m{k}.onnx"
        (job / name).write_bytes(path.read_bytes())
        feeds = random_feeds(art.inspect().inputs, 4, seed=0)
        data = f"data{k}.npz"
        np.savez(job / data, **{f"in{i}": np.concatenate([f[t] for f in feeds]) for i, t in enumerate(feeds[0])})
        entries.append({"name": path.name, "file": name, "threads": None, "data": data, **spec})
    (job / "job.json").write_text(json.dumps({"models": entries, "runs": runs, "warmup": 10, "min_time": 0.0,
                                              "reference": None}))
    return job


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="edgeml-gpu-") as tmp:
        for label, providers in (("jetson profile (TensorRT > CUDA > CPU)", None), ("CPU only", ["CPUExecutionProvider"])):
            job = _job(args.models, providers, args.runs, Path(tmp))
            result = run_local(job, progress=lambda m: print(m, file=sys.stderr))
            raw[label] = result
            for m in result["models"]:
                lat = m.get("latency_ms") or m.get("latency") or {}
                rows.append({"run": label, "model": m.get("name"), "providers": m.get("providers"),
                             "missing_providers": m.get("missing_providers"),
                             "p50_ms": lat.get("p50") if isinstance(lat, dict) else lat,
                             "cold_start": m.get("cold_start"), "rss_after_load_mib": m.get("rss_after_load_mib"), "error": m.get("error")})
    env = raw[next(iter(raw))].get("environment", {})
    print(json.dumps({"environment": env, "rows": rows}, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"environment": env, "rows": rows, "raw": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
