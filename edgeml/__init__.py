"""edgeml: get trained neural networks onto small devices.

    >>> import edgeml
    >>> edgeml.inspect("model.onnx").macs
    >>> edgeml.quantize("model.keras", calib="builtin:digits?split=train", out="model_int8.tflite")

Importing :mod:`edgeml` is cheap: it never imports TensorFlow. The public API (:mod:`edgeml.api`) is
re-exported lazily, so ``edgeml.quantize`` resolves ``edgeml.api`` and the stage only when first used.

``edgeml.quantize``, ``convert``, ``prune``, ``bench`` and ``check`` are functions here, while
``edgeml.quantize`` (etc.) are also subpackages: ``from edgeml.quantize import QuantizeResult`` keeps
working, and importing a subpackage does not replace the function on this package (see ``_Package``).
"""

from __future__ import annotations

import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (import edgeml stays cheap)

__version__ = "0.1.0"
# The name on the package index ("edgeml" there is an unrelated project); the command and import name
# stay "edgeml".
DISTRIBUTION = "edgeml-toolchain"

if TYPE_CHECKING:
    from typing import Any

    from edgeml.api import bench, check, convert, estimate, inspect, prune, quantize, run_pipeline
    from edgeml.artifact import ModelArtifact, ModelFormat, detect_format, inspect_model
    from edgeml.bench.harness import BenchResult
    from edgeml.calibration.spec import DataSpec
    from edgeml.check import Budget, CheckResult
    from edgeml.convert import ConvertResult
    from edgeml.errors import EdgeMLError
    from edgeml.formats.common import Inspection, TensorSpec
    from edgeml.options import (
        BenchOptions,
        CheckOptions,
        ConvertOptions,
        EstimateOptions,
        PruneOptions,
        QuantizeOptions,
    )
    from edgeml.pipeline import Recipe, RunResult
    from edgeml.prune import PruneResult
    from edgeml.quantize import QuantizeResult
    from edgeml.targets.estimate import Estimate

_FUNCTIONS = ("inspect", "convert", "quantize", "prune", "bench", "estimate", "check", "run_pipeline")
_LAZY = {
    **{name: "edgeml.api" for name in _FUNCTIONS},
    "DataSpec": "edgeml.calibration.spec",
    "Inspection": "edgeml.formats.common",
    "TensorSpec": "edgeml.formats.common",
    "ConvertResult": "edgeml.convert",
    "QuantizeResult": "edgeml.quantize",
    "PruneResult": "edgeml.prune",
    "BenchResult": "edgeml.bench.harness",
    "Estimate": "edgeml.targets.estimate",
    "Budget": "edgeml.check",
    "CheckResult": "edgeml.check",
    "Recipe": "edgeml.pipeline",
    "RunResult": "edgeml.pipeline",
    "ModelArtifact": "edgeml.artifact",
    "ModelFormat": "edgeml.artifact",
    "detect_format": "edgeml.artifact",
    "inspect_model": "edgeml.artifact",
    "EdgeMLError": "edgeml.errors",
    "QuantizeOptions": "edgeml.options",
    "ConvertOptions": "edgeml.options",
    "PruneOptions": "edgeml.options",
    "BenchOptions": "edgeml.options",
    "EstimateOptions": "edgeml.options",
    "CheckOptions": "edgeml.options",
}

__all__ = ["__version__", "DISTRIBUTION", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeml' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Python's import system sets ``edgeml.quantize`` to the subpackage when it first loads it; the API
    function of that name must win. Submodules stay reachable through ``sys.modules`` (``from edgeml.quantize
    import ...``, ``import edgeml.quantize.tflite``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return  # the subpackage stays in sys.modules; the name resolves to the function (__getattr__)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
