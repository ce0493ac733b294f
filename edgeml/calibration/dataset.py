"""Dataset: a sampled, validated view of a source, shaped for one model's inputs, and its adapters
(batches, arrays, TFLite representative_dataset, ONNX Runtime CalibrationDataReader). How a value becomes
a model input: :mod:`edgeml.calibration.preprocess`; which samples: :mod:`edgeml.calibration.sampling`."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeml.calibration import domain
from edgeml.calibration.preprocess import bind
from edgeml.calibration.sampling import class_ids, select
from edgeml.calibration.sources import ImageFolderSource, Source, open_source
from edgeml.calibration.spec import DataSpec
from edgeml.errors import DataError
from edgeml.formats.common import TensorSpec

log = logging.getLogger(__name__)

MIN_CALIBRATION_SAMPLES = 50


@dataclass
class Sample:
    """One sample: ``feeds`` maps input name -> array without batch dimension, in the model's dtype."""

    feeds: dict[str, np.ndarray]
    label: Any
    where: str
    whole: frozenset = frozenset()  # inputs fed as stored (no batch axis added): see preprocess.Binding.whole

    def batch1(self) -> dict[str, np.ndarray]:
        """Feeds for one run: a leading batch axis of 1, except on whole inputs (scalars, non-leading batch)."""
        return {k: v if k in self.whole else v[None] for k, v in self.feeds.items()}


