"""edgeml search (issue 23): trials to find the Pareto front, local Ray vs a sequential loop on the same
cores (overhead), memory, and resuming from the cache.

Each search runs as its own `edgeml search ... --json` process (the command printed is the one measured);
a sampler adds up the RSS of that process and every process under it (Ray's raylet, GCS and workers) every
0.2 s, so "peak tree RSS" is the memory the whole search held at its worst moment.

    python benchmarks/search.py                        # digits CNN (trained here, seeded) + doc_orientation.onnx
    python benchmarks/search.py --only digits --cpus 2 --json-out /tmp/search-bench.json

"Trials to find the front": the trials a search built (in the order they finished) until every member of
the final front had been built; and, from the same measured trials, the median over 200 random orders
(what a random-search of the space needs to see the whole front).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = Path(os.environ.get("EDGEML_ZOO_DIR", "/work/zoo-cache"))
ZOO_DATA = Path(os.environ.get("EDGEML_ZOO_CACHE", Path.home() / ".cache" / "edgeml-zoo")) / "data"

DIGITS_SPACE = """
[prune]
methods = ["none", "magnitude", "channel"]
sparsity = [0.25, 0.5]
[quantize]
modes = ["fp32", "int8", "float16"]
[format]
formats = ["tflite"]
"""

ZOO_SPACE = """
[prune]
methods = ["none", "magnitude"]
sparsity = [0.3, 0.6]
[quantize]
modes = ["fp32", "int8"]
per_channel = [true, false]
[format]
formats = ["onnx"]
"""


def tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(cmd: list[str]) -> dict:
    """Run one search; returns its search.json, wall time and the peak RSS of its process tree."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    load0 = round(os.getloadavg()[0], 1)  # other users of the machine: the wall times are contended when high
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    m = json.loads(out)
    return {"cmd": " ".join(cmd), "wall_s": round(wall, 1), "peak_tree_rss_mib": round(peak[0] / 2 ** 20),
            "load_avg_1min_before_after": [load0, round(os.getloadavg()[0], 1)],
            "manifest": m, "stderr_tail": err[-1500:]}


def trials_to_front(m: dict, order: list[str], rounds: int = 200, seed: int = 0) -> dict:
    from edgeml.search.pareto import first_complete

    out = {}
    names = [n for n in m["plan"]["trials"] if n not in m["failed"]]
    rng = random.Random(seed)
    for target, fr in m["fronts"].items():
        members = {p["name"] for p in fr}
        as_run = first_complete(order, members)
        rand = []
        for _ in range(rounds):
            perm = names[:]
            rng.shuffle(perm)
            rand.append(first_complete(perm, members))
        out[target] = {"front": sorted(members), "front_size": len(members), "space": len(names),
                       "as_run": as_run, "random_median": statistics.median(r for r in rand if r)}
    return out


def case(name: str, model: Path, calib: str, eval_spec: str, space: str, targets: list[str], cpus: int,
         budgets: list[str], work: Path, runs: int) -> dict:
    space_file = work / f"{name}-space.toml"
    space_file.write_text(space)
    base = [sys.executable, "-m", "edgeml", "-q", "search", str(model), "--calib", calib, "--eval", eval_spec,
            "--space", str(space_file), "--runs", str(runs), "--json", *budgets]
    for t in targets:
        base += ["--target", t]
    res: dict = {"model": str(model), "targets": targets, "space": space}
    for mode in ("sequential", "ray"):
        out = work / f"{name}-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--executor", "sequential"] if mode == "sequential" else ["--executor", "ray", "--num-cpus", str(cpus)]
        r = run(base + ["-o", str(out)] + extra)
        m = r.pop("manifest")
        r.update(seconds=m["seconds"], counts=m["counts"], fronts=m["fronts"], best=m["best"],
                 failed=m["failed"], executor=m["executor"]["describe"],
                 trials_to_front=trials_to_front(m, m["build_order"]))
        res[mode] = r
        print(f"{name} {mode}: {r['wall_s']} s wall, build {m['seconds']['build']} s, peak tree RSS "
              f"{r['peak_tree_rss_mib']} MiB, {m['counts']}", flush=True)
    r = run(base + ["-o", str(work / f"{name}-ray")] + ["--executor", "ray", "--num-cpus", str(cpus)])
    m = r.pop("manifest")
    res["resume"] = {"wall_s": r["wall_s"], "counts": m["counts"], "same_fronts": m["fronts"] == res["ray"]["fronts"]}
    print(f"{name} resume: {r['wall_s']} s wall, {m['counts']}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["digits", "zoo"])
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--work", default="/tmp/edgeml-search-bench")
    ap.add_argument("--json-out")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {"cpus": a.cpus, "nproc": os.cpu_count()}
    if a.only in (None, "digits"):
        model = work / "digits.keras"
        if not model.exists():  # the demo's CNN, trained as `edgeml demo` does (15 epochs, seed 0)
            sys.path.insert(0, str(ROOT))
            from edgeml.demo import train_cnn

            m, _ = train_cnn(epochs=15, seed=0)
            m.save(model)
        results["digits"] = case("digits", model, "builtin:digits?split=train", "builtin:digits?split=test",
                                 DIGITS_SPACE, ["host", "rpi4", "coral-usb"], a.cpus,
                                 ["--train", "builtin:digits?split=train", "--epochs", "2", "--min-accuracy", "0.9",
                                  "--max-size", "64KiB"], work, a.runs)
    if a.only in (None, "zoo"):
        spec = f"{ZOO_DATA}/pages_labelled?size=224x224&layout=nchw&norm=imagenet"
        results["zoo"] = case("doc_orientation", ZOO / "doc_orientation.onnx", spec, spec, ZOO_SPACE,
                              ["host", "rpi4"], a.cpus, ["--min-accuracy", "0.5"], work, a.runs)
    text = json.dumps(results, indent=1)
    if a.json_out:
        Path(a.json_out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
