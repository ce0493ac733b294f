"""edgeml: get trained neural networks onto small devices.

Importing :mod:`edgeml` is cheap: it never imports TensorFlow. The public API is re-exported lazily,
so ``edgeml.inspect_model`` resolves ``edgeml.artifact`` only when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"
# The name on the package index ("edgeml" there is an unrelated project); the command and import name
# stay "edgeml".
DISTRIBUTION = "edgeml-toolchain"


_LAZY = {
    "ModelArtifact": "edgeml.artifact",
    "ModelFormat": "edgeml.artifact",
    "detect_format": "edgeml.artifact",
    "inspect_model": "edgeml.artifact",
    "Inspection": "edgeml.formats.common",
    "TensorSpec": "edgeml.formats.common",
    "EdgeMLError": "edgeml.errors",
}

__all__ = ["__version__", "DISTRIBUTION", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeml' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
