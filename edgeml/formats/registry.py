"""One handler per model format: what reads it, whether it needs TensorFlow, whether it takes input shapes,
which formats ``convert`` makes from it.

A new format (a compiled Edge TPU file, ``.pt2``) is one detector in :mod:`edgeml.formats.detect`, one
reader module here, one opener in :mod:`edgeml.runtimes.session`, and its conversions (route names, run by
``edgeml.convert.routes``); ``ModelArtifact.inspect``, ``open_session`` and ``convert`` look the format up
instead of branching on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError
from edgeml.formats.common import Inspection
from edgeml.formats.detect import ModelFormat


@dataclass(frozen=True)
class FormatHandler:
    """How edgeml handles one model format."""

    format: ModelFormat
    #: the module under ``edgeml.formats`` whose ``inspect(path, ...)`` reads it
    reader: str
    #: its reader can fix dynamic input dimensions (``input_shapes``)
    takes_input_shapes: bool
    #: how messages name models of this format
    label: str
    #: the conversions ``convert`` makes from it: target format -> route name (``edgeml.convert.routes.ROUTES``;
    #: the formats layer names them, the convert stage runs them)
    converts_to: Mapping[str, str] = field(default_factory=dict)
    #: target format -> (message, hint) where converting to it is refused
    refusals: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def needs_tensorflow(self) -> bool:
        """Loading it imports TensorFlow (the ``[tf]`` extra)."""
        return self.format.needs_tensorflow

    def inspect(self, path: Path, *, input_shapes: Any = None) -> Inspection:
        """Read ``path`` with this format's reader (``input_shapes`` only where the reader takes them)."""
        if input_shapes and not self.takes_input_shapes:
            from edgeml.formats.shapes import ShapeError

            raise ShapeError(f"{path}: `input_shapes` is not supported for {self.label}",
                             hint="convert it (`edgeml.convert(..., to=\"tflite\")`) and give `input_shapes` to that")
        reader = importlib.import_module(f"edgeml.formats.{self.reader}")
        if input_shapes:
            return reader.inspect(path, input_shapes=input_shapes)
        return reader.inspect(path)

    def conversion(self, to: str, path: Path) -> str:
        """The route name that converts a model of this format at ``path`` to ``to``; EdgeMLError where refused."""
        if to in self.converts_to:
            return self.converts_to[to]
        message, hint = self.refusals.get(to, (f"converting {self.label} to {to} is not supported", ""))
        raise EdgeMLError(f"{path}: {message}", hint=hint or None)


_FROM_KERAS = {"tflite": "tflite-converter", "onnx": "tf2onnx-keras"}
HANDLERS: dict[ModelFormat, FormatHandler] = {h.format: h for h in (
    FormatHandler(ModelFormat.KERAS, "keras", takes_input_shapes=True, label="Keras models", converts_to=_FROM_KERAS),
    FormatHandler(ModelFormat.H5, "keras", takes_input_shapes=True, label="Keras .h5 models",
                  converts_to=_FROM_KERAS),
    FormatHandler(ModelFormat.SAVEDMODEL, "savedmodel", takes_input_shapes=False, label="SavedModel directories",
                  converts_to={"tflite": "tflite-converter", "onnx": "tf2onnx-savedmodel"}),
    FormatHandler(ModelFormat.TFLITE, "tflite", takes_input_shapes=True, label="TFLite models",
                  converts_to={"onnx": "tf2onnx-tflite"},
                  refusals={"tflite": ("the model is already TFLite",
                                        "use `to=\"onnx\"`, or `edgeml.quantize(MODEL)` for int8")}),
    FormatHandler(ModelFormat.ONNX, "onnx", takes_input_shapes=True, label="ONNX models",
                  converts_to={"onnx": "onnx-as-is", "tflite": "onnx2tf"}),
)}


def handler(fmt: ModelFormat) -> FormatHandler:
    """The handler of ``fmt``."""
    try:
        return HANDLERS[fmt]
    except KeyError:
        raise EdgeMLError(f"no handler for model format {fmt}") from None
