"""Run every benchmark script and write benchmarks/results.json (machine, versions, date, results).

`make bench` calls this. benchmarks/RESULTS.md is the readable summary of these numbers.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import convert_models  # noqa: E402
import data_sampling  # noqa: E402
import estimate_validate  # noqa: E402
import quantize_models  # noqa: E402
import startup_inspect  # noqa: E402


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for pkg in ("tensorflow", "keras", "ai-edge-litert", "onnx", "onnxruntime", "onnxsim", "tf2onnx", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions}


def main() -> None:
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine()}
    for name, mod in (("startup_inspect", startup_inspect), ("data_sampling", data_sampling),
                      ("convert_models", convert_models), ("quantize_models", quantize_models),
                      ("estimate_validate", estimate_validate)):
        print(f"running {name} ...", file=sys.stderr)
        results[name] = mod.main()
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {HERE / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
