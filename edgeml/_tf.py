"""The one place TensorFlow and Keras are imported (lazily, quietly, with a clear error when missing)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from edgeml._quiet import native_stderr_captured
from edgeml.errors import MissingDependencyError

_HINT = "install the TensorFlow extra: pip install 'edgeml-toolchain[tf]'"


def tensorflow():
    """Import and return the ``tensorflow`` module with its log noise silenced."""
    if "tensorflow" in sys.modules and hasattr(sys.modules["tensorflow"], "__version__"):
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        with native_stderr_captured(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
    except ImportError as exc:
        raise MissingDependencyError(f"TensorFlow is needed for this step ({exc})", hint=_HINT) from exc
    tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    return tf


def keras():
    """Import and return Keras 3 (on the TensorFlow backend)."""
    tensorflow()
    import keras as _keras

    if int(_keras.__version__.split(".")[0]) < 3:
        raise MissingDependencyError(
            f"edgeml needs Keras 3, found Keras {_keras.__version__}", hint="pip install -U 'keras>=3'"
        )
    return _keras
