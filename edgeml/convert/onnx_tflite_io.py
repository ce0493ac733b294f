"""ONNX -> TFLite, step 3: the IO contract between the ONNX model and its channel-last TFLite model.

onnx2tf turns NCHW graphs into NHWC ones (no Transpose around every conv), so the TFLite model's 3-D/4-D/5-D
inputs and outputs are channel-last. ``io_contract`` pairs each TFLite input/output with the ONNX one and
works out the axis permutation between them (``IOTensor``); ``LayoutAdapter`` presents the TFLite session
with the ONNX model's names and layouts, so the verification (and quantize's accuracy check) feed both
models the same data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.convert.onnx_tflite_prepare import keep_onnx_hint
from edgeml.errors import OnnxToTFLiteError


@dataclass
class IOTensor:
    """One TFLite input/output and how it relates to the ONNX one (``perm``: ONNX axes in TFLite order)."""

    name: str
    onnx_name: str
    shape: list[int]
    onnx_shape: list[int]
    dtype: str
    layout: str  # e.g. "NHWC (ONNX NCHW)" or "as ONNX"
    perm: list[int] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _channel_last(n: int) -> list[int]:
    return [0, *range(2, n), 1]


def match_layout(onnx_shape: list[int], tfl_shape: list[int], nhwc_hint: bool | None) -> list[int] | None:
    """The permutation p with tfl_shape == onnx_shape[p] (identity or channel-last); None if neither fits."""
    ident = list(range(len(onnx_shape)))
    last = _channel_last(len(onnx_shape)) if len(onnx_shape) >= 3 else ident
    fits = [p for p in (ident, last) if len(tfl_shape) == len(onnx_shape)
            and [onnx_shape[i] for i in p] == list(tfl_shape)]
    if not fits:
        return None
    if len(fits) == 2 and fits[0] != fits[1] and nhwc_hint is not None:
        return last if nhwc_hint else ident
    return fits[-1] if len(fits) == 2 and nhwc_hint is None else fits[0]


def _layout_name(perm: list[int] | None) -> str:
    if perm is None or perm == sorted(perm):
        return "as ONNX"
    letters = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}.get(len(perm))
    return f"{letters[1]} (ONNX {letters[0]})" if letters else f"axes {perm} of ONNX"


class LayoutAdapter:
    """Presents a channel-last TFLite session with the ONNX model's names and layouts."""

    def __init__(self, session: Any, inputs: list[IOTensor], outputs: list[IOTensor], onnx_specs: Any):
        self.session, self._in, self._out = session, inputs, outputs
        self.inputs, self.outputs = onnx_specs

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        tfl = {}
        for t in self._in:
            x = np.asarray(feeds[t.onnx_name])
            tfl[t.name] = np.transpose(x, t.perm) if t.perm else x
        res = self.session.run(tfl, raw=raw)
        out = {}
        for t in self._out:
            y = np.asarray(res[t.name])
            out[t.onnx_name] = np.transpose(y, np.argsort(t.perm)) if t.perm else y
        return out


def io_contract(reference: Any, test: Any, layouts: dict[str, bool], ref_shapes: dict[str, list[int]],
                model_path: Path) -> tuple[list[IOTensor], list[IOTensor]]:
    """Pair TFLite and ONNX inputs/outputs (by name, else by order) and work out each one's layout."""
    def pair(ref_specs, test_specs, kind: str, shapes_of, hints) -> list[IOTensor]:
        if len(ref_specs) != len(test_specs):
            raise OnnxToTFLiteError(f"{model_path}: the TFLite model has {len(test_specs)} {kind}s, the ONNX model "
                                    f"{len(ref_specs)}", hint=keep_onnx_hint(model_path))
        by_name = {t.name.split(":")[0].removeprefix("serving_default_"): t for t in test_specs}
        tests = [by_name[r.name] for r in ref_specs] if all(r.name in by_name for r in ref_specs) else list(test_specs)
        out = []
        for r, t in zip(ref_specs, tests):
            oshape = shapes_of(r)
            perm = match_layout(oshape, list(t.shape), hints.get(r.name))
            if perm is None:
                raise OnnxToTFLiteError(f"{model_path}: TFLite {kind} {t.name} {list(t.shape)} does not match ONNX "
                                        f"{kind} {r.name} {oshape} in any layout", hint=keep_onnx_hint(model_path))
            ident = perm == list(range(len(perm)))
            out.append(IOTensor(t.name, r.name, list(t.shape), oshape, t.dtype, _layout_name(perm),
                                None if ident else perm))
        return out

    ins = pair(reference.inputs, test.inputs, "input", lambda r: ref_shapes[r.name], {})
    outs = pair(reference.outputs, test.outputs, "output", lambda r: ref_shapes[r.name], layouts)
    return ins, outs


__all__ = ["IOTensor", "LayoutAdapter", "io_contract", "match_layout"]
