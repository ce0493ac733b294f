"""Labelled data for training a Keras model (prune's fine-tuning, quantization-aware training): inputs in the
model's order and class labels checked against its outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeml.errors import DataError


def load_labelled(spec: Any, model: Any, option: str,
                  needs: str = "fine-tuning and accuracy need them") -> tuple[list[np.ndarray], np.ndarray]:
    """A Keras ``model``'s inputs (in its input order) and integer labels from the labelled data ``spec`` given as
    ``option`` (named in errors); clear errors when the labels do not fit the model's outputs."""
    from edgeml.calibration import load_dataset
    from edgeml.formats.keras import io_specs

    inputs, outputs = io_specs(model)
    ds = load_dataset(spec, inputs=inputs)
    feeds, labels = ds.arrays()
    origin = getattr(ds.spec, "origin", None) or str(spec)
    if labels is None:
        raise DataError(f"{option} {origin}: the data has no labels; {needs}",
                        hint="use a labelled spec: an image folder with class sub-folders, an .npz with a 'labels' "
                             "array, a CSV with label=COLUMN, or builtin:digits")
    labels = np.asarray(labels)
    n_classes = int(outputs[0].shape[-1]) if outputs and outputs[0].shape and outputs[0].shape[-1] else 0
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2:  # one-hot rows (as categorical cross-entropy is trained on): their class indices
        onehot = labels.shape[1] == n_classes and np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(1) == 1)
        if not onehot:
            raise DataError(f"{option} {origin}: labels have shape {labels.shape}, neither class indices nor one-hot "
                            f"rows for the model's {n_classes} classes",
                            hint="store one class index per sample (or one one-hot row per sample)")
        labels = labels.argmax(1)
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    if n_classes == 1 and labels.dtype.kind in "iu" and not np.isin(labels, (0, 1)).all():
        raise DataError(f"{option} {origin}: the model has one output (a binary classifier) but the labels are not "
                        f"0/1 (from {labels.min()} to {labels.max()})", hint="use 0/1 labels for this model")
    if labels.dtype.kind in "iu" and n_classes > 1 and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{option} {origin}: labels run from {labels.min()} to {labels.max()} but the model "
                        f"outputs {n_classes} classes",
                        hint="the data does not match this model; check the label column or the class folders")
    return [feeds[s.name] for s in inputs], labels
