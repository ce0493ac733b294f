"""Streaming calibration (edgeml.calibration.streaming) vs ONNX Runtime's own calibrators, side by side.

Every run is a fresh child process (peak RSS = the child's own VmHWM) that calibrates and writes the QDQ
model with ORT's ``quantize_static`` and the same options (QDQ, per-channel, uint8 activations, int8
weights) on the same pre-processed float model and the same samples; the only difference is the calibrator:

- ``edgeml``: ``edgeml.calibration.streaming.ort_calibration`` (two streaming passes, fixed-size state),
  ranges handed to ``quantize_static(calibration_cache_path=...)``;
- ``onnxruntime``: ``quantize_static(reader, calibrate_method=...)`` (keeps every activation of every sample).

Models: MobileNetV2 224 (keras.applications, weights=None, BN re-estimated; benchmarks/_models.py) for time and
memory at 100 and 500 samples (synthetic image-like samples generated one at a time, so the data itself
takes no memory); the trained digits CNN (edgeml.demo.train_cnn) and doc_orientation.onnx (PP-LCNet, from
the zoo cache) for fidelity: cosine/argmax agreement vs float on held-out samples (not used to calibrate).

    python benchmarks/calibration_stream.py [--no-500] [--ort-500]   (--ort-500: ORT's calibrators at 500 too;
    entropy/percentile there need ~5x their 100-sample peak, ~30 GB)
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
import _models  # noqa: E402

WORK = _models.WORK / "calibration_stream"
METHODS = ("minmax", "entropy", "percentile")

CHILD = r"""
import json, os, sys, time, tempfile
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
import numpy as np
tool, method, src, data, n, out = sys.argv[1:7]
n = int(n)
import onnx
name = onnx.load(src, load_external_data=False).graph.input[0].name
if data == "synthetic":
    import _models
    def sample(i):
        return _models.images(1, seed=10_000 + i).astype(np.float32)
else:
    arr = np.load(data)["x"][:n]
    def sample(i):
        return arr[i:i + 1]

class Reader:
    def __init__(self): self.i = 0
    def get_next(self):
        if self.i >= n: return None
        self.i += 1
        return {{name: sample(self.i - 1)}}
    def rewind(self): self.i = 0
    def __len__(self): return n

from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
m = {{"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
     "percentile": CalibrationMethod.Percentile}}[method]
opts = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=m)
t = time.perf_counter()
info = {{}}
import contextlib, io
with tempfile.TemporaryDirectory() as d:
    if tool == "edgeml":
        from edgeml.calibration.streaming import ort_calibration
        reader, kw, info = ort_calibration(src, Reader(), method=method, work_dir=d)
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(src, out, reader, **opts, **kw)
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(src, out, Reader(), **opts)
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({{"seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(hwm[0] / 1024, 1),
                  "state_bytes": info.get("state_bytes"), "max_activation_bytes": info.get("max_activation_bytes")}}))
