"""Section 5: fit and validate the latency estimate against published numbers (docs/target-sources.md).

For every published point whose model keras.applications can build (weights=None), compute the graph
features, fit the target's coefficients and report leave-one-out errors (each point predicted by
coefficients fitted without it), for the previous model (a fitted constant term: "before") and the current
one (runtime floors from the profile's [overhead] + a fitted per-layer term: "after"); then tiny models next
to the floors they rest on. `--write` stores the fitted coefficients in edgeml/targets/profiles/*.toml;
`--floors` measures LiteRT's per-invoke/per-op overhead on this machine (the [overhead] basis).
`--plan` runs the Edge TPU plan on full-int8 keras.applications models against published mapping facts.
Run: .venv/bin/python benchmarks/estimate_validate.py [--write | --floors | --plan]
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

from edgeml.targets import estimate as est  # noqa: E402
from edgeml.targets import estimate_fit as est_fit  # noqa: E402
from edgeml.targets import load_profile  # noqa: E402

# (keras.applications name, input size) -> label
MODELS = {"mnv1": ("MobileNet", 224), "mnv2": ("MobileNetV2", 224), "mnv3l": ("MobileNetV3Large", 224),
          "mnv3s": ("MobileNetV3Small", 224), "effb0": ("EfficientNetB0", 224), "r50": ("ResNet50", 224),
          "r50_299": ("ResNet50", 299), "r50v2_299": ("ResNet50V2", 299), "r101": ("ResNet101", 224),
          "r152": ("ResNet152", 224), "r152v2_299": ("ResNet152V2", 299), "d121": ("DenseNet121", 224),
          "vgg16": ("VGG16", 224), "vgg19": ("VGG19", 224), "irv2_299": ("InceptionResNetV2", 299)}

# target -> precision -> [(model, threads, ms, source)]; every number from docs/target-sources.md
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
                 ("r152", None, 72.3, "torch2trt"), ("d121", None, 24.8, "torch2trt"),
                 ("vgg16", None, 85.1, "torch2trt")]},
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


def info_of(d: dict, fmt: str, size: int = 224) -> SimpleNamespace:
    layers = [SimpleNamespace(name=n, op=op, macs=m) for n, op, m in d["layers"]]
    io = [SimpleNamespace(shape=(1, size, size, 3)), SimpleNamespace(shape=(1, 1000))]
    return SimpleNamespace(layers=layers, params=d["params"], format=fmt, weight_dtypes={}, path="",
                           inputs=io[:1], outputs=io[1:])


def _before_row(f, profile, precision, threads):
    """The previous model (issue 19 'before'): same compute terms, a FITTED constant, no runtime floor."""
    row, _ = est.design_row(f, profile, precision, threads)
    if profile.kind == "edgetpu":
        return [row[0], row[1], 1.0]
    return [row[0], row[1], 1.0]


def _before_loo(points, profile, precision) -> tuple[list[float], list[float]]:
    feats = [est.features(p[1]) for p in points]
    a = np.array([_before_row(f, profile, precision, p[3]) for f, p in zip(feats, points)])
    y = np.array([p[2] for p in points])
    w = 1 / y
    full = est_fit.nnls(a * w[:, None], y * w)
    loo = []
    for i in range(len(points)):
        k = np.arange(len(points)) != i
        c = est_fit.nnls(a[k] * w[k, None], y[k] * w[k])
        loo.append(float(a[i] @ c) / y[i] - 1)
    return list(a @ full / y - 1), loo


def small_models() -> list[dict]:
    """Tiny models (MLPerf Tiny sizes, targets.md section 1) estimated next to the floors they rest on."""
    shapes = {"fc_autoencoder_0.26M": ([("fc", "FULLY_CONNECTED", 264_000 // 10)] * 10, 266_000, 640, 640),
              "ds_cnn_kws_2.7M": ([("conv", "CONV_2D", 250_000)] * 5 + [("dw", "DEPTHWISE_CONV_2D", 282_000)] * 5,
                                  22_600, 490, 12),
              "tiny_0.2M": ([("conv", "CONV_2D", 150_000), ("fc", "FULLY_CONNECTED", 50_000)], 52_000, 784, 10)}
    out = []
    for name, (layers, params, n_in, n_out) in shapes.items():
        info = SimpleNamespace(layers=[SimpleNamespace(name=n, op=o, macs=m) for n, o, m in layers], params=params,
                               format="keras", weight_dtypes={"int8": params}, path="",
                               inputs=[SimpleNamespace(shape=(1, n_in))], outputs=[SimpleNamespace(shape=(1, n_out))])
        for target in POINTS:
            profile = load_profile(target)
            e = est.estimate_from(info, profile, precision=None, threads=None, name=name)
            out.append({"model": name, "macs": sum(m for _, _, m in layers), "target": target,
                        "precision": e.precision, "ms": e.ms, "floor_ms": e.floor_ms})
    return out


def main(write: bool = False) -> dict:
    feats = model_features(HERE / "_work" / "estimate_features.json")
    out = {}
    for target, by_prec in POINTS.items():
        profile = load_profile(target)
        for precision, pts in by_prec.items():
            points = [(f"{m}@{t or '-'}", info_of(feats[m], "keras", MODELS[m][1]), ms, t) for m, t, ms, _ in pts]
            before_in, before_loo = _before_loo(points, profile, precision)
            full = est_fit.fit(points, profile, precision)
            out[f"{target}/{precision}"] = {
                "points": len(points), "coef": full.coef, "n_coefficients": full.n_coefficients,
                "before_in_sample": float(np.median(np.abs(before_in))),
                "before_leave_one_out": float(np.median(np.abs(before_loo))),
                "median_abs_error_in_sample": full.median_abs_error_in_sample,
                "median_abs_error_leave_one_out": full.median_abs_error,
                "rows": [{"model": e["model"], "published_ms": e["measured_ms"], "estimated_ms": e["estimated_ms"],
                          "error": e["error"], "loo_error": e["loo_error"], "before_loo_error": b, "source": p[3]}
                         for e, b, p in zip(full.errors, before_loo, pts)]}
            print(f"{target:17s} {precision}: {len(points)} points; before (fitted constant) LOO "
                  f"{100 * np.median(np.abs(before_loo)):.1f}%; after (runtime floor + per-layer) coef {full.coef} "
                  f"LOO {100 * full.median_abs_error:.1f}% (in-sample {100 * full.median_abs_error_in_sample:.1f}%)",
                  file=sys.stderr)
            if write:
                path = Path(est.__file__).parent / "profiles" / f"{target}.toml"
                path.write_text(est_fit.profile_with_fit(profile, full, "published points (benchmarks/"
                                                                    "estimate_validate.py)"))
                profile = load_profile(target)
    out["small_models"] = small_models()
    for r in out["small_models"]:
        print(f"  small {r['model']:22s} {r['target']:17s} {r['precision']}: {r['ms']:.4f} ms (floor "
              f"{r['floor_ms']:.4f} ms)", file=sys.stderr)
    return out


def measure_litert_floor() -> dict:
    """LiteRT per-invoke and per-op overhead on this machine: chains of 1 and 101 tiny 1x1 convolutions."""
    import time

    import flatbuffers
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.interpreter import Interpreter

    def chain(n: int, dtype: str) -> bytes:
        m = S.ModelT()
        m.version, m.buffers = 3, [S.BufferT()]
        sg = S.SubGraphT()
        sg.tensors, sg.operators = [], []
        types = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32, "float32": S.TensorType.FLOAT32}

        def tensor(name, shape, data=None, dt=dtype):
            t = S.TensorT()
            t.name, t.shape, t.type = name.encode(), list(shape), types[dt]
            if dtype == "int8":
                q = S.QuantizationParametersT()
                q.scale, q.zeroPoint = [0.05 if dt == "int8" else 0.0025], [0]
                t.quantization = q
            if data is not None:
                b = S.BufferT()
                b.data = np.asarray(data, dtype=dt).tobytes()
                m.buffers.append(b)
                t.buffer = len(m.buffers) - 1
            sg.tensors.append(t)
            return len(sg.tensors) - 1

        code = S.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = S.BuiltinOperator.CONV_2D
        code.version = 3 if dtype == "int8" else 1
        m.operatorCodes = [code]
        x = cur = tensor("x", (1, 4, 4, 4))
        w = tensor("w", (4, 1, 1, 4), np.ones((4, 1, 1, 4)))
        b = tensor("b", (4,), np.zeros(4), "int32" if dtype == "int8" else dtype)
        for i in range(n):
            out = tensor(f"y{i}", (1, 4, 4, 4))
            o = S.OperatorT()
            o.opcodeIndex, o.inputs, o.outputs = 0, [cur, w, b], [out]
            opt = S.Conv2DOptionsT()
            opt.strideH = opt.strideW = 1
            o.builtinOptionsType, o.builtinOptions = S.BuiltinOptions.Conv2DOptions, opt
            sg.operators.append(o)
            cur = out
        sg.inputs, sg.outputs = [x], [cur]
        m.subgraphs = [sg]
        bb = flatbuffers.Builder(1024)
        bb.Finish(m.Pack(bb), file_identifier=b"TFL3")
        return bytes(bb.Output())

    res = {}
    for dtype in ("float32", "int8"):
        for n in (1, 101):
            it = Interpreter(model_content=chain(n, dtype), num_threads=1)
            it.allocate_tensors()
            it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, 4, 4, 4), dtype=dtype))
            for _ in range(200):
                it.invoke()
            ts = []
            for _ in range(7):
                t0 = time.perf_counter_ns()
                for _ in range(2000):
                    it.invoke()
                ts.append((time.perf_counter_ns() - t0) / 2000 / 1e3)
            res[f"{dtype}_{n}_ops_us"] = float(np.median(ts))
        res[f"{dtype}_per_op_us"] = (res[f"{dtype}_101_ops_us"] - res[f"{dtype}_1_ops_us"]) / 100
    return res


# published facts about how edgetpu_compiler maps these architectures
PLAN_MODELS = {
    "MobileNet": ("all ops on the Edge TPU: Coral's compiled mobilenet_v1_1.0_224_quant_edgetpu.tflite is one "
                  "edgetpu-custom-op (coral.ai/models)", 224, {}),
    "MobileNetV2": ("all ops on the Edge TPU: Coral's mobilenet_v2_1.0_224_quant_edgetpu.tflite is one "
                    "edgetpu-custom-op (coral.ai/models)", 224, {}),
    "MobileNetV3Small": ("stops at the first HARD_SWISH: not supported (google-coral/edgetpu#272)", 224,
                         {"minimalistic": False}),
    "ResNet50": ("all mapped; 25.6 M int8 weights exceed the ~8 MiB cache and stream (targets.md section 1); "
                 "Coral: ResNet-50 V1 299 49 ms on USB3", 299, {}),
    "EfficientNetB0": ("Coral's EfficientNet-EdgeTPU variants exist because the stock model maps poorly "
                       "(published: coral.ai EfficientNet-EdgeTPU); swish = LOGISTIC + MUL is in the table", 224, {}),
}


def plan_real_models(work: Path) -> list[dict]:
    """Full-int8 TFLite of keras.applications models (random calibration) -> the Edge TPU plan + estimate."""
    import keras
    import tensorflow as tf

    from edgeml.targets.edgetpu_plan import plan

    rows = []
    for name, (published, size, kwargs) in PLAN_MODELS.items():
        path = work / f"{name}_b1_int8.tflite"
        if not path.exists():
            # a fixed batch of 1, as edgetpu_compiler needs static shapes (a dynamic batch adds SHAPE ops)
            m = getattr(keras.applications, name)(weights=None, input_tensor=keras.Input((size, size, 3), batch_size=1),
                                                  **kwargs)
            conv = tf.lite.TFLiteConverter.from_keras_model(m)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            rng = np.random.default_rng(0)
            conv.representative_dataset = lambda rng=rng, size=size: ([rng.random((1, size, size, 3), dtype=np.float32)]
                                                                     for _ in range(8))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.uint8
            path.write_bytes(conv.convert())
            keras.backend.clear_session()
        p = plan(path, target="coral-usb")
        first = next((o for o in p.ops if o.where == "cpu" and not o.boundary), None)
        e = est.estimate(path, target="coral-usb")
        rows.append({"model": name, "ops": len(p.ops), "ops_on_edgetpu": p.ops_on_edgetpu, "ops_on_cpu": p.ops_on_cpu,
                     "first_cpu_op": f"{first.op} ({first.reason})" if first else None,
                     "cached_mib": p.cached_weight_bytes / 2**20, "streamed_mib": p.streamed_weight_bytes / 2**20,
                     "estimate_ms": e.ms, "published": published})
        print(f"  plan {name}: {p.summary()}; estimate {e.ms:.2f} ms", file=sys.stderr)
    return rows


if __name__ == "__main__":
    if "--plan" in sys.argv:
        (HERE / "_work").mkdir(exist_ok=True)
        print(json.dumps(plan_real_models(HERE / "_work"), indent=2))
    elif "--floors" in sys.argv:
        print(json.dumps(measure_litert_floor(), indent=2))
    else:
        print(json.dumps(main("--write" in sys.argv), indent=2))
