"""Dataset: a sampled, validated view of a source, shaped for one model's inputs."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeml.calibration import domain
from edgeml.calibration.spec import NORM_PRESETS, DataSpec
from edgeml.calibration.sources import ImageFolderSource, Source, open_source
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


def _layout(spec: DataSpec, shape: tuple) -> str:
    if spec.layout:
        return spec.layout
    if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        return "nchw"
    return "nhwc"


class _Binding:
    """How one source key becomes one model input (the value path: edgeml.calibration.domain)."""

    def __init__(self, spec: DataSpec, key: str, target: TensorSpec | None):
        self.spec, self.key = spec, key
        self.real = isinstance(target, domain.RealValued)
        self.target = target.model if isinstance(target, domain.RealValued) else target  # what the model takes
        shape = target.shape if target is not None else ()
        self.layout = _layout(spec, shape)
        if len(shape) == 4:
            hw = shape[2:4] if self.layout == "nchw" else shape[1:3]
            self.channels = shape[1] if self.layout == "nchw" else shape[3]
        elif len(shape) == 3:  # [N, H, W] grayscale without channel axis
            hw, self.channels = shape[1:3], 0
        else:
            hw, self.channels = (None, None), None
        self.size = spec.size or (tuple(hw) if all(isinstance(d, int) for d in hw) else None)
        if self.size is not None:  # before PIL allocates it: one decoded sample fits in memory
            from edgeml._io import check_alloc

            check_alloc(self.size[0] * self.size[1] * max(self.channels or 3, 1) * 4,
                        f"data spec '{spec.origin or spec.source}': one {self.size[0]}x{self.size[1]} sample")
        color = spec.color or ("rgb" if self.channels in (3, 4) else "grayscale" if self.channels in (0, 1) else None)
        self.color = color
        # images: raw pixels when asked, or by default for a uint8/int8 quantized input (what it was trained on)
        normalised = spec.norm not in (None, "raw") or any(v is not None for v in (spec.scale, spec.mean, spec.std))
        integer = self.target is not None and np.dtype(self.target.dtype).kind in "iu" and (
            self.target.dtype in domain.PIXEL_DTYPES or not domain.is_quantized(self.target))  # int16: normalise
        self.pixels = spec.raw_pixels or (integer and spec.norm == "raw") or (
            integer and spec.domain == "auto" and not normalised)
        self.paths: Counter = Counter()  # path -> samples, for data inspect
        self.data_dtypes: Counter = Counter()
        self.notes: dict[str, int] = {}
        self.clipped = 0

    def note(self, text: str, count: int = 1) -> None:
        if text not in self.notes:
            log.warning("%s", text)
        self.notes[text] = self.notes.get(text, 0) + count

    # -- images -------------------------------------------------------------------------------------------
    def image(self, img) -> np.ndarray:
        spec = self.spec
        if self.color:
            img = img.convert("RGB" if self.color == "rgb" else "L")
        if spec.crop is not None and spec.crop < 1:
            w, h = img.size
            cw, ch = round(w * spec.crop), round(h * spec.crop)
            left, top = (w - cw) // 2, (h - ch) // 2
            img = img.crop((left, top, left + cw, top + ch))
        if self.size is not None and img.size != (self.size[1], self.size[0]):
            from PIL import Image

            img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
        if self.pixels:
            x = np.asarray(img)
            if x.dtype != np.uint8:  # 16-bit or float images: values as they are
                x = x.astype(np.float32)
        else:
            x = np.asarray(img, dtype=np.float32)
            scale, mean, std = NORM_PRESETS[spec.norm or "0..1"]
            scale = spec.scale if spec.scale is not None else scale
            mean = np.asarray(spec.mean if spec.mean is not None else mean, np.float32)
            std = np.asarray(spec.std if spec.std is not None else std, np.float32)
            x = (x * scale - mean) / std
        if x.ndim == 2 and self.channels not in (0, None):
            x = x[..., None]
        if self.channels == 3 and x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if self.layout == "nchw" and x.ndim == 3:
            x = np.transpose(x, (2, 0, 1))
        return x

    # -- any value ------------------------------------------------------------------------------------------
    def convert(self, value: Any, where: str, kind: str) -> np.ndarray:
        x = self.image(value) if kind == "image" else np.asarray(value)
        if x.dtype.kind not in "biuf":
            raise DataError(f"{where}: input '{self.name}' has dtype {x.dtype}, which cannot be converted to numbers",
                            hint="store numeric arrays")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise DataError(f"{where}: input '{self.name}' contains NaN or Inf values",
                            hint="clean the data; calibration and metrics need finite values")
        if self.target is None:
            return x
        want = self.target.shape[1:] if self.target.shape else ()
        if x.shape != tuple(want) and len(x.shape) == len(want) + 1 and x.shape[0] == 1:
            x = x[0]  # a stored leading batch dimension of 1
        if len(x.shape) != len(want) or any(w is not None and w != g for w, g in zip(want, x.shape)):
            raise DataError(f"{where}: input '{self.name}' expects per-sample shape "
                            f"{_fmt(want)} (model {self.target.shape_str()}), got {_fmt(x.shape)}",
                            hint="reshape the data, or set size=/layout= in the data spec")
        return self.cast(x, where, pixels=kind == "image" and self.pixels)

    def cast(self, x: np.ndarray, where: str = "", *, pixels: bool = False) -> np.ndarray:
        data_dtype = x.dtype.name
        y, path, note, clipped = domain.to_model(x, self.target, domain=self.spec.domain, pixels=pixels,
                                                 where=where)
        self.paths[path] += 1
        self.data_dtypes[data_dtype] += 1
        self.clipped += clipped
        if note:
            self.note(note)
        if self.real and domain.is_quantized(self.target):
            return domain.dequantize(y, self.target)
        return y

    def describe_path(self) -> dict[str, Any] | None:
        """Which path this input's data took (most samples), in words, with the notes."""
        if self.target is None or not self.paths:
            return None
        path = self.paths.most_common(1)[0][0]
        data_dtype = self.data_dtypes.most_common(1)[0][0]
        text = domain.describe_path(path, data_dtype, self.target)
        if self.real and domain.is_quantized(self.target):
            text += ", then dequantized to float32 (real values)"
        notes = list(self.notes)
        if self.clipped:
            lo, hi = domain.RANGES.get(self.target.dtype, (None, None))
            notes.append(f"{self.clipped} of {sum(self.paths.values())} samples had values outside the input's "
                         f"{self.target.dtype} range {lo}..{hi} (clipped): check the normalisation")
        return {"path": path, "how": text, "model_dtype": self.target.dtype,
                "quantization": self.target.quantization.to_dict() if self.target.quantization else None,
                "notes": notes}

    @property
    def name(self) -> str:
        return self.target.name if self.target is not None else self.key


