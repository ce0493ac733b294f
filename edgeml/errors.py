"""Exceptions the library raises. The CLI turns them into ``error:``/``hint:`` lines and an exit code."""

from __future__ import annotations


class EdgeMLError(Exception):
    """A known failure: what failed, on which object, and (``hint``) what to do about it."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ModelLoadError(EdgeMLError):
    """A model file is missing, unreadable, of an unknown format, or refused by its runtime."""


class MissingDependencyError(EdgeMLError):
    """An optional package (TensorFlow, a runtime, a delegate) is not installed."""


class DataError(EdgeMLError):
    """Calibration/evaluation data is missing, malformed or does not match the model."""


class OutputExistsError(EdgeMLError):
    """An output path exists and ``force`` was not given."""


class CheckFailed(EdgeMLError):
    """A budget or check failed: exit code 1, so CI pipelines fail."""

    exit_code = 1


class ResourceLimitError(EdgeMLError):
    """A declared size (tensor shape, array header, external-data length) exceeds the memory ceiling."""


class RemoteTimeout(EdgeMLError):
    """A remote command ran past its --timeout; the ssh process was killed and the board cleaned up."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every finally-block and temporary-file cleanup runs (exit 143)."""
