"""Section 1-2 of the benchmark suite: quantization speed-up, size and fidelity, and calibration cost.

MobileNetV2 (224, weights=None, BN re-estimated) and the digits CNN:
  TFLite: fp32 vs edgeml int8 vs the TFLite converter's plain int8 recipe (DEFAULT + representative data,
          float fallback and float IO), at 1 and 2 threads, interleaved, medians.
  ONNX:   fp32 vs edgeml int8 (host recipe) vs ONNX Runtime quantize_static with its defaults.
Calibration cost: minmax / entropy / percentile with 100 samples on MobileNetV2, each in a fresh process
(peak RSS of that process): edgeml quantize() vs a bare ONNX Runtime quantize_static call.
Run: .venv/bin/python benchmarks/quantize_models.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _models  # noqa: E402


def plain_tflite_int8(keras_path: Path, calib: np.ndarray, out: Path) -> Path:
    """What a user gets from the TFLite docs' int8 recipe without edgeml."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(keras_path)
    with tempfile.TemporaryDirectory() as d:
        model.export(d, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(d)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in calib)
        out.write_bytes(conv.convert())
    return out


def ort_default_int8(float_onnx: Path, calib: dict[str, np.ndarray], out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{k: v[i:i + 1] for k, v in calib.items()} for i in range(len(next(iter(calib.values()))))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(float_onnx), str(out), Reader())
    return out


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path)).graph.input[0].name


def _tflite_runner(path: Path, threads: int, x: np.ndarray):
    from edgeml.runtimes.litert import LiteRTSession

    s = LiteRTSession(path, threads=threads)
    s.set_inputs({s.inputs[0].name: x})
    return s.interpreter.invoke, s


def _ort_runner(path: Path, threads: int, x: np.ndarray):
    from edgeml.runtimes.onnxruntime import OrtSession

    s = OrtSession(path, threads=threads)
    name = s.inputs[0].name
    sess = s.session
    return (lambda: sess.run(None, {name: x})), s


def fidelity(ref_path: Path, test_path: Path, feeds: list[dict]) -> dict:
    from edgeml.convert.verify import compare
    from edgeml.runtimes.session import open_session

    v = compare(open_session(ref_path), open_session(test_path), feeds, atol=float("inf"), data="synthetic")
    return {"cosine": round(v.cosine, 5), "argmax_agreement": v.argmax_agreement, "mse": v.mse}


def quantization_section(name: str, keras_path: Path, calib_path: Path, eval_spec: str | None, runs: int) -> dict:
    from edgeml.bench.accuracy import top1 as accuracy
    from edgeml.convert import convert
    from edgeml.quantize import quantize

    work = _models.WORK / name
    work.mkdir(parents=True, exist_ok=True)
    arr = np.load(calib_path, allow_pickle=False)
    key = arr.files[0]
    calib = arr[key]
    paths = {"tflite_fp32": work / "fp32.tflite", "tflite_edgeml_int8": work / "edgeml_int8.tflite",
             "tflite_plain_int8": work / "plain_int8.tflite", "onnx_fp32": work / "fp32.onnx",
             "onnx_edgeml_int8": work / "edgeml_int8.onnx", "onnx_ort_default_int8": work / "ort_default_int8.onnx"}
    t = {}
    s = time.perf_counter()
    convert(keras_path, to="tflite", out=paths["tflite_fp32"], force=True)
    convert(keras_path, to="onnx", out=paths["onnx_fp32"], force=True)
    t["convert_s"] = time.perf_counter() - s
    s = time.perf_counter()
    quantize(keras_path, calib=str(calib_path), out=paths["tflite_edgeml_int8"], force=True, calib_samples=100)
    t["edgeml_tflite_int8_s"] = time.perf_counter() - s
    plain_tflite_int8(keras_path, calib[:100], paths["tflite_plain_int8"])
    s = time.perf_counter()
    quantize(paths["onnx_fp32"], calib=str(calib_path), out=paths["onnx_edgeml_int8"], force=True,
                  calib_samples=100)
    t["edgeml_onnx_int8_s"] = time.perf_counter() - s
    ort_default_int8(paths["onnx_fp32"], {_input_name(paths["onnx_fp32"]): calib[:100]},
                     paths["onnx_ort_default_int8"])
    x = calib[:1]
    result: dict = {"model": name, "sizes": {k: p.stat().st_size for k, p in paths.items()}, "times": t,
                    "latency_ms": {}}
    for threads in (1, 2):
        fns, keep = {}, []
        for k, p in paths.items():
            fn, sess = (_tflite_runner if p.suffix == ".tflite" else _ort_runner)(p, threads, x)
            fns[k] = fn
            keep.append(sess)
        result["latency_ms"][f"{threads}_thread"] = _models.median_latency_ms(fns, runs=runs)
    feeds = [{"__": calib[i:i + 1]} for i in range(16)]
    result["fidelity_vs_fp32"] = {}
    for k, p in paths.items():
        if k.endswith("fp32"):
            continue
        ref = paths["tflite_fp32"] if p.suffix == ".tflite" else paths["onnx_fp32"]
        from edgeml.runtimes.session import open_session

        in_name = open_session(ref).inputs[0].name
        result["fidelity_vs_fp32"][k] = fidelity(ref, p, [{in_name: f["__"]} for f in feeds])
    if eval_spec:
        result["top1"] = {k: accuracy(p, eval_spec) for k, p in paths.items()}
    return result


