"""Convert reference architectures to TFLite and ONNX, verify them, and check MACs agree across formats.

Models: keras.applications MobileNet, MobileNetV2, ResNet50 (224, weights=None), the Keras 2 .h5 test
fixture, and a float .tflite built from raw TensorFlow ops (not by Keras or edgeml), converted to ONNX.
Prints JSON; run: .venv/bin/python benchmarks/convert_models.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeml.artifact import inspect_model  # noqa: E402
from edgeml.convert import convert  # noqa: E402


def raw_tf_tflite(path: Path) -> Path:
    """A float TFLite made from plain tf ops via from_concrete_functions (a 'third-party' model)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(1)

    class Net(tf.Module):
        def __init__(self):
            self.w1 = tf.constant(rng.normal(0, 0.2, (3, 3, 3, 16)).astype("float32"))
            self.w2 = tf.constant(rng.normal(0, 0.2, (16 * 16 * 16, 10)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="pixels")])
        def __call__(self, x):
            y = tf.nn.relu(tf.nn.conv2d(x, self.w1, strides=2, padding="SAME"))
            return tf.nn.softmax(tf.matmul(tf.reshape(y, [1, -1]), self.w2))

    net = Net()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([net.__call__.get_concrete_function()], net)
    path.write_bytes(conv.convert())
    return path


def main() -> list[dict]:
    import keras

    rows = []
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        sources = []
        for name, fn in [("MobileNet", keras.applications.MobileNet), ("MobileNetV2", keras.applications.MobileNetV2),
                         ("ResNet50", keras.applications.ResNet50)]:
            p = work / f"{name}.keras"
            fn(weights=None, input_shape=(224, 224, 3)).save(p)
            sources.append((name, p))
        sources.append(("Keras 2 .h5 (tests/data/keras2_cnn.h5)", ROOT / "tests" / "data" / "keras2_cnn.h5"))
        sources.append(("raw-TF float .tflite", raw_tf_tflite(work / "raw.tflite")))
        for name, src in sources:
            macs = {src.suffix.lstrip(".") or "keras": inspect_model(src).macs}
            for to in ("tflite", "onnx"):
                if src.suffix == ".tflite" and to == "tflite":
                    continue
                out = work / f"{src.stem}.{to}"
                t = time.perf_counter()
                res = convert(src, to=to, out=out, verify=8)
                wall = time.perf_counter() - t
                v = res.verification
                macs[to] = inspect_model(out).macs
                rows.append({"model": name, "to": to, "convert_s": res.seconds, "wall_with_verify_s": round(wall, 2),
                             "size_mib": round(res.size_bytes / 2**20, 2), "max_abs_diff": v.max_abs_diff,
                             "normalized_max_diff": v.normalized_max_diff, "argmax_agreement": v.argmax_agreement,
                             "nodes": res.simplify and [res.simplify["nodes_before"], res.simplify["nodes_after"]]})
            base = next(iter(macs.values()))
            rows.append({"model": name, "macs": macs,
                         "max_mac_spread_pct": round(100 * (max(macs.values()) - min(macs.values())) / base, 3)})
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
