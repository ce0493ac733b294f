"""Fleet (issue 23): N models x 2 loopback boards in parallel vs one after the other; identical results; the
fault drill (a board that reboots mid-run, one that hangs past --timeout, one that is unreachable; re-run).

Boards are real OpenSSH servers on 127.0.0.1 (tests/sshd.py), so everything but the network and the boards'
own CPUs is real: ssh, ControlMaster, copy, the runner, cleanup. Both "boards" share this machine's cores,
so the parallel gain measured here is the overlap of connection/copy/start-up, not of compute.

Run: .venv/bin/python benchmarks/fleet.py [--models M ...] [--runs 20] [--json OUT]
(default models: the seeded digits CNN as fp32 and int8 .tflite plus .onnx, built into benchmarks/_work/fleet)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # sshd.LoopbackBoard
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = "builtin:digits?split=test&samples=120"


def digits_models(work: Path) -> list[Path]:
    out = [work / "digits_fp32.tflite", work / "digits_int8.tflite", work / "digits.onnx"]
    if not all(p.exists() for p in out):
        from edgeml.convert import convert
        from edgeml.demo import train_cnn
        from edgeml.quantize import quantize

        work.mkdir(parents=True, exist_ok=True)
        model, _ = train_cnn(epochs=4, seed=0)
        model.save(work / "digits.keras")
        convert(work / "digits.keras", to="tflite", out=out[0], verify=0)
        quantize(work / "digits.keras", calib="builtin:digits?split=train", out=out[1], calib_samples=100,
                 debug_samples=1)
        convert(work / "digits.keras", to="onnx", out=out[2], verify=0)
    return out


def inventory(path: Path, boards: list[tuple[str, str, Path, str]], **extra: str) -> Path:
    text = ""
    for name, host, config, python in boards:
        text += (f'[[board]]\nname = "{name}"\nhost = "{host}"\ntarget = "host"\nssh_config = "{config}"\n'
                 f'python = "{python}"\nconnect_timeout = 5\n\n')
    path.write_text(text)
    return path


def count_connections(board) -> callable:
    """Restart the loopback sshd logging at INFO; returns a function giving the connections accepted so far."""
    import subprocess

    from sshd import sshd_binary

    board.stop()
    cfg = board.root / "sshd_config"
    cfg.write_text(cfg.read_text().replace("LogLevel ERROR", "LogLevel INFO"))
    log = board.root / "sshd-info.log"
    board.proc = subprocess.Popen([sshd_binary(), "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                  stderr=open(log, "w"))
    time.sleep(0.5)
    return lambda: log.read_text().count("Accepted publickey")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--pi-python", type=Path, default=Path.home() / ".cache" / "edgeml-pi-board" / "python",
                    help="the emulated Pi's Python (make board-test builds it); skipped when missing")
    ap.add_argument("--pi-models", nargs="*", type=Path, default=[],
                    help="also run each of these alone on the emulated Pi (2 runs): does the aarch64 stack load it?")
    args = ap.parse_args()
    import sshd

    from edgeml.bench.harness import bench
    from edgeml.fleet import bench_fleet, load_inventory

    models = args.models or digits_models(HERE / "_work" / "fleet")
    tmp = Path(tempfile.mkdtemp(prefix="edgeml-fleet-bench-"))
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    a, b = sshd.LoopbackBoard(tmp / "a"), sshd.LoopbackBoard(tmp / "b")
    res: dict = {"models": [str(m) for m in models], "runs": args.runs, "boards": 2}
    try:
        conns = count_connections(a)
        data = {m: (DATA if "digits" in m.name else None) for m in models}
        inv = load_inventory(inventory(tmp / "fleet.toml", [("a", a.host, a.config, a.python),
                                                           ("b", b.host, b.config, b.python)]))
        # 1. sequential: the same jobs (one model on one board each), one after the other
        t = time.monotonic()
        single: dict[str, dict] = {}
        for board in inv.boards:
            for m in models:
                r = bench([m], host=board.ssh_target(), runs=args.runs, data=data[m], threads=1).to_dict()
                single[f"{board.name}/{m.name}"] = r["models"][0]
        res["sequential_s"] = round(time.monotonic() - t, 2)
        res["ssh_connections_board_a"] = {"sequential": conns()}
        # 2. the fleet, in parallel (models with and without data are separate fleet calls, like the CLI)
        t = time.monotonic()
        records: dict[str, dict] = {}
        for spec in dict.fromkeys(data.values()):
            group = [m for m in models if data[m] == spec]
            r = bench_fleet(group, inv, runs=args.runs, data=spec, threads=1, out_dir=tmp / f"out-{bool(spec)}")
            assert r.complete, r.failures
            for rec in r.records:
                for m in rec["models"]:
                    records[f"{rec['board']}/{m['name']}"] = m
        res["fleet_s"] = round(time.monotonic() - t, 2)
        res["ssh_connections_board_a"]["fleet"] = conns() - res["ssh_connections_board_a"]["sequential"]
        res["speedup"] = round(res["sequential_s"] / res["fleet_s"], 2)
        same = all(records[k].get("accuracy") == single[k].get("accuracy") and
                   records[k]["runtime"] == single[k]["runtime"] and
                   records[k]["latency_ms"]["n"] == single[k]["latency_ms"]["n"] for k in single)
        res["identical_accuracy_runtime_n"] = same
        res["accuracy"] = {k: (v.get("accuracy") or {}).get("top1") for k, v in records.items()}
        res["p50_ms"] = {k: round(v["latency_ms"]["p50"], 4) for k, v in records.items()}
        res["p50_ms_sequential"] = {k: round(v["latency_ms"]["p50"], 4) for k, v in single.items()}
        # 3. the fault drill: b "reboots" on its 2nd job (its sshd listener and the session are killed; sshd is
        # back 8 s later), c hangs on its 1st job past --timeout, gone is unreachable; then the re-run
        import subprocess
        import threading

        from test_fleet import REBOOT

        rebooting = tmp / "rebooting"
        rebooting.write_text(REBOOT.format(count=tmp / "b.count", nth=2, python=sys.executable).replace(
            'kill -9 "$p"', f'kill -9 {b.proc.pid} "$p"'))

        def power_back() -> None:  # the board boots again: its sshd comes back 8 s after it went down
            b.proc.wait()
            time.sleep(8)
            b.proc = subprocess.Popen([sshd.sshd_binary(), "-D", "-e", "-f", str(b.root / "sshd_config")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        threading.Thread(target=power_back, daemon=True).start()
        hanging = tmp / "hanging"
        hanging.write_text(REBOOT.format(count=tmp / "c.count", nth=1, python=sys.executable).replace(
            'kill -9 "$p"; sleep 5; exit 1', 'sleep 600'))
        for s in (rebooting, hanging):
            s.chmod(0o755)
        closed = f"127.0.0.1:{sshd.free_port()}"
        fi = inventory(tmp / "faults.toml", [("a", a.host, a.config, a.python),
                                             ("b", b.host, b.config, str(rebooting)),
                                             ("c", a.host, a.config, str(hanging)),
                                             ("gone", closed, a.config, "python3")])
        t = time.monotonic()
        lines: list[str] = []
        r = bench_fleet(models, load_inventory(fi), runs=args.runs, threads=1, out_dir=tmp / "drill", timeout=20,
                        retry_delay=2, progress=lines.append)
        res["drill"] = {"wall_s": round(time.monotonic() - t, 2), "boards": {x["name"]: x["status"] for x in r.boards},
                        "failures": sorted({(f.board, f.kind, f.attempts) for f in r.failures}),
                        "retries": [x for x in lines if "retrying" in x], "jobs": r.jobs}
        inventory(fi, [("a", a.host, a.config, a.python), ("b", b.host, b.config, str(rebooting)),
                       ("c", a.host, a.config, str(hanging)), ("gone", b.host, b.config, b.python)])
        t = time.monotonic()
        r = bench_fleet(models, load_inventory(fi), runs=args.runs, threads=1, out_dir=tmp / "drill", timeout=20,
                        retry_delay=2)
        res["resume"] = {"wall_s": round(time.monotonic() - t, 2), "jobs": r.jobs, "complete": r.complete}
        # 4. the emulated Pi next to an x86 board: the .tflite models with data, same runner, labelled emulated
        tfl = [m for m in models if m.suffix == ".tflite" and data[m]]
        if args.pi_python.is_file() and tfl:
            pi = inventory(tmp / "pi.toml", [("x86", a.host, a.config, a.python),
                                             ("pi-emu", b.host, b.config, str(args.pi_python))])
            text = pi.read_text().replace('name = "pi-emu"\nhost', 'name = "pi-emu"\nhost').split("\n\n")
            text[1] = text[1].replace('target = "host"', 'target = "rpi4"')
            pi.write_text("\n\n".join(text))
            t = time.monotonic()
            r = bench_fleet(tfl, load_inventory(pi), runs=args.runs, data=DATA, threads=1, out_dir=tmp / "pi")
            res["emulated_pi"] = {"wall_s": round(time.monotonic() - t, 2), "complete": r.complete, "boards": {
                rec["board"]: {"kind": rec["kind"], "arch": rec["environment"]["arch"],
                               "python": rec["environment"]["python"], "numpy": rec["environment"]["numpy"],
                               "litert": rec["environment"]["runtimes"].get("ai-edge-litert"),
                               "models": {m["name"]: {"p50_ms": round(m["latency_ms"]["p50"], 4),
                                                      "top1": (m.get("accuracy") or {}).get("top1")}
                                          for m in rec["models"]}} for rec in r.records}}
        if args.pi_python.is_file() and args.pi_models:
            one = inventory(tmp / "pi1.toml", [("pi-emu", b.host, b.config, str(args.pi_python))])
            one.write_text(one.read_text().replace('target = "host"', 'target = "rpi4"'))
            res["emulated_pi_models"] = {}
            for m in args.pi_models:
                r = bench_fleet([m], load_inventory(one), runs=2, warmup=1, timeout=600, retries=0,
                                out_dir=tmp / "pi1")
                res["emulated_pi_models"][m.name] = (
                    {"runs": True, "kind": r.records[0]["kind"],
                     "p50_ms_emulated": round(r.records[0]["models"][0]["latency_ms"]["p50"], 3)}
                    if r.records else {"runs": False, "error": r.failures[0].error})
    finally:
        a.stop()
        b.stop()
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
