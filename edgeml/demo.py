"""The built-in end-to-end example: train a small CNN on builtin digits, convert, verify, evaluate.

Everything is computed on this machine; nothing is downloaded. Later stages (prune, quantize, bench,
estimate, report) join this pipeline as they land.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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
    model = build_cnn(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Progress(keras.callbacks.Callback):
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


def accuracy(model_or_path: Any, data: str = "builtin:digits?split=test") -> float:
    """Top-1 accuracy of any model format on a labelled data spec."""
    from edgeml.calibration import load_dataset
    from edgeml.runtimes.session import open_session

    session = open_session(model_or_path)
    ds = load_dataset(data, inputs=session.inputs)
    correct = 0
    for s in ds:
        out = session.run({k: v[None] for k, v in s.feeds.items()})
        correct += int(np.argmax(next(iter(out.values()))) == s.label)
    return correct / len(ds)


def run_demo(out_dir: str | Path = "edgeml-demo", *, epochs: int = 15, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from edgeml.artifact import inspect_model
    from edgeml.convert import convert

    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say(f"[1/4] training a CNN on builtin:digits ({epochs} epochs)")
    model, cost = train_cnn(epochs, seed, progress)
    keras_path = out / "digits_cnn.keras"
    model.save(keras_path)
    say("[2/4] converting to TFLite and ONNX (each verified against the Keras model on test digits)")
    variants: dict[str, dict[str, Any]] = {"keras": {"path": str(keras_path)}}
    for fmt in ("tflite", "onnx"):
        res = convert(keras_path, to=fmt, out=out / f"digits_cnn.{fmt}", calib="builtin:digits?split=test",
                      verify=32, force=True, keras_model=model)
        variants[fmt] = {"path": res.output, "convert_s": res.seconds, "verification": res.verification.to_dict()}
    say("[3/4] inspecting")
    for fmt, v in variants.items():
        info = inspect_model(v["path"])
        v.update(size_bytes=info.size_bytes, params=info.params, macs=info.macs)
    say("[4/4] measuring top-1 accuracy on the 360 held-out test digits")
    variants["keras"]["accuracy"] = accuracy(model)
    for fmt in ("tflite", "onnx"):
        variants[fmt]["accuracy"] = accuracy(variants[fmt]["path"])
    summary = {"schema": "edgeml.demo/1", "out_dir": str(out), "training": cost, "variants": variants,
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
