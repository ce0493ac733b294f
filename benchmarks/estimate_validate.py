"""Section 5: fit and validate the latency estimate against published numbers (../shared/reference/targets.md).

For every published point whose model keras.applications can build (weights=None), compute the graph
features, fit the target's three coefficients, and report in-sample and leave-one-out errors (the honest
one: each point predicted by coefficients fitted without it). `--write` stores the fitted coefficients in
edgeml/targets/profiles/*.toml. Run: .venv/bin/python benchmarks/estimate_validate.py [--write]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgeml.targets import load_profile  # noqa: E402
from edgeml.targets import estimate as est  # noqa: E402

# (keras.applications name, input size) -> label
MODELS = {"mnv1": ("MobileNet", 224), "mnv2": ("MobileNetV2", 224), "mnv3l": ("MobileNetV3Large", 224),
          "mnv3s": ("MobileNetV3Small", 224), "effb0": ("EfficientNetB0", 224), "r50": ("ResNet50", 224),
          "r50_299": ("ResNet50", 299), "r50v2_299": ("ResNet50V2", 299), "r101": ("ResNet101", 224),
          "r152": ("ResNet152", 224), "r152v2_299": ("ResNet152V2", 299), "d121": ("DenseNet121", 224),
          "vgg16": ("VGG16", 224), "vgg19": ("VGG19", 224), "irv2_299": ("InceptionResNetV2", 299)}

# target -> precision -> [(model, threads, ms, source)]; every number from ../shared/reference/targets.md
POINTS = {
    "rpi4": {
        "fp32": [("mnv1", 4, 77, "XNNPACK ARM64 (3.4)"), ("mnv2", 4, 46, "XNNPACK ARM64"), ("mnv3l", 4, 40, "XNNPACK"),
                 ("mnv3s", 4, 15, "XNNPACK"), ("r50", 4, 262.8, "ncnn 4 thr"), ("effb0", 4, 74.2, "ncnn 4 thr"),
                 ("mnv1", 1, 124.3, "ncnn 1 thr"), ("mnv2", 1, 93.5, "ncnn 1 thr"), ("r50", 1, 534.1, "ncnn 1 thr"),
                 ("effb0", 1, 129.7, "ncnn 1 thr")],
        "int8": [("mnv1", 4, 24, "XNNPACK int8 ARM64"), ("mnv2", 4, 17, "XNNPACK int8 ARM64"),
                 ("r50", 4, 196.7, "ncnn int8 4 thr"), ("r50", 1, 424.0, "ncnn int8 1 thr"),
                 ("mnv1", 4, 34.4, "ncnn int8 4 thr"), ("mnv1", 1, 84.8, "ncnn int8 1 thr")]},
    "rpi5": {
        "fp32": [("mnv1", 1, 20.3, "ncnn (3.5)"), ("mnv2", 4, 10.5, "ncnn"), ("mnv2", 1, 16.4, "ncnn"),
                 ("mnv3l", 4, 7.35, "ncnn"), ("mnv3l", 1, 11.8, "ncnn"), ("effb0", 4, 12.3, "ncnn"),
                 ("effb0", 1, 24.2, "ncnn"), ("r50", 4, 46.2, "ncnn"), ("r50", 1, 89.4, "ncnn")],
        "int8": [("mnv1", 4, 8.74, "ncnn int8"), ("mnv1", 1, 14.4, "ncnn int8"), ("r50", 4, 40.8, "ncnn int8"),
                 ("r50", 1, 80.2, "ncnn int8")]},
    "coral-usb": {
        "int8": [("mnv1", None, 2.4, "Coral table (3.3)"), ("mnv2", None, 2.6, "Coral"), ("r50_299", None, 49, "Coral"),
                 ("r50v2_299", None, 50, "Coral"), ("r152v2_299", None, 128, "Coral"), ("d121", None, 20, "Coral"),
                 ("vgg16", None, 296, "Coral"), ("vgg19", None, 308, "Coral"), ("irv2_299", None, 57, "Coral")]},
    "coral-devboard": {
        "int8": [("mnv1", None, 2.4, "Coral table (3.3)"), ("mnv2", None, 2.6, "Coral"), ("r50_299", None, 56, "Coral"),
                 ("r50v2_299", None, 59, "Coral"), ("r152v2_299", None, 151, "Coral"), ("d121", None, 25, "Coral"),
                 ("vgg16", None, 343, "Coral"), ("vgg19", None, 357, "Coral"), ("irv2_299", None, 69, "Coral")]},
    "jetson-nano": {
        "fp16": [("r50", None, 29.8, "torch2trt fp16 (3.6)"), ("r101", None, 51.1, "torch2trt"),
                 ("r152", None, 72.3, "torch2trt"), ("d121", None, 24.8, "torch2trt"), ("vgg16", None, 85.1, "torch2trt")]},
    "jetson-orin-nano": {
        "fp16": [("mnv1", None, 3.66, "ncnn Vulkan (3.7)"), ("mnv2", None, 6.91, "ncnn Vulkan"),
                 ("mnv3l", None, 8.71, "ncnn Vulkan"), ("effb0", None, 12.3, "ncnn Vulkan"),
                 ("r50", None, 9.31, "ncnn Vulkan")]},
}


def model_features(cache: Path) -> dict:
    data = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [k for k in MODELS if k not in data]
    if missing:
        import keras

        from edgeml.formats.keras import describe

        for k in missing:
            name, size = MODELS[k]
            print(f"  building {name} {size}", file=sys.stderr)
            m = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
            (HERE / "_work" / "empty").touch()
            info = describe(m, HERE / "_work" / "empty", "keras")
            f = est.features(info)
            data[k] = {"dense_macs": f.dense_macs, "dw_macs": f.dw_macs, "params": f.params,
                       "layers": [[la.name, la.op, la.macs] for la in info.layers]}
            keras.backend.clear_session()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(data))
    return data


def info_of(d: dict, fmt: str) -> SimpleNamespace:
    layers = [SimpleNamespace(name=n, op=op, macs=m) for n, op, m in d["layers"]]
    return SimpleNamespace(layers=layers, params=d["params"], format=fmt, weight_dtypes={}, path="")


def main(write: bool = False) -> dict:
    feats = model_features(HERE / "_work" / "estimate_features.json")
    out = {}
    for target, by_prec in POINTS.items():
        profile = load_profile(target)
        for precision, pts in by_prec.items():
            points = [(f"{m}@{t or '-'}", info_of(feats[m], "keras"), ms, t) for m, t, ms, _ in pts]
            full = est.fit(points, profile, precision)
            loo = []
            for i in range(len(points)):
                sub = est.fit(points[:i] + points[i + 1:], profile, precision)
                row, extra = est.design_row(est.features(points[i][1]), profile, precision, points[i][3])
                pred = float(np.dot(sub.coef, row) + extra)
                loo.append(pred / points[i][2] - 1)
            out[f"{target}/{precision}"] = {
                "points": len(points), "coef": full.coef, "median_abs_error_in_sample": full.median_abs_error,
                "median_abs_error_leave_one_out": float(np.median(np.abs(loo))),
                "rows": [{"model": e["model"], "published_ms": e["measured_ms"], "estimated_ms": e["estimated_ms"],
                          "error": e["error"], "loo_error": le, "source": p[3]}
                         for e, le, p in zip(full.errors, loo, pts)]}
            print(f"{target:17s} {precision}: {len(points)} points, coef {full.coef}, median |error| "
                  f"{100 * full.median_abs_error:.1f}% in-sample, {100 * np.median(np.abs(loo)):.1f}% "
                  f"leave-one-out", file=sys.stderr)
            if write:
                path = Path(est.__file__).parent / "profiles" / f"{target}.toml"
                text = est.profile_with_fit(profile, full)
                text = text.replace(f"fitted to {len(points)} measured edgeml bench results",
                                    f"fitted to {len(points)} published points (benchmarks/estimate_validate.py)")
                path.write_text(text)
                profile = load_profile(target)
    return out


if __name__ == "__main__":
    print(json.dumps(main("--write" in sys.argv), indent=2))
