"""Section 3 of the benchmark suite: pruning.

The digits CNN (edgeml.demo.build_cnn, trained 15 epochs on builtin digits) pruned at 50 %:
  - edgeml magnitude (layer scope, polynomial schedule, fine-tuned),
  - edgeml channel (L1, fine-tuned),
  - TFMOT prune_low_magnitude under tf_keras (same start weights, same schedule shape and epochs; run in its
    own process with TF_USE_LEGACY_KERAS=1),
each converted to fp32 TFLite and compared on: top-1 on the 360 test digits, MACs, TFLite latency at 1 thread
(all models interleaved, medians), TFLite size and gzip size.
Plus channel pruning of keras.applications MobileNetV2 (224, weights=None, one-shot): still valid, MACs and
latency against its parent.

Run: .venv/bin/python benchmarks/prune_models.py [--quick]     (needs the `bench` extra: tf-keras, TFMOT)
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _models  # noqa: E402

TRAIN = "builtin:digits?split=train"
TEST = "builtin:digits?split=test"


def _gzip(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def _tflite(keras_path: Path, out: Path) -> Path:
    from edgeml.convert import convert

    convert(keras_path, to="tflite", out=out, force=True)
    return out


def tfmot(keras_path: Path, work: Path, sparsity: float, epochs: int) -> dict:
    """Prune with TFMOT in a separate tf_keras process; returns its TFLite path and wall time, or why not."""
    import keras

    from edgeml.calibration import load_dataset

    model = keras.saving.load_model(keras_path)
    np.savez(work / "weights.npz", **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    feeds, labels = load_dataset(TRAIN).arrays()
    np.savez(work / "train.npz", image=next(iter(feeds.values())).reshape(-1, 8, 8, 1).astype(np.float32),
             labels=np.asarray(labels))
    out = work / "tfmot.tflite"
    proc = subprocess.run([sys.executable, str(HERE / "_tfmot_prune.py"), str(work / "weights.npz"),
                           str(work / "train.npz"), str(sparsity), str(epochs), str(out)],
                          capture_output=True, text=True, env=dict(os.environ, TF_USE_LEGACY_KERAS="1"))
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return {"path": out, **json.loads(proc.stdout.strip().splitlines()[-1])}


def digits_section(quick: bool) -> dict:
    from edgeml.bench.accuracy import top1 as accuracy
    from edgeml.prune import prune
    from edgeml.runtimes.litert import LiteRTSession

    epochs = 4 if quick else 10
    work = _models.WORK / "prune"
    work.mkdir(parents=True, exist_ok=True)
    base, cost = _models.digits_cnn()
    rows: dict[str, dict] = {"fp32": {"train_wall_s": cost["wall_s"], "epochs_run": cost["epochs"]}}
    tfl = {"fp32": _tflite(base, work / "fp32.tflite")}
    for name, kw in (("edgeml magnitude", {"method": "magnitude"}),
                     ("edgeml channel", {"method": "channel", "lr": 3e-3})):
        r = prune(base, out=work / f"{name.split()[1]}.keras", sparsity=0.5, train=TRAIN, val=TEST, epochs=epochs,
                  force=True, **kw)
        tfl[name] = _tflite(Path(r.output), work / f"{name.split()[1]}.tflite")
        rows[name] = {"macs": r.after["macs"], "nonzero_params": r.after["nonzero_params"],
                      "train_wall_s": r.training["wall_s"], "epochs_run": r.training["epochs"]}
        rows["fp32"].update(macs=r.before["macs"], nonzero_params=r.before["nonzero_params"])
    t = tfmot(base, work, 0.5, epochs)
    if "path" in t:
        tfl["tfmot magnitude"] = t["path"]
        rows["tfmot magnitude"] = {"macs": rows["fp32"]["macs"], "train_wall_s": round(t["wall_s"], 2),
                                   "epochs_run": epochs, "versions": {"tfmot": t["tfmot"], "tf_keras": t["tf_keras"]}}
    else:
        rows["tfmot magnitude"] = {"error": t["error"]}
    x = np.random.default_rng(0).uniform(0, 1, (1, 8, 8, 1)).astype(np.float32)
    fns, keep = {}, []
    for name, path in tfl.items():
        s = LiteRTSession(path, threads=1)
        s.set_inputs({s.inputs[0].name: x})
        fns[name] = s.interpreter.invoke
        keep.append(s)
    lat = _models.median_latency_ms(fns, runs=2000 if quick else 20000, warmup=200)
    for name, path in tfl.items():
        rows[name].update({"accuracy": accuracy(path, TEST), "tflite_bytes": path.stat().st_size,
                           "tflite_gzip_bytes": _gzip(path), "latency_ms_1thread": lat[name]})
    fp = rows["fp32"]
    for row in rows.values():
        if "accuracy" in row:
            row["accuracy_drop_pt"] = (fp["accuracy"] - row["accuracy"]) * 100
            row["macs_reduction_pct"] = (1 - row["macs"] / fp["macs"]) * 100
            row["latency_reduction_pct"] = (1 - row["latency_ms_1thread"] / fp["latency_ms_1thread"]) * 100
            row["gzip_reduction_pct"] = (1 - row["tflite_gzip_bytes"] / fp["tflite_gzip_bytes"]) * 100
    return {"epochs": epochs, "sparsity": 0.5, "models": rows}


def mobilenet_section(quick: bool) -> dict:
    from edgeml.prune import prune
    from edgeml.runtimes.litert import LiteRTSession

    work = _models.WORK / "prune"
    base = _models.mobilenet_v2()
    r = prune(base, out=work / "mnv2_channel.keras", sparsity=0.5, method="channel", force=True)
    paths = {"fp32": _models.WORK / "mobilenet_v2" / "fp32.tflite",
             "channel 50%": _tflite(Path(r.output), work / "mnv2_channel.tflite")}
    if not paths["fp32"].exists():
        paths["fp32"].parent.mkdir(parents=True, exist_ok=True)
        _tflite(base, paths["fp32"])
    x = _models.images(1)
    fns, keep, shapes = {}, [], {}
    for name, p in paths.items():
        s = LiteRTSession(p, threads=1)
        s.set_inputs({s.inputs[0].name: x})
        fns[name] = s.interpreter.invoke
        shapes[name] = list(s.run({s.inputs[0].name: x}).values())[0].shape
        keep.append(s)
    lat = _models.median_latency_ms(fns, runs=20 if quick else 60)
    return {"macs_before": r.before["macs"], "macs_after": r.after["macs"], "params_before": r.before["params"],
            "params_after": r.after["params"], "coupled_groups": sum(1 for e in r.layers if e["coupled_with"]),
            "skipped": r.skipped, "output_shapes": {k: list(v) for k, v in shapes.items()},
            "latency_ms_1thread": lat, "prune_s": r.seconds}


def main(quick: bool = False) -> dict:
    res = {"digits_cnn": digits_section(quick)}
    print(json.dumps(res["digits_cnn"], indent=1, default=str), file=sys.stderr)
    res["mobilenet_v2_channel"] = mobilenet_section(quick)
    return res


if __name__ == "__main__":
    print(json.dumps(main("--quick" in sys.argv), indent=2, default=str))
