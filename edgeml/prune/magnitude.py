"""Unstructured magnitude pruning of Keras kernels: masks, schedules and a mask-enforcing callback.

Masks zero exactly ``round(s * n)`` weights of each kernel (``scope="layer"``) or of all kernels together
(``scope="global"``, one threshold), smallest |w| first, ties broken by position. The model stays a plain
Keras model: masks are applied to the kernels themselves, never through wrapper layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError

KERNELS = {"Conv1D": ("kernel",), "Conv2D": ("kernel",), "Conv3D": ("kernel",), "Dense": ("kernel",),
           "Conv1DTranspose": ("kernel",), "Conv2DTranspose": ("kernel",), "Conv3DTranspose": ("kernel",),
           "DepthwiseConv1D": ("kernel",), "DepthwiseConv2D": ("kernel",),
           "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel"),
           "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel")}


@dataclass
class Target:
    layer: str
    op: str
    variable: Any  # keras.Variable

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.variable.path.rsplit('/', 1)[-1]}"


def targets(model: Any, exclude: str | None = None) -> tuple[list[Target], list[str]]:
    """Prunable kernels of ``model`` (nested models included) and the layers --exclude left out."""
    from edgeml.formats.keras import walk_layers

    rx = re.compile(exclude) if exclude else None
    found, excluded = [], []
    for layer in walk_layers(model):
        attrs = KERNELS.get(type(layer).__name__)
        if not attrs:
            continue
        if rx and rx.search(layer.name):
            excluded.append(layer.name)
            continue
        for a in attrs:
            found.append(Target(layer.name, type(layer).__name__, getattr(layer, a)))
    if not found:
        raise EdgeMLError("the model has no prunable layers (Conv, DepthwiseConv, SeparableConv, Dense)"
                          + (f" outside `exclude` {exclude}" if excluded else ""),
                          hint="magnitude pruning zeroes Conv/Dense kernels; check the model or the `exclude` pattern")
    return found, excluded


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask (True = keep) zeroing exactly the k smallest |values|, ties by position."""
    flat = np.abs(values).ravel()
    keep = np.ones(flat.size, bool)
    if k > 0:
        keep[np.argsort(flat, kind="stable")[:k]] = False
    return keep.reshape(values.shape)


def masks(weights: list[np.ndarray], sparsity: float, scope: str) -> list[np.ndarray]:
    if scope == "global":
        allw = np.concatenate([w.ravel() for w in weights])
        keep = _smallest(allw, int(round(sparsity * allw.size)))
        out, off = [], 0
        for w in weights:
            out.append(keep[off:off + w.size].reshape(w.shape))
            off += w.size
        return out
    return [_smallest(w, int(round(sparsity * w.size))) for w in weights]


def polynomial(step: int, end_step: int, final: float, power: int = 3) -> float:
    """Sparsity at ``step``: 0 at the start, ``final`` from ``end_step`` on (Zhu & Gupta 2017, as TFMOT)."""
    if step >= end_step:
        return final
    return final * (1 - (1 - step / end_step) ** power)


class Pruner:
    """Holds masks for the target kernels; ``update`` recomputes them, ``apply`` zeroes the pruned weights."""

    def __init__(self, tgts: list[Target], scope: str):
        self.targets = tgts
        self.scope = scope
        self.masks: list[np.ndarray] | None = None
        self.sparsity = 0.0

    def update(self, sparsity: float) -> None:
        self.sparsity = sparsity
        self.masks = masks([np.asarray(t.variable) for t in self.targets], sparsity, self.scope)
        self.apply()

    def apply(self) -> None:
        if self.masks is None:
            return
        for t, m in zip(self.targets, self.masks):
            t.variable.assign(np.asarray(t.variable) * m)

    def report(self) -> list[dict[str, Any]]:
        rows = []
        for t in self.targets:
            w = np.asarray(t.variable)
            rows.append({"name": t.name, "op": t.op, "weights": int(w.size),
                         "sparsity": float((w == 0).sum() / w.size)})
        return rows


def callback(pruner: Pruner, sparsity: float, schedule: str, total_steps: int, frequency: int | None = None) -> Any:
    """A Keras callback enforcing the masks after every optimizer step and moving the schedule."""
    from edgeml._tf import keras as import_keras

    keras = import_keras()
    end = max(1, int(total_steps * 2 / 3)) if schedule == "polynomial" else 0
    every = frequency or max(1, end // 10)

    callback: Any = keras.callbacks.Callback

    class EnforceMasks(callback):
        def __init__(self):
            super().__init__()
            self.step = 0

        def on_train_begin(self, logs=None):
            pruner.update(sparsity if schedule == "constant" else 0.0)

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if schedule == "polynomial" and self.step <= end and (self.step % every == 0 or self.step == end):
                pruner.update(polynomial(self.step, end, sparsity))
            else:
                pruner.apply()

    cb = EnforceMasks()
    cb.ramp_end_step = end
    return cb
