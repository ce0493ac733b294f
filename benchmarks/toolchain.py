"""Section 6 of the benchmark suite: the toolchain itself.

`edgeml --help` start-up (7 fresh processes, median), `edgeml demo` end to end (one fresh process: train,
prune + fine-tune, convert, quantize, bench, estimate, report, check) and the per-stage times its run
manifest recorded.
Run: .venv/bin/python benchmarks/toolchain.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from startup_inspect import EDGEML, timed  # noqa: E402


def main() -> dict:
    res = {"edgeml --help": timed(EDGEML + ["--help"])}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "demo"
        t = time.perf_counter()
        subprocess.run(EDGEML + ["-q", "demo", "-o", str(out)], check=True, capture_output=True)
        res["edgeml demo"] = {"wall_s": round(time.perf_counter() - t, 1)}
        manifest = json.loads((out / "run.json").read_text())
        summary = json.loads((out / "summary.json").read_text())
        res["demo_stages_s"] = {"train": summary["training"]["wall_s"],
                                **{k: v["seconds"] for k, v in manifest["stages"].items() if "seconds" in v}}
    return res


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
