"""The built-in end-to-end example: train a small CNN on builtin digits (recording what training cost),
then the whole pipeline: channel-prune with fine-tuning, convert to TFLite and ONNX, quantize to int8,
benchmark every variant on this machine, estimate rpi4 / coral-usb / jetson-orin-nano, write the report and
check budgets. Everything is computed on this machine; nothing is downloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeml.formats.common import TensorSpec

INPUT = TensorSpec("image", (None, 8, 8, 1), "float32")


def build_cnn(seed: int = 0):
    """A small conv-heavy CNN for 8x8 digits (the demo's and the benchmarks' reference model)."""
    from edgeml._tf import keras as import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="digits_cnn")


def train_cnn(epochs: int = 15, seed: int = 0, progress: Callable[[str], None] | None = None) -> tuple[Any, dict]:
    """Train ``build_cnn`` on builtin:digits (train split); returns the model and its training cost."""
    from edgeml._tf import keras as import_keras
    from edgeml.calibration import load_dataset
    from edgeml.formats.keras import model_macs

    keras = import_keras()
    x, y = load_dataset("builtin:digits?split=train", inputs=[INPUT]).arrays()
    assert y is not None  # builtin:digits is labelled
    model = build_cnn(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    callback: Any = keras.callbacks.Callback

    class Progress(callback):
        def on_epoch_end(self, epoch, logs=None):
            if progress:
                progress(f"  epoch {epoch + 1:2d}/{epochs}  loss {logs['loss']:.3f}  accuracy {logs['accuracy']:.3f}")

    t = time.perf_counter()
    model.fit(x["image"], y, epochs=epochs, batch_size=32, verbose=0, callbacks=[Progress()])
    wall = time.perf_counter() - t
    macs = model_macs(model)
    cost = {"wall_s": round(wall, 2), "samples": int(len(y)), "epochs": epochs, "forward_macs": macs,
            "flops": 3 * 2 * macs * len(y) * epochs,  # forward + backward ~ 3x forward FLOPs; 1 MAC = 2 FLOPs
            "flops_basis": "3 x forward FLOPs x samples x epochs"}
    return model, cost


DEMO_TARGETS = ["host", "rpi4", "coral-usb", "jetson-orin-nano"]
DEMO_BUDGET = {"max_size": "64KiB", "max_latency_ms": 5.0, "min_accuracy": 0.9}


def run_demo(out_dir: str | Path = "edgeml-demo", *, epochs: int = 15, prune_epochs: int = 5, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train on builtin digits (recording the cost), then the whole pipeline: prune -> convert -> quantize ->
    bench on this machine -> estimate rpi4 / coral-usb / jetson-orin-nano -> report -> budget check."""
    from edgeml._io import json_text, write_bytes_atomic
    from edgeml.pipeline import Recipe, run_pipeline

    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    keras_path = out / "digits_cnn.keras"
    train_json = out / "training.json"
    say(f"training a CNN on builtin:digits ({epochs} epochs)")
    model, cost = train_cnn(epochs, seed, progress)
    model.save(keras_path)
    write_bytes_atomic(train_json, json_text({"schema": "edgeml.train/1", "what": f"training {keras_path.name} from "
                                              "scratch", "model": str(keras_path), **cost}).encode())
    recipe = Recipe(model=str(keras_path), out=str(out), targets=list(DEMO_TARGETS),
                    calib="builtin:digits?split=train", eval="builtin:digits?split=test",
                    train="builtin:digits?split=train", prune=0.5, prune_method="channel", epochs=prune_epochs,
                    lr=3e-3, formats=["tflite", "onnx"], training=str(train_json), budget=dict(DEMO_BUDGET))
    result = run_pipeline(recipe, progress=say)
    report = result.report
    variants = {v.name: {"path": v.path, "size_bytes": v.size_bytes, "macs": v.macs, "accuracy": v.accuracy,
                         "latency_ms": {t: {"ms": c.ms, "kind": c.label} for t, c in v.costs.items()}}
                for v in report.variants}
    summary = {"schema": "edgeml.demo/1", "out_dir": str(out), "training": cost, "variants": variants,
               "asymmetry": report.asymmetry(), "deploy": report.deploy,
               "check": result.check.to_dict() if result.check else None,
               "report": str(out / "report.html"), "seconds": round(time.perf_counter() - t0, 1)}
    write_bytes_atomic(out / "summary.json", json_text(summary).encode())
    return summary
