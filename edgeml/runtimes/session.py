"""One Session interface over every runtime: feed floats, get floats back.

A session's ``inputs``/``outputs`` are TensorSpecs. ``run(feeds)`` takes ``{input name: array with batch
axis}``. Float data fed to an int8/uint8 input is quantized with the model's own scale/zero-point; data
already in the input's dtype is passed through. Quantized outputs are dequantized unless ``raw=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# the quantization maths live on the quantization-params type (edgeml.formats.common); re-exported here
from edgeml.formats.common import TensorSpec, dequantize, quantize  # noqa: F401


class Session(Protocol):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    runtime: str

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]: ...


class KerasSession:
    runtime = "keras"

    def __init__(self, model: Any):
        from edgeml.formats.keras import io_specs

        self.model = model
        self.inputs, self.outputs = io_specs(model)

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        args = [feeds[t.name] for t in self.inputs]
        out = self.model(args[0] if len(args) == 1 else args, training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        if isinstance(out, dict):
            outs = [out[t.name] for t in self.outputs]
        return {t.name: np.asarray(o) for t, o in zip(self.outputs, outs)}


class SavedModelSession:
    runtime = "tensorflow"

    def __init__(self, path: Path):
        from edgeml.formats.savedmodel import load

        self._loaded, self.fn = load(path)
        sig = self.fn.structured_input_signature[1]
        self.inputs = [TensorSpec(n, tuple(s.shape.as_list()), s.dtype.name) for n, s in sorted(sig.items())]
        outs = self.fn.structured_outputs
        self.outputs = [TensorSpec(n, tuple(t.shape.as_list()), t.dtype.name) for n, t in sorted(outs.items())]

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        out = self.fn(**{t.name: feeds[t.name] for t in self.inputs})
        return {t.name: np.asarray(out[t.name]) for t in self.outputs}


def _open_litert(path: Path, threads: int | None, providers: list[str] | None, delegate: str | None) -> Session:
    from edgeml.runtimes.litert import LiteRTSession

    return LiteRTSession(path, threads=threads, delegate=delegate)


def _open_ort(path: Path, threads: int | None, providers: list[str] | None, delegate: str | None) -> Session:
    from edgeml.runtimes.onnxruntime import OrtSession

    return OrtSession(path, threads=threads, providers=providers)


def _open_savedmodel(path: Path, threads: int | None, providers: list[str] | None, delegate: str | None) -> Session:
    return SavedModelSession(path)


def _open_keras(path: Path, threads: int | None, providers: list[str] | None, delegate: str | None) -> Session:
    from edgeml.formats.keras import load

    return KerasSession(load(path))


#: the runtime that opens each model format (edgeml.formats.registry has what reads it)
OPENERS: dict[str, Callable[[Path, int | None, list[str] | None, str | None], Session]] = {
    "tflite": _open_litert, "onnx": _open_ort, "savedmodel": _open_savedmodel, "keras": _open_keras, "h5": _open_keras,
}


def open_session(model: Any, *, threads: int | None = None, providers: list[str] | None = None,
                 delegate: str | None = None) -> Session:
    """Open a session on a model path/artifact (any format) or an in-memory Keras model."""
    from edgeml.formats.detect import ModelFormat, detect_format

    if isinstance(model, (str, Path)):
        path, fmt = Path(model), detect_format(model)
    elif isinstance(getattr(model, "format", None), ModelFormat) and isinstance(getattr(model, "path", None), Path):
        path, fmt = model.path, model.format  # a ModelArtifact (a layer above: not imported here)
    else:
        return KerasSession(model)
    return OPENERS[fmt.value](path, threads, providers, delegate)
