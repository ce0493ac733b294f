"""Accuracy on labelled data (top-1, top-5) and fidelity against a reference model.

Accuracy applies to classifiers only: one output holding one score per class, shaped ``[1, C]`` or
``[C]`` (leading 1s allowed), ``C >= 2``. Anything else (a detector's boxes, several outputs, one
binary score) has no top-1: edgeml says so instead of printing a number. Labels must be class indices
inside ``0..C-1``; others are an error naming the data, not a silent miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeml.errors import DataError, EdgeMLError
from edgeml.formats.common import TensorSpec


def float_inputs(inputs: list[TensorSpec]) -> list[TensorSpec]:
    """Inputs as real values (float32) where the model quantizes them, to feed one dataset to a float model
    and its quantized twin: data takes the model's own path to its integers (integer data is not quantized
    twice), then is dequantized; the session quantizes it back to exactly the same integers."""
    from edgeml.calibration.domain import real_valued

    return real_valued(inputs)


def classes_of(outputs: list[TensorSpec] | list[tuple]) -> tuple[int | None, str | None]:
    """``(C, None)`` for a classifier (C None when the class axis is dynamic), ``(None, why)`` otherwise."""
    shapes = [tuple(o.shape) if isinstance(o, TensorSpec) else tuple(o) for o in outputs]
    if len(shapes) != 1:
        return None, (f"the model has {len(shapes)} outputs; top-1 needs one class-score output [1, C] "
                      "(a detector or multi-head model)")
    shape = shapes[0]
    core = list(shape)
    while len(core) > 1 and core[0] in (1, None):
        core.pop(0)
    if len(core) != 1:
        return None, (f"the output is shaped [{', '.join('?' if d is None else str(d) for d in shape)}], not one "
                      "score per class [1, C] (a detector, segmenter or embedding)")
    if core[0] is not None and core[0] < 2:
        return None, "the output is a single score; top-1 needs one score per class (C >= 2)"
    return core[0], None


def check_labels(labels: np.ndarray, classes: int | None, origin: str, model: str = "the model",
                 where: Callable[[int], str] | None = None) -> np.ndarray:
    """Labels as int64 class indices in ``0..classes-1``; a DataError naming the data otherwise."""
    from edgeml.calibration.sampling import class_ids

    labels = class_ids(np.asarray(labels))  # one-hot rows: the class index is unambiguous
    if labels.ndim != 1:
        raise DataError(f"data '{origin}': labels are shaped {list(labels.shape)}, not one class index per sample",
                        hint="store class indices (e.g. argmax of one-hot rows) in 'y'")
    if labels.dtype.kind not in "iub" and not (labels.dtype.kind == "f" and np.all(labels == np.round(labels))):
        raise DataError(f"data '{origin}': labels are not class indices (dtype {labels.dtype}, e.g. {labels[0]!r})",
                        hint="accuracy needs integer class labels")
    labels = labels.astype(np.int64)
    if classes is not None and labels.size:
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if bad.size:
            i = int(bad[0])
            at = f" (first at {where(i)})" if where else ""
            raise DataError(f"data '{origin}': label {labels[i]}{at} is outside the {classes} classes of {model} "
                            f"(0..{classes - 1}); labels span {labels.min()}..{labels.max()}, "
                            f"{bad.size} of {labels.size} out of range",
                            hint="check the labels file / class folders match the model's class order")
    return labels


def evaluate(session: Any, dataset: Any, *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Top-1 (and top-5 when there are more than 5 classes) of ``session`` on a labelled dataset."""
    origin = dataset.spec.origin or dataset.spec.source
    if not dataset.has_labels:
        raise DataError(f"data '{origin}' has no labels; accuracy needs them",
                        hint="use labelled data (an .npz with 'y', an image folder with class subfolders, "
                             "builtin:digits)")
    classes, why = classes_of(session.outputs)
    if why is not None:
        raise EdgeMLError(f"accuracy does not apply to this model: {why}",
                          hint="top-1 scores classifiers only; compare outputs with a reference model instead "
                               "(bench's `reference`)")
    where = lambda j: dataset.source.where(int(dataset.indices[j]))  # noqa: E731
    model = getattr(getattr(session, "path", None), "name", None) or "the model"
    labels_all = check_labels(dataset.labels, classes, origin, model, where=where)
    top1 = top5 = n = 0
    for feeds, _ in dataset.batches(1):
        outs = list(session.run(feeds).values())
        if n == 0:  # the real output shape decides where the model declares dynamic dims
            got, why = classes_of([np.shape(o) for o in outs])
            if why is not None:
                raise EdgeMLError(f"accuracy does not apply to this model: {why}",
                                  hint="top-1 scores classifiers only; compare outputs with a reference model "
                                       "instead (bench's `reference`)")
            if classes is None:
                classes = got
                check_labels(labels_all, classes, origin, model, where=where)
        scores = np.asarray(outs[0], np.float64).reshape(1, -1)
        labels = labels_all[n:n + 1]
        top1 += int((scores.argmax(1) == labels).sum())
        if classes is not None and classes > 5:
            best5 = np.argsort(-scores, axis=1)[:, :5]
            top5 += int((best5 == labels[:, None]).any(1).sum())
        n += 1
        if progress:
            progress(n, len(dataset))
    result: dict[str, Any] = {"samples": n, "top1": top1 / n if n else None}
    if classes and classes > 5:
        result["top5"] = top5 / n
    return result


def top1(model: Any, data: Any) -> float:
    """Top-1 of a model (any format, or an in-memory Keras model) on a labelled data spec, on this machine.

    The data is bound to the model's own inputs: integer data in the model's dtype passes through."""
    from edgeml.calibration import load_dataset
    from edgeml.runtimes.session import open_session

    session = open_session(model)
    return evaluate(session, load_dataset(data, inputs=session.inputs))["top1"]
