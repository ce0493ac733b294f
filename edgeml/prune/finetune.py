"""Fine-tuning and evaluation of Keras models on labelled data specs (used by prune)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeml.errors import DataError, EdgeMLError


def load_labelled(spec: Any, model: Any, option: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Inputs (in the model's input order) and integer labels; clear errors when they do not fit."""
    from edgeml.calibration import load_dataset
    from edgeml.formats.keras import io_specs

    inputs, outputs = io_specs(model)
    ds = load_dataset(spec, inputs=inputs)
    feeds, labels = ds.arrays()
    origin = getattr(ds.spec, "origin", None) or str(spec)
    if labels is None:
        raise DataError(f"{option} {origin}: the data has no labels; fine-tuning and accuracy need them",
                        hint="use a labelled spec: an image folder with class sub-folders, an .npz with a 'labels' "
                             "array, a CSV with label=COLUMN, or builtin:digits")
    labels = np.asarray(labels)
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    n_classes = int(outputs[0].shape[-1]) if outputs and outputs[0].shape and outputs[0].shape[-1] else 0
    if labels.dtype.kind in "iu" and n_classes > 1 and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{option} {origin}: labels run from {labels.min()} to {labels.max()} but the model "
                        f"outputs {n_classes} classes",
                        hint="the data does not match this model; check the label column or the class folders")
    return [feeds[s.name] for s in inputs], labels


def loss_for(model: Any, compiled_loss: Any) -> tuple[Any, str]:
    """The model's own loss when it was compiled, else sparse categorical cross-entropy for classifiers."""
    from edgeml._tf import keras as import_keras

    keras = import_keras()
    if compiled_loss is not None:
        name = compiled_loss if isinstance(compiled_loss, str) else type(compiled_loss).__name__
        return compiled_loss, f"the model's own loss ({name})"
    out = model.outputs[0]
    if len(model.outputs) != 1 or not out.shape or (out.shape[-1] or 0) < 2:
        raise EdgeMLError("cannot choose a fine-tuning loss: the model was saved uncompiled and is not a "
                          "single-output classifier",
                          hint="compile the model with its loss before model.save(), then prune again")
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    probs = type(last).__name__ == "Softmax" or getattr(act, "__name__", "") == "softmax"
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    return loss, f"sparse categorical cross-entropy ({'probabilities' if probs else 'logits'})"


def accuracy(model: Any, x: list[np.ndarray], y: np.ndarray) -> float:
    pred = model.predict(x if len(x) > 1 else x[0], batch_size=256, verbose=0)
    pred = pred[0] if isinstance(pred, list) else pred
    return float(np.mean(np.argmax(pred, axis=-1).ravel() == np.asarray(y).ravel()))


def fine_tune(model: Any, train: tuple, val: tuple | None, *, loss: Any, epochs: int, batch_size: int, lr: float,
              callbacks: list[Any], patience_from: int = 0,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place; early stopping on ``val`` (restoring the best epoch after ``patience_from``)."""
    from edgeml._tf import keras as import_keras
    from edgeml.formats.keras import model_macs

    keras = import_keras()
    x, y = train
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
    steps = int(np.ceil(len(y) / batch_size))

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t, self.epoch = time.perf_counter(), epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            if progress and steps >= 50 and (batch + 1) % (steps // 4) == 0 and batch + 1 < steps:
                progress(f"  epoch {self.epoch}/{epochs}  step {batch + 1}/{steps}  loss {logs['loss']:.3f}")

        def on_epoch_end(self, epoch, logs=None):
            if progress:
                val_part = f"  val_loss {logs['val_loss']:.3f}  val_accuracy {logs['val_accuracy']:.3f}" \
                    if "val_loss" in logs else ""
                progress(f"  epoch {epoch + 1}/{epochs}  loss {logs['loss']:.3f}  accuracy {logs['accuracy']:.3f}"
                         f"{val_part}  ({time.perf_counter() - self.t:.1f} s)")

    prog = Progress()
    cbs = list(callbacks) + [prog]
    stopper = None
    if val is not None:
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True,
                                                start_from_epoch=patience_from)
        cbs.append(stopper)
    t = time.perf_counter()
    hist = model.fit(x if len(x) > 1 else x[0], y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
                     validation_data=((val[0] if len(val[0]) > 1 else val[0][0]), val[1]) if val else None,
                     callbacks=cbs)
    wall = time.perf_counter() - t
    run = len(hist.history.get("loss", []))
    macs = model_macs(model)
    return {"wall_s": round(wall, 2), "samples": int(len(y)), "epochs": run, "epochs_requested": epochs,
            "batch_size": batch_size, "learning_rate": lr, "forward_macs": macs,
            "flops": 3 * 2 * macs * int(len(y)) * run, "flops_basis": "3 x forward FLOPs x samples x epochs",
            "stopped_early": bool(stopper is not None and stopper.stopped_epoch > 0),
            "history": {k: [round(float(v), 5) for v in vs] for k, vs in hist.history.items()}}
