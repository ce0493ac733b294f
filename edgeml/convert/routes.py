"""The conversions ``convert`` runs, by the route names in the format registry (``FormatHandler.converts_to``).

A route makes the output model from a source artifact: TFLite routes return the file's bytes, ONNX routes an
ONNX ``ModelProto`` (simplified and verified by ``convert``). ``onnx2tf`` is a whole route of its own
(``edgeml.convert.onnx_tflite``: layout, verification, its own result); ``convert`` hands it the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeml.artifact import ModelArtifact
from edgeml.errors import EdgeMLError
from edgeml.formats.registry import handler

Say = Callable[[str], None]


def _tflite_converter(art: ModelArtifact, keras_model: Any, *, opset: int, float16: bool, say: Say) -> bytes:
    from edgeml.convert.tflite import to_tflite

    say("converting to TFLite (SavedModel export, TFLite converter)")
    return to_tflite(art.path, art.format.value, float16=float16, keras_model=keras_model)


def _onnx_as_is(art: ModelArtifact, keras_model: Any, *, opset: int, float16: bool, say: Say) -> Any:
    from edgeml.formats.onnx import load

    return load(art.path)


def _tf2onnx_tflite(art: ModelArtifact, keras_model: Any, *, opset: int, float16: bool, say: Say) -> Any:
    from edgeml.convert import onnx as conv

    say(f"converting to ONNX (tf2onnx, opset {opset})")
    return conv.tflite_to_onnx(art.path, opset=opset)


def _tf2onnx_savedmodel(art: ModelArtifact, keras_model: Any, *, opset: int, float16: bool, say: Say) -> Any:
    from edgeml.convert import onnx as conv

    say(f"converting to ONNX (tf2onnx, opset {opset})")
    return conv.savedmodel_to_onnx(art.path, opset=opset)


def _tf2onnx_keras(art: ModelArtifact, keras_model: Any, *, opset: int, float16: bool, say: Say) -> Any:
    from edgeml.convert import onnx as conv

    say(f"converting to ONNX (tf2onnx, opset {opset})")
    return conv.keras_to_onnx(keras_model, opset=opset)


@dataclass(frozen=True)
class Route:
    """One conversion: ``make`` builds the output (None: a whole route, ``edgeml.convert.onnx_tflite``)."""

    name: str
    to: str
    make: Callable[..., Any] | None
    #: how messages name the conversion
    label: str


ROUTES: dict[str, Route] = {r.name: r for r in (
    Route("tflite-converter", "tflite", _tflite_converter, "Keras/SavedModel -> TFLite"),
    Route("onnx2tf", "tflite", None, "ONNX -> TFLite"),
    Route("onnx-as-is", "onnx", _onnx_as_is, "ONNX -> ONNX"),
    Route("tf2onnx-tflite", "onnx", _tf2onnx_tflite, "TFLite -> ONNX"),
    Route("tf2onnx-savedmodel", "onnx", _tf2onnx_savedmodel, "SavedModel -> ONNX"),
    Route("tf2onnx-keras", "onnx", _tf2onnx_keras, "Keras -> ONNX"),
)}


def route_for(art: ModelArtifact, to: str) -> Route:
    """The route from ``art``'s format to ``to``, looked up in the format registry; EdgeMLError where refused."""
    name = handler(art.format).conversion(to, art.path)
    try:
        return ROUTES[name]
    except KeyError:
        raise EdgeMLError(f"no conversion route named {name!r}") from None
