"""Run every benchmark script and write benchmarks/results.json (machine, versions, date, results) and
the generated section of benchmarks/RESULTS.md. `make bench` calls this; nothing is downloaded at run time
(models are built with weights=None or trained on the bundled digits).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import convert_models  # noqa: E402
import data_sampling  # noqa: E402
import estimate_validate  # noqa: E402
import harness_overhead  # noqa: E402
import prune_models  # noqa: E402
import quantize_models  # noqa: E402
import startup_inspect  # noqa: E402
import summary  # noqa: E402
import toolchain  # noqa: E402


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
    start = time.perf_counter()
    for name, mod in (("startup_inspect", startup_inspect), ("data_sampling", data_sampling),
                      ("convert_models", convert_models), ("quantize_models", quantize_models),
                      ("prune_models", prune_models), ("harness_overhead", harness_overhead),
                      ("estimate_validate", estimate_validate), ("toolchain", toolchain)):
        t = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr)
        results[name] = mod.main()
        results.setdefault("section_s", {})[name] = round(time.perf_counter() - t, 1)
        print(f"  {name}: {results['section_s'][name]:.0f} s", file=sys.stderr)
    results["suite_s"] = round(time.perf_counter() - start, 1)
    (HERE / "results.json").write_text(json.dumps(results, indent=2, default=str))
    summary.write(results)
    print(f"wrote {HERE / 'results.json'} and the generated part of {HERE / 'RESULTS.md'} "
          f"({results['suite_s'] / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main()
