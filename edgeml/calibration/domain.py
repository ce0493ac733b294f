"""How data values reach one model input: the single rule for integer (quantized) inputs.

A quantized input (int8/uint8/int16 with a scale and a zero point) takes integers ``q`` that stand for
the real values ``scale * (q - zero_point)``. Data reaches it by exactly one of these paths, decided
per input from the data's dtype and the spec's ``domain`` (auto | real | quantized):

    as-is     data already in the input's dtype is in the model's domain: passed through unchanged
    quantize  float data holds real values: q = round(x / scale + zero_point), clipped to the range
    pixels    image pixels 0..255 fill the input's integer range: uint8 as they are, int8 as p - 128.
              That is what quantized image models are trained on (scale 1/255 zp 0 or -128 for 0..1,
              scale 1/128 zp 128 or 0 for -1..1): the default for images into any integer input (also
              one without quantization, e.g. an ONNX uint8 image input) when no norm/scale is set
    shift     uint8 data for an int8 input (int8 for uint8): the same 128 zero-point shift as pixels
    integers  other integer data whose values fit the input's range: read as the model's integers
    cast      inputs that are not quantized: converted to the input's dtype

``domain=real`` forces ``quantize`` (values are real numbers whatever their dtype); ``domain=quantized``
forces the values to be read as the model's integers (range-checked). Ambiguous choices are noted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeml.errors import DataError
from edgeml.formats.common import Quantization, TensorSpec

RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
PIXEL_DTYPES = ("uint8", "int8")


def is_quantized(t: TensorSpec) -> bool:
    q = t.quantization
    return q is not None and t.dtype in RANGES and bool(q.scale)


def params(t: TensorSpec) -> Quantization:
    """The scale and zero point of a quantized input (callers check :func:`is_quantized` first)."""
    if t.quantization is None:
        raise DataError(f"input '{t.name}' ({t.dtype}) has no scale/zero point",
                        hint="the model's input is not quantized; pass real values")
    return t.quantization


def describe_path(path: str, data_dtype: str, t: TensorSpec) -> str:
    """One human line for a path, e.g. ``quantized with scale 0.58, zero point 83``."""
    if path == "as-is":
        return f"passed through: {data_dtype} data is already in the model's {t.dtype} domain"
    if path == "quantize":
        q = params(t)
        return f"{data_dtype} real values quantized with the model's scale {q.scale:.6g}, zero point {q.zero_point}"
    if path == "pixels":
        text = "raw pixels 0..255 as int8 p - 128" if t.dtype == "int8" else f"raw pixels 0..255 as {t.dtype}"
        if is_quantized(t) and t.dtype in PIXEL_DTYPES:
            shift = -128 if t.dtype == "int8" else 0
            q = params(t)
            lo, hi = ((shift - q.zero_point) * q.scale, (255 + shift - q.zero_point) * q.scale)
            text += f", which the model reads as real values {lo:.4g}..{hi:.4g}"
        return text
    if path == "shift":
        return f"{data_dtype} shifted by {-128 if t.dtype == 'int8' else 128} to {t.dtype}"
    if path == "integers":
        return f"{data_dtype} values read as the model's {t.dtype} integers"
    return f"{data_dtype} cast to {t.dtype}"


def to_model(x: np.ndarray, t: TensorSpec, *, domain: str = "auto", pixels: bool = False, where: str = "",
             ) -> tuple[np.ndarray, str, str | None, bool]:
    """``x`` as input ``t`` takes it: ``(array, path, note, clipped)``; ``note`` flags an ambiguous choice."""
    dtype, name = t.dtype, t.name
    if pixels and np.dtype(dtype).kind in "iu" and (dtype in PIXEL_DTYPES or not is_quantized(t)):
        if dtype == "int8":
            return (x.astype(np.int16) - 128).astype(np.int8), "pixels", None, False
        return x.astype(dtype), "pixels", None, False
    if not is_quantized(t):
        return _plain(x, t, pixels)
    if x.dtype.kind == "b":
        x = x.astype(np.uint8)
    q = params(t)
    lo, hi = RANGES[dtype]
    if domain == "real" or (domain == "auto" and x.dtype.kind == "f"):
        scaled = np.round(x.astype(np.float64) / q.scale + q.zero_point)
        clipped = bool(scaled.size and (scaled.min() < lo or scaled.max() > hi))
        return np.clip(scaled, lo, hi).astype(dtype), "quantize", None, clipped
    if x.dtype.name == dtype:
        return x, "as-is", None, False
    if domain == "auto" and {x.dtype.name, dtype} == set(PIXEL_DTYPES):
        shift = -128 if dtype == "int8" else 128
        why = (f"{x.dtype} data for {dtype} input '{name}': shifted by {shift} (read as 0..255 codes, the "
               f"uint8/int8 zero-point shift); if the values are real numbers set domain=real, if they "
               f"are already the model's integers store them as {dtype}")
        return (x.astype(np.int16) + shift).astype(dtype), "shift", why, False
    if x.dtype.kind == "f" and x.size and not np.all(x == np.round(x)):
        raise DataError(f"{where}: input '{name}': domain=quantized but the data has fractional values",
                        hint="quantized data must be whole numbers; use domain=real for real values")
    if x.size and (x.min() < lo or x.max() > hi):
        raise DataError(f"{where}: input '{name}' ({dtype}, scale {q.scale:.6g}, zero point {q.zero_point}): "
                        f"{x.dtype} values {x.min():g}..{x.max():g} do not fit the model's {dtype} range {lo}..{hi}",
                        hint=f"if they are real values set domain=real (quantized with the model's scale); "
                             f"else store them as {dtype}")
    note: str | None = None
    if domain == "auto":
        note = (f"{x.dtype} data for {dtype} input '{name}': read as the model's integers (values fit {lo}..{hi}); "
                f"set domain=real if they are real values, or store them as {dtype} to silence this")
    return x.astype(dtype), "integers", note, False


def _plain(x: np.ndarray, t: TensorSpec, pixels: bool) -> tuple[np.ndarray, str, str | None, bool]:
    dtype = t.dtype
    note = None
    if dtype.startswith("float") and x.dtype.name in RANGES and not pixels:
        note = (f"{x.dtype} data fed to {dtype} input '{t.name}' as plain numbers: this input has no scale to "
                f"dequantize them; if they are quantized features, store the real values")
    if dtype in RANGES:
        lo, hi = RANGES[dtype]
        if x.dtype.kind == "f":
            x = np.round(x)
        clipped = bool(x.size and (x.min() < lo or x.max() > hi))
        return np.clip(x, lo, hi).astype(dtype), "cast", note, clipped
    try:
        return x.astype(dtype, copy=False), "cast", note, False
    except TypeError as exc:
        raise DataError(f"input '{t.name}': cannot convert {x.dtype} to the model's {dtype}") from exc


def integral_in_range(x: np.ndarray, t: TensorSpec) -> bool:
    """Float data of whole numbers inside a quantized input's range: real values, or stored quantized values?"""
    lo, hi = RANGES[t.dtype]
    return bool(x.size) and bool(np.all(x == np.round(x))) and float(x.min()) >= lo and float(x.max()) <= hi


def dequantize(x: np.ndarray, t: TensorSpec) -> np.ndarray:
    q = params(t)
    return ((x.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)).astype(np.float32)


@dataclass(frozen=True)
class RealValued(TensorSpec):
    """A quantized input seen as the real values it stands for (to feed one dataset to a float model and
    its quantized twin): data takes the path above to the model's integers, then is dequantized to
    float32, which a session quantizes back to exactly the same integers."""

    model_dtype: str = "float32"

    @property
    def model(self) -> TensorSpec:
        return TensorSpec(self.name, self.shape, self.model_dtype, self.quantization)


def real_valued(inputs: list[TensorSpec]) -> list[TensorSpec]:
    """``inputs`` with every quantized input replaced by its real-valued view (float32)."""
    return [RealValued(t.name, t.shape, "float32", t.quantization, model_dtype=t.dtype) if is_quantized(t) else t
            for t in inputs]
