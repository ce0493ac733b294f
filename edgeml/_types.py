"""Type aliases of the public API, shared by :mod:`edgeml.options` (the stages' options) and :mod:`edgeml.api`.

A base-layer module: it imports nothing of edgeml at run time (``DataSpec`` and ``SSHTarget`` are named for
type checkers only), so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from edgeml.calibration.spec import DataSpec

#: A model file or SavedModel directory.
PathLike = str | Path
#: A data spec string (``"calib.npz?samples=200"``, ``"images/"``, ``"builtin:digits?split=test"``) or a
#: :class:`DataSpec`.
Data = Union[str, "DataSpec"]  # noqa: UP007 (DataSpec is imported for type checking only)
#: Fixed sizes for dynamic input dimensions: ``{"x": (1, 3, 224, 224)}``, ``["x=1,3,224,224"]`` or
#: ``"1,3,224,224"`` (single-input models).
InputShapes = Mapping[str, Sequence[int]] | Sequence[str] | str
#: Called with one line of progress text per step.
Progress = Callable[[str], None]
