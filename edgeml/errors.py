"""Every exception the library raises, in one catalogue. The CLI turns them into ``error:``/``hint:`` lines
and an exit code: 1 a check failed, 2 a usage error, 3 any other known error (4: a bug).

    EdgeMLError                 known failure (3)
    ├── UsageError              options that are out of range or contradict each other (2)
    │   ├── BudgetError         a malformed budget (check)
    │   ├── QATUsageError       quantization-aware training with options it cannot take
    │   └── InventoryError      a malformed fleet inventory
    ├── CheckFailed             a budget or fidelity check failed (1)
    │   ├── FidelityError       quantize's own check: the quantized model does not reproduce the float one
    │   └── BudgetNotMet        quantize's accuracy budget cannot be met with the fallbacks allowed
    ├── ModelLoadError          model missing, unreadable, unknown format, refused by its runtime
    ├── MissingDependencyError  an optional package is not installed
    ├── DataError               data missing, malformed or not matching the model
    ├── OutputExistsError       an output exists and ``force`` was not given / an output is an input
    ├── ResourceLimitError      a declared size exceeds the memory ceiling
    ├── ShapeError              an input shape is unknown or does not fit the model
    ├── ConversionError         a converter failed on the model
    ├── OnnxToTFLiteError       onnx2tf could not convert the model (unsupported op, dynamic shape, control flow)
    ├── QuantizationError       the quantizer (TFLite converter, AI Edge Quantizer) failed on the model
    ├── VerificationError       a converted model's outputs differ from the source
    ├── RemoteTimeout           a remote command ran past its timeout
    └── RemoteError             the board runner failed, or a board over SSH did
        └── SSHConnectionError  ssh itself failed (exit 255): unreachable, refused, dropped
    Terminated (KeyboardInterrupt)  SIGTERM, unwound like Ctrl-C (exit 143)
"""

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


class UsageError(EdgeMLError):
    """Options that are out of range or contradict each other: exit code 2, like click's own usage errors."""

    exit_code = 2


class BudgetError(UsageError):
    """A malformed budget (file, table or option)."""


class ShapeError(EdgeMLError):
    """An input shape is unknown, or a given ``input_shapes`` does not fit the model."""


class ConversionError(EdgeMLError):
    """A converter (TFLite converter, tf2onnx) failed on the model."""


class OnnxToTFLiteError(EdgeMLError):
    """onnx2tf could not convert the model (unsupported op, dynamic shape, control flow)."""


class VerificationError(EdgeMLError):
    """A converted model's outputs differ from the source model's beyond the tolerance."""


class QATUsageError(UsageError):
    """Quantization-aware training (``method="qat"``) with options it cannot take (exit 2)."""


class InventoryError(UsageError):
    """A malformed fleet inventory: a usage error (exit 2)."""


class QuantizationError(EdgeMLError):
    """The quantizer (TFLite converter, AI Edge Quantizer) failed on the model."""


class CheckFailed(EdgeMLError):
    """A budget or check failed: exit code 1, so CI pipelines fail."""

    exit_code = 1


class FidelityError(CheckFailed):
    """quantize's own check says the quantized model does not reproduce the float model (exit 1)."""


class BudgetNotMet(CheckFailed):
    """quantize's accuracy budget cannot be met with the fallbacks allowed (exit 1)."""


class ResourceLimitError(EdgeMLError):
    """A declared size (tensor shape, array header, external-data length) exceeds the memory ceiling."""


class RemoteTimeout(EdgeMLError):
    """A remote command ran past its --timeout; the ssh process was killed and the board cleaned up."""


class RemoteError(EdgeMLError):
    """The board runner failed (locally or on a board), or a board over SSH did."""


class SSHConnectionError(RemoteError):
    """ssh itself failed (exit 255): the board is unreachable, refused us, or the connection dropped."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every finally-block and temporary-file cleanup runs (exit 143)."""
