"""Which samples of a source a dataset takes: the first, a seeded random subset, or stratified by label."""

from __future__ import annotations

import numpy as np

from edgeml.calibration.sources import Source
from edgeml.calibration.spec import DataSpec
from edgeml.errors import DataError


def select(source: Source, spec: DataSpec) -> np.ndarray:
    n = len(source)
    k = n if spec.samples is None else min(spec.samples, n)
    if spec.sampling == "first" or k == n:
        return np.arange(k)
    rng = np.random.default_rng(spec.seed)
    if spec.sampling == "stratified":
        if source.labels is None:
            raise DataError(f"data spec '{spec.origin}': sampling=stratified needs labelled data",
                            hint="use sampling=random, or labelled data")
        labels = class_ids(np.asarray(source.labels))
        classes, counts = np.unique(labels, return_counts=True)
        quota = np.floor(counts / n * k).astype(int)
        for j in np.argsort(-(counts / n * k - quota))[: k - quota.sum()]:
            quota[j] += 1
        picked = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in zip(classes, quota)]
        return np.sort(np.concatenate(picked))
    return np.sort(rng.choice(n, k, replace=False))


def class_ids(labels: np.ndarray) -> np.ndarray:
    """One-hot label rows as class indices (other labels as they are)."""
    if labels.ndim == 2 and labels.size and np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(1) == 1):
        return labels.argmax(1)
    return labels
