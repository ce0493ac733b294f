"""LiteRT (TFLite) interpreter loading with the fallbacks a board may need.

Order: ``ai_edge_litert`` (current LiteRT wheel), ``tflite_runtime`` (older boards, e.g. Coral's Debian
images), then ``tensorflow.lite`` (a workstation with TensorFlow only).

The loader sits below ``edgeml.formats`` (reading a .tflite asks the interpreter for its shapes);
``edgeml.runtimes.litert`` re-exports it with the session built on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeml._quiet import native_stderr_captured
from edgeml.errors import MissingDependencyError, ModelLoadError


def interpreter_class() -> tuple[Any, str]:
    """Return ``(Interpreter class, runtime name)`` from the first LiteRT flavour that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        from edgeml._tf import tensorflow

        return tensorflow().lite.Interpreter, "tensorflow.lite"
    except MissingDependencyError:
        pass
    raise MissingDependencyError(
        "no TFLite runtime found (tried ai_edge_litert, tflite_runtime, tensorflow.lite)",
        hint="pip install ai-edge-litert",
    )


def load_interpreter(path: str | Path, *, num_threads: int | None = None, allocate: bool = True,
                     experimental_delegates: list | None = None, preserve_all_tensors: bool = False) -> Any:
    """Create (and by default allocate) an interpreter; refusals become one-line ModelLoadErrors."""
    cls, _ = interpreter_class()
    kwargs: dict[str, Any] = {"model_path": str(path)}
    if num_threads is not None:
        kwargs["num_threads"] = num_threads
    if experimental_delegates:
        kwargs["experimental_delegates"] = experimental_delegates
    if preserve_all_tensors:  # intermediate tensors stay readable after invoke (per-layer debugging)
        kwargs["experimental_preserve_all_tensors"] = True
    try:
        with native_stderr_captured():
            interp = cls(**kwargs)
            if allocate:
                interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise ModelLoadError(f"{path}: the LiteRT interpreter refuses this model: {reason}",
                             hint="re-convert the model, or check it was made for this runtime") from exc
    return interp
