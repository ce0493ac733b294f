"""Fine-tuning and evaluation of Keras models on labelled data specs (used by prune)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError

ONEDNN_NOTE = ("fine-tuning ran with TensorFlow's oneDNN CPU kernels off (TF_ENABLE_ONEDNN_OPTS=0; slower): the model "
               "has 1x1 stride-{stride} convolutions ({layers}), whose oneDNN filter gradient crashes TensorFlow 2.21 "
               "(segfault)")
ONEDNN_WARNING = ("fine-tuning may crash (segfault) in TensorFlow 2.21's oneDNN filter gradient of 1x1 strided "
                  "convolutions ({layers}); TensorFlow was imported before edgeml could switch oneDNN off: set "
                  "TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow")


def strided_pointwise_convs(path: Any) -> list[tuple[str, int]]:
    """(name, stride) of every Conv1D/2D/3D with a 1x1 kernel and a stride > 1, read from the saved config of a
    .keras or .h5 model without importing TensorFlow."""
    import json
    import zipfile
    from pathlib import Path

    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                config = json.loads(z.read("config.json"))
        else:
            import h5py

            with h5py.File(p, "r") as f:
                raw = f.attrs.get("model_config")
            config = json.loads(raw.decode() if hasattr(raw, "decode") else raw) if raw is not None else {}
    except (OSError, KeyError, ValueError):
        return []  # the loader reports unreadable files
    found: list[tuple[str, int]] = []

    from edgeml.formats.keras_load import config_dicts

    for node in config_dicts(config):
        cfg = node.get("config")
        if node.get("class_name") in ("Conv1D", "Conv2D", "Conv3D") and isinstance(cfg, dict):
            kernel, strides = cfg.get("kernel_size", ()), cfg.get("strides", ())
            kernel = kernel if isinstance(kernel, (list, tuple)) else [kernel]
            strides = strides if isinstance(strides, (list, tuple)) else [strides]
            if kernel and all(k == 1 for k in kernel) and any(s > 1 for s in strides):
                found.append((str(cfg.get("name")), max(strides)))
    return found


def avoid_onednn_crash(path: Any) -> tuple[str | None, str | None]:
    """Switch TensorFlow's oneDNN kernels off for fine-tuning a model with 1x1 strided convolutions.

    Measured with TensorFlow 2.21 (CPU): the filter gradient (Conv2DBackpropFilter) of a 1x1 stride-2 Conv2D
    segfaults for some shapes, e.g. input 60x60x8 -> 16 filters, or 60x60x4 -> 8 (the shortcuts of a
    mini-Xception, before and after channel pruning); limiting oneDNN's ISA only moves the crash to other
    shapes; with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0, read when TensorFlow is imported) it runs, ~3-4x slower.
    Returns (note, warning) for the prune result; the user's own TF_ENABLE_ONEDNN_OPTS is respected."""
    import os
    import sys

    convs = strided_pointwise_convs(path)
    if not convs or "TF_ENABLE_ONEDNN_OPTS" in os.environ:
        return None, None
    names = ", ".join(n for n, _ in convs[:3]) + (f" and {len(convs) - 3} more" if len(convs) > 3 else "")
    if "tensorflow" in sys.modules:
        return None, ONEDNN_WARNING.format(layers=names)
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    return ONEDNN_NOTE.format(stride=max(s for _, s in convs), layers=names), None


def _single(loss: Any) -> Any:
    """The loss of a single-output model compiled with a one-entry dict or list of losses."""
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        return loss[0]
    if hasattr(loss, "values") and not callable(loss) and len(loss) == 1:
        return next(iter(loss.values()))
    return loss


def loss_name(loss: Any) -> str:
    """A readable name: 'categorical_crossentropy', 'SparseCategoricalCrossentropy(from_logits=True)', ..."""
    if isinstance(loss, str):
        return loss
    if hasattr(loss, "get_config"):
        cfg: dict[str, Any] = loss.get_config() or {}
        name: Any = type(loss).__name__
        if name == "LossFunctionWrapper":
            name = cfg.get("name") or getattr(getattr(loss, "fn", None), "__name__", name)
        opts = [f"{k}={cfg[k]}" for k in ("from_logits", "label_smoothing") if cfg.get(k)]
        return f"{name}({', '.join(opts)})" if opts else name
    return getattr(loss, "__name__", type(loss).__name__)


