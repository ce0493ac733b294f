"""ModelArtifact: a model on disk, its format detected from content, and its (cached) inspection."""

from __future__ import annotations

import enum
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import MissingDependencyError, ModelLoadError
from edgeml.formats.common import Inspection

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SUPPORTED = "supported: .keras, Keras 2 .h5, SavedModel directory, .tflite, .onnx"


class ModelFormat(str, enum.Enum):
    KERAS = "keras"
    H5 = "h5"
    SAVEDMODEL = "savedmodel"
    TFLITE = "tflite"
    ONNX = "onnx"

    @property
    def needs_tensorflow(self) -> bool:
        return self in (ModelFormat.KERAS, ModelFormat.H5, ModelFormat.SAVEDMODEL)

    def __str__(self) -> str:
        return self.value


def _is_hdf5(head: bytes, path: Path) -> bool:
    if head.startswith(_HDF5_MAGIC):
        return True
    # HDF5 allows a user block: the signature may sit at 512, 1024, 2048, ... bytes.
    with path.open("rb") as fh:
        offset = 512
        while True:
            fh.seek(offset)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return False
            if chunk == _HDF5_MAGIC:
                return True
            offset *= 2


# (field number, wire type) of onnx.ModelProto's fields: ir_version, producer_name, producer_version,
# domain, model_version, doc_string, graph, opset_import, metadata_props, training_info, functions.
_ONNX_FIELDS = {(1, 0), (2, 2), (3, 2), (4, 2), (5, 0), (6, 2), (7, 2), (8, 2), (14, 2), (20, 2), (25, 2)}


def _looks_like_onnx(head: bytes) -> bool:
    """ONNX has no magic number: the file must start with the protobuf tag of a ModelProto field."""
    if not head:
        return False
    tag = head[0]
    return (tag >> 3, tag & 7) in _ONNX_FIELDS


def detect_format(path: str | Path) -> ModelFormat:
    """Detect a model's format from its content (never from the extension alone)."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file or directory", hint="check the model path")
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return ModelFormat.SAVEDMODEL
        raise ModelLoadError(
            f"{p}: directory is not a SavedModel (no saved_model.pb inside)",
            hint="pass a SavedModel directory or a model file; " + _SUPPORTED,
        )
    try:
        with p.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read file ({exc.strerror})", hint="check file permissions") from exc
    if not head:
        raise ModelLoadError(f"{p}: file is empty", hint="re-export or re-download the model")
    if head[4:8] == b"TFL3":
        return ModelFormat.TFLITE
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(p) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            names = None
        if names is not None:
            if "config.json" in names:
                return ModelFormat.KERAS
            raise ModelLoadError(f"{p}: zip archive without a Keras config.json", hint=_SUPPORTED)
        raise ModelLoadError(f"{p}: truncated or corrupt zip archive (a .keras file?)",
                             hint="re-save the model with model.save('model.keras')")
    if _is_hdf5(head, p):
        return ModelFormat.H5
    if _looks_like_onnx(head):
        return ModelFormat.ONNX
    raise ModelLoadError(f"{p}: unknown model format (not TFLite, ONNX, Keras, HDF5 or SavedModel)",
                         hint=_SUPPORTED)


@dataclass
class ModelArtifact:
    """A model on disk. ``format`` is detected from the file's content."""

    path: Path
    format: ModelFormat
    _inspection: Inspection | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path) -> "ModelArtifact":
        p = Path(path)
        return cls(p, detect_format(p))

    def inspect(self, *, input_shapes: Any = None) -> Inspection:
        """Read the model and describe it (cached on the artifact).

        ``input_shapes`` (``{"name": (d0, d1, ...)}`` or ``["name=d0,d1,..."]``, see
        edgeml.formats.shapes) fix dynamic input dimensions for the MAC count; not cached.
        """
        if input_shapes:
            return self._read(input_shapes)
        if self._inspection is None:
            self._inspection = self._read(None)
        return self._inspection

    def _read(self, input_shapes: Any) -> Inspection:
        if self.format is ModelFormat.TFLITE:
            from edgeml.formats import tflite as reader
        elif self.format is ModelFormat.ONNX:
            from edgeml.formats import onnx as reader
        elif self.format is ModelFormat.SAVEDMODEL:
            from edgeml.formats import savedmodel as reader
        else:
            from edgeml.formats import keras as reader
        if input_shapes and self.format is ModelFormat.SAVEDMODEL:
            from edgeml.formats.shapes import ShapeError

            raise ShapeError(f"{self.path}: --input-shape is not supported for SavedModel directories",
                             hint="convert it (edgeml convert ... --to tflite) and give --input-shape to that")
        try:
            if input_shapes:
                return reader.inspect(self.path, input_shapes=input_shapes)
            return reader.inspect(self.path)
        except MissingDependencyError as exc:
            if str(self.path) in exc.message:
                raise
            raise MissingDependencyError(f"{self.path}: {exc.message}", hint=exc.hint) from exc


def inspect_model(path: str | Path, *, input_shapes: Any = None) -> Inspection:
    """Detect the format of ``path`` and inspect it (MACs at ``input_shapes`` for dynamic inputs)."""
    return ModelArtifact.open(path).inspect(input_shapes=input_shapes)