CAL_SNIPPET = r"""
import json, resource, sys, time, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
import numpy as np
method, tool, src, calib, out = sys.argv[1:6]
t = time.perf_counter()
if tool == "edgeml":
    from edgeml.quantize import quantize
    quantize(src, calib=calib, out=out, method=method, calib_samples=100, force=True, debug_samples=1)
else:
    from onnxruntime.quantization import CalibrationMethod, quantize_static
    import quantize_models as qm
    import onnx
    arr = np.load(calib, allow_pickle=False)
    name = onnx.load(src).graph.input[0].name
    m = {{"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
         "percentile": CalibrationMethod.Percentile}}[method]
    from onnxruntime.quantization import CalibrationDataReader
    data = arr[arr.files[0]][:100]
    class R(CalibrationDataReader):
        def __init__(self): self.i = 0
        def get_next(self):
            if self.i >= len(data): return None
            self.i += 1; return {{name: data[self.i - 1:self.i]}}
    quantize_static(src, out, R(), calibrate_method=m)
# VmHWM is this process's own peak (ru_maxrss would include the parent's RSS inherited across fork+exec)
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak = hwm[0] / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": time.perf_counter() - t, "peak_rss_mib": peak}}))
"""


def calibration_section(float_onnx: Path, calib_path: Path) -> dict:
    code = CAL_SNIPPET.format(root=str(HERE.parent), here=str(HERE))
    out = {}
    for method in ("minmax", "entropy", "percentile"):
        for tool in ("edgeml", "onnxruntime"):
            with tempfile.TemporaryDirectory() as d:
                proc = subprocess.run([sys.executable, "-c", code, method, tool, str(float_onnx), str(calib_path),
                                       str(Path(d) / "q.onnx")], capture_output=True, text=True)
            if proc.returncode != 0:
                out[f"{method}/{tool}"] = {"error": proc.stderr.strip().splitlines()[-1:]}
                continue
            out[f"{method}/{tool}"] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"  calibration {method}/{tool}: {out[f'{method}/{tool}']}", file=sys.stderr)
    return out


def main(quick: bool = False) -> dict:
    runs = 20 if quick else 60
    mnv2 = _models.mobilenet_v2()
    calib = _models.calib_npz(100)
    res = {"mobilenet_v2": quantization_section("mobilenet_v2", mnv2, calib, None, runs)}
    print(json.dumps(res["mobilenet_v2"], indent=1), file=sys.stderr)
    digits, _ = _models.digits_cnn()
    dcal = _models.WORK / "digits_calib.npz"
    if not dcal.exists():
        from edgeml.calibration import load_dataset

        feeds, _ = load_dataset("builtin:digits?split=train&samples=100").arrays()
        np.savez(dcal, image=next(iter(feeds.values())).reshape(-1, 8, 8, 1).astype(np.float32))
    res["digits_cnn"] = quantization_section("digits_cnn", digits, dcal, "builtin:digits?split=test", runs * 5)
    print(json.dumps(res["digits_cnn"], indent=1), file=sys.stderr)
    res["calibration_mobilenet_v2"] = calibration_section(_models.WORK / "mobilenet_v2" / "fp32.onnx", calib)
    return res


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv), indent=2))
