"""Accuracy on labelled data (top-1, top-5) and fidelity against a reference model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeml.formats.common import TensorSpec


def float_inputs(inputs: list[TensorSpec]) -> list[TensorSpec]:
    """The same inputs as float32 where the model quantizes them (the session does the conversion)."""
    return [dataclasses.replace(t, dtype="float32", quantization=None) if t.quantization else t for t in inputs]


def evaluate(session: Any, dataset: Any, *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Top-1 (and top-5 when there are more than 5 classes) of ``session`` on a labelled dataset."""
    if not dataset.has_labels:
        from edgeml.errors import DataError

        raise DataError(f"data '{dataset.spec.origin or dataset.spec.source}' has no labels; accuracy needs them",
                        hint="use labelled data (an .npz with 'y', an image folder with class subfolders, "
                             "builtin:digits)")
    top1 = top5 = n = 0
    classes = None
    for feeds, labels in dataset.batches(1):
        out = next(iter(session.run(feeds).values()))
        scores = np.asarray(out, np.float64).reshape(len(labels), -1)
        classes = scores.shape[1]
        top1 += int((scores.argmax(1) == labels).sum())
        if classes > 5:
            best5 = np.argsort(-scores, axis=1)[:, :5]
            top5 += int((best5 == labels[:, None]).any(1).sum())
        n += len(labels)
        if progress:
            progress(n, len(dataset))
    result: dict[str, Any] = {"samples": n, "top1": top1 / n if n else None}
    if classes and classes > 5:
        result["top5"] = top5 / n
    return result


def top1(model: Any, data: Any) -> float:
    """Top-1 of a model (any format, or an in-memory Keras model) on a labelled data spec, on this machine."""
    from edgeml.calibration import load_dataset
    from edgeml.runtimes.session import open_session

    session = open_session(model)
    return evaluate(session, load_dataset(data, inputs=float_inputs(session.inputs)))["top1"]