"""


def child(tool: str, method: str, src: Path, data: str, n: int, out: Path) -> dict:
    code = CHILD.format(root=str(HERE.parent), here=str(HERE))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code, tool, method, str(src), data, str(n), str(out)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def preprocess(src: Path, dst: Path) -> Path:
    if not dst.exists():
        from onnxruntime.quantization.shape_inference import quant_pre_process

        try:
            quant_pre_process(str(src), str(dst))
        except ImportError:  # no sympy: the same fallback as edgeml.quantize.onnx
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst


def fidelity(float_path: Path, quant_path: Path, held_out: np.ndarray) -> dict:
    from edgeml.convert.verify import compare
    from edgeml.runtimes.session import open_session

    ref, test = open_session(float_path), open_session(quant_path)
    name = ref.inputs[0].name
    v = compare(ref, test, [{name: held_out[i:i + 1]} for i in range(len(held_out))], atol=np.inf, data="held-out")
    return {"cosine": round(v.cosine, 5), "argmax_agreement": v.argmax_agreement}


def mobilenet() -> Path:
    onnx_path = WORK / "mobilenet_v2_fp32.onnx"
    if not onnx_path.exists():
        from edgeml.convert import convert

        convert(_models.mobilenet_v2(), to="onnx", out=onnx_path, force=True)
    return preprocess(onnx_path, WORK / "mobilenet_v2_pre.onnx")


def digits() -> tuple[Path, Path, Path]:
    onnx_path = WORK / "digits_fp32.onnx"
    if not onnx_path.exists():
        from edgeml.convert import convert

        keras_path, _ = _models.digits_cnn()
        convert(keras_path, to="onnx", out=onnx_path, force=True)
    pre = preprocess(onnx_path, WORK / "digits_pre.onnx")
    from edgeml.calibration import load_dataset

    cal, held = WORK / "digits_calib.npz", WORK / "digits_heldout.npz"
    if not cal.exists():
        x, _ = load_dataset("builtin:digits?split=train&samples=100&sampling=random&seed=0").arrays()
        np.savez(cal, x=next(iter(x.values())).reshape(-1, 8, 8, 1).astype(np.float32))
        x, _ = load_dataset("builtin:digits?split=test&samples=300&sampling=random&seed=0").arrays()
        np.savez(held, x=next(iter(x.values())).reshape(-1, 8, 8, 1).astype(np.float32))
    return pre, cal, held


def doc_orientation() -> tuple[Path, Path, Path] | None:
    src = Path("/work/zoo-cache/doc_orientation.onnx")
    pages = Path("/root/.cache/edgeml-zoo/data/pages_labelled")
    if not src.exists() or not pages.exists():
        return None
    pre = preprocess(src, WORK / "doc_orientation_pre.onnx")
    cal, held = WORK / "doc_calib.npz", WORK / "doc_heldout.npz"
    if not cal.exists():
        from edgeml.calibration import load_dataset

        x, _ = load_dataset(f"{pages}?size=224x224&layout=nchw&norm=imagenet").arrays()
        x = next(iter(x.values())).astype(np.float32)
        order = np.random.default_rng(0).permutation(len(x))
        half = len(x) // 2
        np.savez(cal, x=x[order[:half]])
        np.savez(held, x=x[order[half:]])
    return pre, cal, held


def run_pair(tag: str, src: Path, data: str, n: int, ort_methods=METHODS, held=None, float_path=None):
    rows = {}
    for method in METHODS:
        for tool in ("edgeml", "onnxruntime") if method in ort_methods else ("edgeml",):
            out = WORK / f"{tag}_{method}_{tool}_{n}.onnx"
            r = child(tool, method, src, data, n, out)
            if held is not None and "error" not in r:
                r.update(fidelity(float_path or src, out, held))
            rows[f"{method}/{tool}"] = r
            print(f"  {tag} n={n} {method}/{tool}: {r}", file=sys.stderr, flush=True)
    return rows


def main() -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    res: dict = {"host": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}}
    t0 = time.perf_counter()
    pre, cal, held = digits()
    res["digits_cnn_100"] = run_pair("digits", pre, str(cal), 100, held=np.load(held)["x"])
    doc = doc_orientation()
    if doc is not None:
        pre, cal, held = doc
        res["doc_orientation"] = run_pair("doc", pre, str(cal), len(np.load(cal)["x"]), held=np.load(held)["x"])
    mnv2 = mobilenet()
    res["mobilenet_v2_100"] = run_pair("mnv2", mnv2, "synthetic", 100)
    if "--no-500" not in sys.argv:  # ORT's entropy/percentile at 500 samples would need ~5x its 100-sample peak
        ort = METHODS if "--ort-500" in sys.argv else ()
        res["mobilenet_v2_500"] = run_pair("mnv2", mnv2, "synthetic", 500, ort_methods=ort)
    res["host"]["loadavg_end"] = os.getloadavg()
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
