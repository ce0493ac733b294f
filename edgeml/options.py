"""Option vocabularies in one place: the library validates against them, the CLI derives its choices.

Each is a ``str`` enum, so a member compares equal to its value (``PruneMethod.CHANNEL == "channel"``)
and the library keeps taking plain strings. The order of the members is the order ``--help`` lists.

A stage's options as one frozen dataclass (:class:`QuantizeOptions`, :class:`ConvertOptions`): the stage
takes them as ``options=`` (or the same names as keyword arguments), and ``--print-config`` prints them.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any


class Vocabulary(str, enum.Enum):
    """A closed set of option values."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every value, in definition order."""
        return tuple(str(m.value) for m in cls)


class ConvertTo(Vocabulary):
    TFLITE = "tflite"
    ONNX = "onnx"


class QuantMode(Vocabulary):
    INT8 = "int8"
    INT16X8 = "int16x8"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"


class QuantIO(Vocabulary):
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    FLOAT32 = "float32"


class CalibMethod(Vocabulary):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class PruneMethod(Vocabulary):
    MAGNITUDE = "magnitude"
    CHANNEL = "channel"


class PruneScope(Vocabulary):
    LAYER = "layer"
    GLOBAL = "global"


class PruneCriterion(Vocabulary):
    L1 = "l1"
    L2 = "l2"
    BN = "bn"


class PruneSchedule(Vocabulary):
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"


class Precision(Vocabulary):
    INT8 = "int8"
    FP16 = "fp16"
    FP32 = "fp32"


class Percentile(Vocabulary):
    P50 = "p50"
    P90 = "p90"
    P99 = "p99"
    MEAN = "mean"
    MAX = "max"


class Sampling(Vocabulary):
    RANDOM = "random"
    STRATIFIED = "stratified"
    FIRST = "first"


class Split(Vocabulary):
    ALL = "all"
    TRAIN = "train"
    TEST = "test"


class Domain(Vocabulary):
    AUTO = "auto"
    REAL = "real"
    QUANTIZED = "quantized"


class Norm(Vocabulary):
    ZERO_ONE = "0..1"
    MINUS_ONE_ONE = "-1..1"
    IMAGENET = "imagenet"
    RAW = "raw"


class Color(Vocabulary):
    RGB = "rgb"
    GRAYSCALE = "grayscale"


class Layout(Vocabulary):
    NHWC = "nhwc"
    NCHW = "nchw"


class StageOptions:
    """Base of the stages' frozen options dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """The options as keyword arguments of the stage function (shallow: values kept as they are)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def clashes(cls, given: dict[str, Any]) -> list[str]:
        """Names in ``given`` (a stage's keyword arguments) set away from their default: these clash with an
        ``options=`` given too. A required field clashes when it is not None."""
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            default = None if f.default is dataclasses.MISSING else f.default
            if given.get(f.name, default) != default:
                out.append(f.name)
        return out


@dataclasses.dataclass(frozen=True)
class QuantizeOptions(StageOptions):
    """Options of ``edgeml.quantize`` (the parameters of the same names)."""

    out: str | Path
    calib: Any = None
    format: str | None = None
    mode: str = QuantMode.INT8.value
    io: str | None = None
    per_channel: bool = True
    method: str = CalibMethod.MINMAX.value
    calib_samples: int | None = None
    target: str | None = None
    eval: Any = None
    report: str | Path | None = None
    force: bool = False
    debug_samples: int = 16
    input_shapes: Any = None
    keep_degraded: bool = False
    max_accuracy_drop: float | None = None
    min_fidelity: float | None = None
    keep_best: bool = False
    speed_seconds: float = 0.0
    max_evals: int | None = None
    train: Any = None
    epochs: int = 3
    lr: float = 1e-4
    fallback: str | None = None


@dataclasses.dataclass(frozen=True)
class ConvertOptions(StageOptions):
    """Options of ``edgeml.convert`` (the parameters of the same names)."""

    to: str
    out: str | Path
    opset: int = 17
    simplify: bool = True
    float16: bool = False
    verify: int = 8
    calib: Any = None
    atol: float | None = None
    force: bool = False
    strict: bool = False
    input_shapes: Any = None


@dataclasses.dataclass(frozen=True)
class PruneOptions(StageOptions):
    """Options of ``edgeml.prune`` (the parameters of the same names)."""

    out: str | Path
    sparsity: float
    method: str = PruneMethod.MAGNITUDE.value
    scope: str = PruneScope.LAYER.value
    criterion: str = PruneCriterion.L1.value
    train: Any = None
    val: Any = None
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = PruneSchedule.POLYNOMIAL.value
    exclude: str | None = None
    force: bool = False
