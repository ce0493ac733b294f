"""Option vocabularies in one place: the library validates against them, the CLI derives its choices.

Each is a ``str`` enum, so a member compares equal to its value (``PruneMethod.CHANNEL == "channel"``)
and the library keeps taking plain strings. The order of the members is the order ``--help`` lists.
"""

from __future__ import annotations

import enum


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