def _fmt(shape: Sequence) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _bind(source: Source, spec: DataSpec, inputs: list[TensorSpec] | None) -> dict[str, _Binding]:
    origin = spec.origin or spec.source
    if inputs is None:
        return {k: _Binding(spec, k, None) for k in source.keys}
    by_name = {t.name: t for t in inputs}
    if len(source.keys) == 1 and len(inputs) == 1:
        return {source.keys[0]: _Binding(spec, source.keys[0], inputs[0])}
    if len(source.keys) == 1 and source.keys[0] not in by_name:
        raise DataError(f"data '{origin}' provides one input but the model has {len(inputs)}: "
                        + ", ".join(by_name), hint="use an .npz keyed by the model's input names")
    missing = [n for n in by_name if n not in source.keys]
    extra = [k for k in source.keys if k not in by_name]
    if missing:
        raise DataError(f"data '{origin}' has no array for model input '{missing[0]}' "
                        f"(data has: {', '.join(source.keys)}; model needs: {', '.join(by_name)})",
                        hint="key the .npz arrays by the model's input names")
    if extra:
        raise DataError(f"data '{origin}' has array '{extra[0]}' that is not a model input "
                        f"(model inputs: {', '.join(by_name)})",
                        hint="rename or drop it; labels go in 'y' or 'labels'")
    return {k: _Binding(spec, k, by_name[k]) for k in source.keys}


def _select(source: Source, spec: DataSpec) -> np.ndarray:
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


class Dataset:
    """A sampled view of a source, shaped for a model's inputs (when given). Iterates lazily."""

    def __init__(self, spec: DataSpec, source: Source, inputs: list[TensorSpec] | None):
        self.spec, self.source = spec, source
        self.inputs = inputs
        self.bindings = _bind(source, spec, inputs)
        self.indices = _select(source, spec)
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
        label = None if self.source.labels is None else self.source.labels[i]
        label = label.item() if getattr(label, "ndim", 0) == 0 and hasattr(label, "item") else label  # one-hot rows stay
        return Sample(feeds, label, where)

    def __iter__(self) -> Iterator[Sample]:
        for j in range(len(self)):
            yield self.sample(j)

    def validate(self) -> "Dataset":
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
                        q = t.quantization
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
        """Batched feeds (with a leading batch axis) and labels, for evaluation and training."""
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
                arrays = {n: _float32(s.feeds[n][None]) for n in self.input_names}
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
                return None if s is None else {n: s.feeds[n][None] for n in names}

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


def class_ids(labels: np.ndarray) -> np.ndarray:
    """One-hot label rows as class indices (other labels as they are)."""
    if labels.ndim == 2 and labels.size and np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(1) == 1):
        return labels.argmax(1)
    return labels


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
    """Open, sample and (by default) validate a dataset against a model's inputs."""
    if isinstance(spec, str):
        spec = DataSpec.parse(spec)
    default_key = inputs[0].name if inputs else "input"
    ds = Dataset(spec, open_source(spec, default_key), inputs)
    return ds.validate() if validate else ds