class Dataset:
    """A sampled view of a source, shaped for a model's inputs (when given). Iterates lazily."""

    def __init__(self, spec: DataSpec, source: Source, inputs: list[TensorSpec] | None):
        self.spec, self.source = spec, source
        self.inputs = inputs
        self.bindings = bind(source, spec, inputs)
        self.indices = select(source, spec)
        self.input_names = [t.name for t in inputs] if inputs is not None else [b.name for b in self.bindings.values()]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def has_labels(self) -> bool:
        return self.source.labels is not None

    @property
    def labels(self) -> np.ndarray | None:
        return None if self.source.labels is None else np.asarray(self.source.labels)[self.indices]

    def sample(self, j: int) -> Sample:
        i = int(self.indices[j])
        where = self.source.where(i)
        raw = self.source.read(i)
        feeds = {b.name: b.convert(raw[k], where, self.source.kind) for k, b in self.bindings.items()}
        label: Any = None if self.source.labels is None else self.source.labels[i]
        # one-hot rows stay
        label = label.item() if getattr(label, "ndim", 0) == 0 and hasattr(label, "item") else label
        return Sample(feeds, label, where, self.whole)

    @property
    def whole(self) -> frozenset:
        """Inputs fed as stored, without an added batch axis (scalars; a first axis that is not the batch)."""
        return frozenset(b.name for b in self.bindings.values() if b.whole)

    def __iter__(self) -> Iterator[Sample]:
        for j in range(len(self)):
            yield self.sample(j)

    def validate(self) -> Dataset:
        """Check everything that can be checked before a long stage runs (see module docs)."""
        origin = self.spec.origin or self.spec.source
        if len(self) == 0:
            raise DataError(f"data '{origin}' is empty (0 samples)", hint="check the path and the split")
        if isinstance(self.source, ImageFolderSource):
            for i in self.indices:
                self.source.check_readable(int(i))
        elif self.source.kind == "array":
            for key, binding in self.bindings.items():
                arr = _whole_array(self.source, key)
                if arr is not None and arr.dtype.kind == "f":
                    bad = ~np.isfinite(arr[self.indices].reshape(len(self.indices), -1)).all(axis=1)
                    if bad.any():
                        i = int(self.indices[np.flatnonzero(bad)[0]])
                        raise DataError(f"{self.source.where(i)}: input '{binding.name}' contains NaN or Inf values "
                                        f"({int(bad.sum())} of {len(self.indices)} samples)",
                                        hint="clean the data; calibration and metrics need finite values")
                    t = binding.target
                    if (t is not None and binding.spec.domain == "auto" and domain.is_quantized(t)
                            and domain.integral_in_range(arr[self.indices], t)):
                        q = domain.params(t)
                        binding.note(f"{origin}: '{key}' is {arr.dtype} data holding only whole numbers inside the "
                                     f"{t.dtype} range: taken as real values and quantized with the model's scale "
                                     f"{q.scale:.6g}, zero point {q.zero_point}; if they are already the model's "
                                     f"integers, store them as {t.dtype} or set domain=quantized", 0)
        self.sample(0)  # full conversion of one sample: shapes, dtypes, preprocessing
        return self

    def warn_if_few(self, minimum: int = MIN_CALIBRATION_SAMPLES, purpose: str = "calibration") -> bool:
        if len(self) < minimum:
            log.warning("only %d %s samples (at least %d recommended, 100-500 typical); "
                        "quantization ranges may be poor", len(self), purpose, minimum)
            return True
        return False

    # -- adapters -----------------------------------------------------------------------------------------
    def batches(self, batch_size: int = 32) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        """Batched feeds (with a leading batch axis) and labels, for evaluation and training. Inputs fed whole
        (``whole``) cannot be stacked: such a dataset yields one sample at a time."""
        if self.whole:
            for s in self:
                yield s.batch1(), (None if s.label is None else np.asarray([s.label]))
            return
        for start in range(0, len(self), batch_size):
            samples = [self.sample(j) for j in range(start, min(start + batch_size, len(self)))]
            feeds = {name: np.stack([s.feeds[name] for s in samples]) for name in self.input_names}
            labels = None if samples[0].label is None else np.asarray([s.label for s in samples])
            yield feeds, labels

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Everything selected, stacked in memory (for small sets: training, calibration)."""
        feeds: dict[str, list] = {n: [] for n in self.input_names}
        for s in self:
            for n in self.input_names:
                feeds[n].append(s.feeds[n])
        return {n: np.stack(v) for n, v in feeds.items()}, self.labels

    def representative_dataset(self, *, as_dict: bool = False) -> Callable[[], Iterator[Any]]:
        """A TFLite converter ``representative_dataset``: batches of one in input order (float inputs as float32)."""

        def gen():
            for s in self:
                arrays = {n: _float32(v) for n, v in s.batch1().items()}
                yield arrays if as_dict else [arrays[n] for n in self.input_names]

        return gen

    def calibration_reader(self, input_names: list[str] | None = None):
        """An ONNX Runtime ``CalibrationDataReader`` over this dataset."""
        from onnxruntime.quantization import CalibrationDataReader

        names = input_names or self.input_names
        dataset = self

        class _Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(dataset)

            def get_next(self):
                s = next(self._it, None)
                return None if s is None else {n: s.batch1()[n] for n in names}

            def rewind(self):
                self._it = iter(dataset)

            def __len__(self):
                return len(dataset)

        return _Reader()

    def describe(self) -> dict[str, Any]:
        """Count, per-input shape/dtype/value range, label distribution (streams over the selection)."""
        stats: dict[str, dict[str, Any]] = {}
        for b in self.bindings.values():  # count the paths over exactly this pass
            b.paths.clear()
            b.data_dtypes.clear()
            b.clipped = 0
        for s in self:
            for name, x in s.feeds.items():
                st = stats.setdefault(name, {"shapes": Counter(), "dtype": str(x.dtype), "min": np.inf,
                                             "max": -np.inf, "sum": 0.0, "count": 0})
                st["shapes"][tuple(x.shape)] += 1
                if x.size:
                    st["min"] = min(st["min"], float(x.min()))
                    st["max"] = max(st["max"], float(x.max()))
                    st["sum"] += float(x.astype(np.float64).sum())
                    st["count"] += x.size
        inputs = []
        for name, st in stats.items():
            shapes = [list(s) for s in st["shapes"]]
            entry = {"name": name, "shape": shapes[0] if len(shapes) == 1 else None, "shapes": shapes,
                     "dtype": st["dtype"], "min": st["min"], "max": st["max"],
                     "mean": st["sum"] / st["count"] if st["count"] else None}
            binding = next((b for b in self.bindings.values() if b.name == name), None)
            fed = binding.describe_path() if binding is not None else None
            if fed is not None:
                entry["fed"] = fed
            inputs.append(entry)
        labels = None if self.labels is None else class_ids(self.labels)
        dist = None
        if labels is not None and labels.dtype.kind in "iu":
            names = self.source.class_names
            dist = {(names[int(k)] if names and int(k) < len(names) else str(int(k))): int(v)
                    for k, v in sorted(Counter(labels.tolist()).items())}
        return {"schema": "edgeml.data/1", "spec": self.spec.to_dict(), "source_samples": len(self.source),
                "count": len(self), "inputs": inputs, "labelled": labels is not None, "label_distribution": dist}


def _whole_array(source: Source, key: str) -> np.ndarray | None:
    """The stored array behind ``key`` for array sources (.npz, .npy memory-mapped, .csv), else None."""
    if hasattr(source, "arrays"):
        return source.arrays.get(key)
    stored = getattr(source, "array", None)
    if stored is None:
        stored = getattr(source, "features", None)
    return stored if stored is not None and key == source.keys[0] else None


def _float32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if x.dtype.kind == "f" else x


def load_dataset(spec: DataSpec | str, *, inputs: list[TensorSpec] | None = None, validate: bool = True) -> Dataset:
    """Open, sample and (by default) validate a dataset against a model's inputs. A dataset already loaded
    (one with ``sample``, e.g. quantize's ONNX -> TFLite data transposed to the TFLite layout) is taken as it is."""
    if not isinstance(spec, (str, DataSpec)) and hasattr(spec, "sample"):
        return spec
    if isinstance(spec, str):
        spec = DataSpec.parse(spec)
    default_key = inputs[0].name if inputs else "input"
    ds = Dataset(spec, open_source(spec, default_key), inputs)
    return ds.validate() if validate else ds