def sparse_labels(loss: Any) -> bool:
    """Whether ``loss`` takes class indices (sparse_*) rather than targets shaped like the output (one-hot)."""
    return "sparse" in loss_name(loss).lower()


def loss_for(model: Any, compiled_loss: Any) -> tuple[Any, str]:
    """The model's own loss when it was compiled, else sparse categorical cross-entropy for classifiers."""
    from edgeml._tf import keras as import_keras

    keras = import_keras()
    if len(model.outputs) != 1:
        raise EdgeMLError(f"fine-tuning works on single-output models; this one has {len(model.outputs)} outputs",
                          hint="prune without `train` (one-shot) and fine-tune the result in your own training code")
    if compiled_loss is not None:
        loss = _single(compiled_loss)
        if hasattr(loss, "values") and not callable(loss):
            raise EdgeMLError(f"the model was compiled with several losses ({loss_name(loss)}) for its one output",
                              hint="re-compile it with one loss before model.save(), then prune again")
        form = "class indices" if sparse_labels(loss) else "labels fed one-hot" \
            if (model.outputs[0].shape[-1] or 0) > 1 else "labels fed as 0/1"
        return loss, f"the model's own loss, {loss_name(loss)}; {form}"
    out = model.outputs[0]
    if not out.shape or (out.shape[-1] or 0) < 2:
        raise EdgeMLError("cannot choose a fine-tuning loss: the model was saved uncompiled and is not a "
                          "single-output classifier",
                          hint="compile the model with its loss before model.save(), then prune again")
    probs = _activation(model) == "softmax"
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    return loss, f"sparse categorical cross-entropy ({'probabilities' if probs else 'logits'})"


def _activation(model: Any) -> str:
    """The last layer's activation: 'softmax', 'sigmoid', ... ('' when it has none)."""
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return "softmax"
    return getattr(getattr(last, "activation", None), "__name__", "")


def targets(model: Any, loss: Any, y: np.ndarray) -> np.ndarray:
    """Labels (class indices) in the form ``loss`` trains on: indices for sparse losses, else one-hot rows (or
    0/1 for a one-unit output) shaped like the model's output."""
    y = np.asarray(y)
    if sparse_labels(loss):
        return y.astype(np.int64)
    shape = tuple(int(d) for d in model.outputs[0].shape[1:])
    classes = shape[-1] if shape else 1
    if int(np.prod(shape)) != classes:
        raise EdgeMLError(f"the model's output has shape {shape}, not one score per class; edgeml cannot build "
                          f"targets for its loss {loss_name(loss)} from class labels",
                          hint="prune without `train` (one-shot) and fine-tune in your own training code")
    dense = y.astype(np.float32).reshape(-1, 1) if classes == 1 else np.eye(classes, dtype=np.float32)[y]
    return dense.reshape((len(y),) + shape)


def accuracy(model: Any, x: list[np.ndarray], y: np.ndarray) -> float:
    pred = model.predict(x if len(x) > 1 else x[0], batch_size=256, verbose=0)
    pred = np.asarray(pred[0] if isinstance(pred, list) else pred).reshape(len(y), -1)
    if pred.shape[1] == 1:
        if _activation(model) != "sigmoid":
            raise EdgeMLError("cannot score accuracy: the model has one output unit that is not a sigmoid "
                              "probability, so there is no threshold to read a class from",
                              hint="omit `val`, or end the model with a sigmoid (or two-class softmax) output")
        return float(np.mean((pred[:, 0] > 0.5) == np.asarray(y).ravel().astype(bool)))
    return float(np.mean(np.argmax(pred, axis=-1) == np.asarray(y).ravel()))


def fine_tune(model: Any, train: tuple, val: tuple | None, *, loss: Any, epochs: int, batch_size: int, lr: float,
              callbacks: list[Any], patience_from: int = 0,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place; early stopping on ``val`` (restoring the best epoch after ``patience_from``)."""
    from edgeml._tf import keras as import_keras
    from edgeml.formats.keras import model_macs

    keras = import_keras()
    x, y = train
    y = targets(model, loss, y)
    if val is not None:
        val = (val[0], targets(model, loss, val[1]))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
    steps = int(np.ceil(len(y) / batch_size))

    callback: Any = keras.callbacks.Callback

    class Progress(callback):
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
