"""ModelArtifact: a model on disk, its format detected from content, and its (cached) inspection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import MissingDependencyError
from edgeml.formats.common import Inspection
from edgeml.formats.detect import ModelFormat, detect_format

__all__ = ["ModelArtifact", "ModelFormat", "detect_format", "inspect_model"]


@dataclass
class ModelArtifact:
    """A model on disk. ``format`` is detected from the file's content."""

    path: Path
    format: ModelFormat
    _inspection: Inspection | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path) -> ModelArtifact:
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
        from edgeml.formats.registry import handler

        try:
            return handler(self.format).inspect(self.path, input_shapes=input_shapes)
        except MissingDependencyError as exc:
            if str(self.path) in exc.message:
                raise
            raise MissingDependencyError(f"{self.path}: {exc.message}", hint=exc.hint) from exc


def inspect_model(path: str | Path, *, input_shapes: Any = None) -> Inspection:
    """Detect the format of ``path`` and inspect it (MACs at ``input_shapes`` for dynamic inputs)."""
    return ModelArtifact.open(path).inspect(input_shapes=input_shapes)
