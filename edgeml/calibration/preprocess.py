"""How one source key becomes one model input: image decoding, resizing, normalisation and layout, shape
checks, and the value path into the model's domain (:mod:`edgeml.calibration.domain`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeml.calibration import domain
from edgeml.calibration.sources import Source
from edgeml.calibration.spec import NORM_PRESETS, DataSpec
from edgeml.errors import DataError
from edgeml.formats.common import TensorSpec

log = logging.getLogger("edgeml.calibration.dataset")


def _layout(spec: DataSpec, shape: tuple) -> str:
    if spec.layout:
        return spec.layout
    if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        return "nchw"
    return "nhwc"


class Binding:
    """How one source key becomes one model input (the value path: edgeml.calibration.domain)."""

    def __init__(self, spec: DataSpec, key: str, target: TensorSpec | None):
        self.spec, self.key = spec, key
        self.real = isinstance(target, domain.RealValued)
        self.target = target.model if isinstance(target, domain.RealValued) else target  # what the model takes
        shape = target.shape if target is not None else ()
        # a scalar input, or one whose first axis is a fixed size other than 1 (a recurrent state [2, batch, 128]):
        # it has no leading batch axis, so each sample is the whole input, fed as stored
        self.whole = target is not None and (len(shape) == 0 or (isinstance(shape[0], int) and shape[0] != 1))
        self.layout = _layout(spec, shape)
        if len(shape) == 4:
            hw = shape[2:4] if self.layout == "nchw" else shape[1:3]
            self.channels = shape[1] if self.layout == "nchw" else shape[3]
        elif len(shape) == 3:  # [N, H, W] grayscale without channel axis
            hw, self.channels = shape[1:3], 0
        else:
            hw, self.channels = (None, None), None
        dims = [d for d in hw if isinstance(d, int)]
        self.size: tuple[int, ...] | None = spec.size or (tuple(dims) if len(dims) == len(hw) else None)
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

            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        if self.pixels:
            x = np.asarray(img)
            if x.dtype != np.uint8:  # 16-bit or float images: values as they are
                x = x.astype(np.float32)
        else:
            x = np.asarray(img, dtype=np.float32)
            scale, mean_, std_ = NORM_PRESETS[spec.norm or "0..1"]
            scale = spec.scale if spec.scale is not None else scale
            mean = np.asarray(spec.mean if spec.mean is not None else mean_, np.float32)
            std = np.asarray(spec.std if spec.std is not None else std_, np.float32)
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
        if self.whole:
            return self.cast(self._whole_shape(x, where), where)
        want = self.target.shape[1:] if self.target.shape else ()
        if x.shape != tuple(want) and len(x.shape) == len(want) + 1 and x.shape[0] == 1:
            x = x[0]  # a stored leading batch dimension of 1
        if len(x.shape) != len(want) or any(w is not None and w != g for w, g in zip(want, x.shape)):
            raise DataError(f"{where}: input '{self.name}' expects per-sample shape "
                            f"{_fmt(want)} (model {self.target.shape_str()}), got {_fmt(x.shape)}",
                            hint="reshape the data, or set size=/layout= in the data spec")
        return self.cast(x, where, pixels=kind == "image" and self.pixels)

    def _whole_shape(self, x: np.ndarray, where: str) -> np.ndarray:
        assert self.target is not None, "_whole_shape() needs a model input"  # convert() returns early without one
        want = tuple(self.target.shape)
        if len(x.shape) != len(want) or any(w is not None and w != g for w, g in zip(want, x.shape)):
            why = "a scalar" if not want else f"its first axis is {want[0]}, not a batch axis"
            raise DataError(f"{where}: input '{self.name}' {self.target.shape_str()} is fed whole ({why}): each "
                            f"sample must have the model input's shape {_fmt(want)}, got {_fmt(x.shape)}",
                            hint="store every sample with the input's full rank, its dynamic axes set (e.g. batch 1)")
        return x

    def cast(self, x: np.ndarray, where: str = "", *, pixels: bool = False) -> np.ndarray:
        assert self.target is not None, "cast() needs a model input"  # convert() returns early without one
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


def bind(source: Source, spec: DataSpec, inputs: list[TensorSpec] | None) -> dict[str, Binding]:
    origin = spec.origin or spec.source
    if inputs is None:
        return {k: Binding(spec, k, None) for k in source.keys}
    by_name = {t.name: t for t in inputs}
    if len(source.keys) == 1 and len(inputs) == 1:
        return {source.keys[0]: Binding(spec, source.keys[0], inputs[0])}
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
    return {k: Binding(spec, k, by_name[k]) for k in source.keys}
