"""LiteRT (TFLite) sessions; the interpreter loading (with the fallbacks a board may need:
``ai_edge_litert``, ``tflite_runtime``, ``tensorflow.lite``) lives in :mod:`edgeml._litert`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeml._litert import interpreter_class, load_interpreter
from edgeml._quiet import native_stderr_captured
from edgeml.errors import MissingDependencyError, ModelLoadError

__all__ = ["LiteRTSession", "interpreter_class", "load_interpreter", "load_delegate"]


class LiteRTSession:
    """A LiteRT interpreter behind the Session interface (signature names when the model has one)."""

    def __init__(self, path: str | Path, *, threads: int | None = None, delegate: str | None = None,
                 preserve_all_tensors: bool = False):
        from edgeml.formats.tflite import inspect as inspect_tflite

        self.path = Path(path)
        _, self.runtime = interpreter_class()
        delegates = [load_delegate(delegate)] if delegate else None
        info = inspect_tflite(self.path, validate=False)
        # a model with dynamic inputs is allocated at the first real shape (set_inputs): a delegate such as
        # XNNPACK may refuse to prepare it at the placeholder size 1
        from edgeml.formats.shapes import resolve

        self._allocated = resolve(info.inputs).complete
        self.interpreter = load_interpreter(self.path, num_threads=threads, experimental_delegates=delegates,
                                            preserve_all_tensors=preserve_all_tensors, allocate=self._allocated)
        self.inputs, self.outputs = info.inputs, info.outputs
        details_in = self.interpreter.get_input_details()
        details_out = self.interpreter.get_output_details()
        # inspect() lists IO in subgraph order, as the interpreter does
        self._in_index = {t.name: d["index"] for t, d in zip(self.inputs, details_in)}
        self._out_index = {t.name: d["index"] for t, d in zip(self.outputs, details_out)}
        self._in_shape = {t.name: tuple(d["shape"]) for t, d in zip(self.inputs, details_in)}

    def set_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        from edgeml.formats.common import quantize

        resized = False
        for t in self.inputs:
            x = np.asarray(feeds[t.name])
            if tuple(x.shape) != self._in_shape[t.name]:
                self.interpreter.resize_tensor_input(self._in_index[t.name], list(x.shape))
                self._in_shape[t.name] = tuple(x.shape)
                resized = True
        if resized or not self._allocated:
            try:
                self.interpreter.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise ModelLoadError(f"{self.path}: the LiteRT interpreter cannot prepare the model at input shapes "
                                     f"{[list(np.shape(feeds[t.name])) for t in self.inputs]}: "
                                     f"{' '.join(str(exc).split())}",
                                     hint="check the input shapes (`input_shapes`, or the data) fit the model") from exc
            self._allocated = True
        for t in self.inputs:
            self.interpreter.set_tensor(self._in_index[t.name], quantize(np.asarray(feeds[t.name]), t.dtype,
                                                                         t.quantization))

    def get_outputs(self, *, raw: bool = False) -> dict[str, np.ndarray]:
        from edgeml.formats.common import dequantize

        out = {}
        for t in self.outputs:
            y = self.interpreter.get_tensor(self._out_index[t.name])
            out[t.name] = y if raw else dequantize(y, t.quantization)
        return out

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        self.set_inputs(feeds)
        self.interpreter.invoke()
        return self.get_outputs(raw=raw)


EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


def load_delegate(name: str):
    """Load a delegate by name ('edgetpu') or by shared-library path."""
    import platform

    library = EDGETPU_LIBRARIES.get(platform.system(), "libedgetpu.so.1") if name == "edgetpu" else name
    loaders = []
    try:
        from ai_edge_litert.interpreter import load_delegate as _ld

        loaders.append(_ld)
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import load_delegate as _ld2  # type: ignore[import-not-found]

        loaders.append(_ld2)
    except ImportError:
        pass
    last: Exception | None = None
    for loader in loaders:
        try:
            with native_stderr_captured():
                return loader(library)
        except (ValueError, OSError, RuntimeError) as exc:
            last = exc
    hint = ("install the Edge TPU runtime (libedgetpu1-std from Coral's apt repository) and plug in the device"
            if name == "edgetpu" else f"check that {library} exists and matches this LiteRT version")
    raise MissingDependencyError(f"cannot load delegate '{library}' ({last})", hint=hint)
