"""Option vocabularies in one place: the library validates against them, the CLI derives its choices.

Each is a ``str`` enum, so a member compares equal to its value (``PruneMethod.CHANNEL == "channel"``)
and the library keeps taking plain strings. The order of the members is the order ``--help`` lists.

A stage's options as one frozen dataclass (:class:`QuantizeOptions`, :class:`ConvertOptions`,
:class:`PruneOptions`, :class:`BenchOptions`, :class:`EstimateOptions`, :class:`CheckOptions`): each stage's
work reads one of them; the stage function takes it as ``options=`` or builds it from keyword arguments of
the same names (:meth:`StageOptions.build`), and ``--print-config`` prints it. The values are checked when
the object is made (ranges, vocabularies), so ``QuantizeOptions(out="q.tflite", mode="int9")`` fails at
once, with the message the stage gives.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from edgeml._types import Data, InputShapes, PathLike
from edgeml.errors import BudgetError, EdgeMLError, UsageError

if TYPE_CHECKING:
    from edgeml.targets.remote import SSHTarget


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


class QuantFallback(Vocabulary):
    FLOAT = "float"
    INT16X8 = "int16x8"


_S = TypeVar("_S", bound="StageOptions")


class StageOptions:
    """Base of the stages' frozen options dataclasses."""

    def to_dict(self) -> dict[str, object]:
        """The options as keyword arguments of the stage function (shallow: values kept as they are)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def set_away(self, *names: str) -> list[str]:
        """Those of ``names`` set away from their field's default, each as `` `name` `` (library markup)."""
        away = set(self.clashes(self.to_dict()))
        return [f"`{n}`" for n in names if n in away]

    @classmethod
    def clashes(cls, given: Mapping[str, object]) -> list[str]:
        """Names in ``given`` (a stage's keyword arguments) set away from their default: these clash with an
        ``options=`` given too. A required field clashes when it is not None."""
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            default = None if f.default is dataclasses.MISSING else f.default
            if given.get(f.name, default) != default:
                out.append(f.name)
        return out

    @classmethod
    def build(cls: type[_S], stage: str, options: _S | None, given: Mapping[str, object]) -> _S:
        """The one options object a stage runs with: ``options`` as given, or one made of ``given`` (the stage
        function's keyword arguments, e.g. its ``locals()``; names it lacks keep their defaults). ``options``
        and a keyword argument set away from its default together are a UsageError."""
        if options is not None:
            clashes = cls.clashes(given)
            if clashes:
                raise UsageError(f"{stage} got options= and {', '.join(clashes)}: give the options one way",
                                 hint="put them all in options= (dataclasses.replace(options, ...)) or none")
            return options
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in given.items() if k in names})


@dataclasses.dataclass(frozen=True)
class QuantizeOptions(StageOptions):
    """Options of ``edgeml.quantize`` (the parameters of the same names)."""

    out: PathLike
    calib: Data | None = None
    format: str | None = None
    mode: str = QuantMode.INT8.value
    io: str | None = None
    per_channel: bool = True
    method: str = CalibMethod.MINMAX.value
    calib_samples: int | None = None
    target: str | None = None
    eval: Data | None = None
    report: PathLike | None = None
    force: bool = False
    debug_samples: int = 16
    input_shapes: InputShapes | None = None
    keep_degraded: bool = False
    max_accuracy_drop: float | None = None
    min_fidelity: float | None = None
    keep_best: bool = False
    speed_seconds: float = 0.0
    max_evals: int | None = None
    train: Data | None = None
    epochs: int = 3
    lr: float = 1e-4
    fallback: str | None = None

    def __post_init__(self) -> None:
        if self.out is None:
            raise UsageError("quantize needs out (the output file)",
                             hint="pass out= or options=QuantizeOptions(out=...)")
        modes = QuantMode.values()
        if self.mode not in modes:
            raise EdgeMLError(f"`mode` {self.mode}: unknown", hint=f"use one of {', '.join(modes)}")
        if self.fallback is not None:
            if self.fallback not in QuantFallback.values():
                raise BudgetError(f"`fallback` {self.fallback}: unknown",
                                  hint="use `fallback` float or `fallback` int16x8")
            if self.max_accuracy_drop is None and self.min_fidelity is None:
                raise BudgetError("`fallback` applies to a budget's layer fallback",
                                  hint="add `max_accuracy_drop` or `min_fidelity`, or drop `fallback`")
        if self.max_accuracy_drop is None and self.min_fidelity is None:  # set, but nothing would read them
            for name in self.set_away("keep_best", "max_evals"):
                raise BudgetError(f"{name} applies to a budget (`max_accuracy_drop` or `min_fidelity`), and none is "
                                  "given", hint=f"add a budget, or drop {name}")
        if self.method != "qat":
            trained = self.set_away("train", "epochs", "lr")
            if trained:
                raise UsageError(f"{', '.join(trained)}: quantization-aware training options, but `method` is "
                                 f"{self.method} (post-training quantization trains nothing)",
                                 hint="add `method=\"qat\"` (a Keras source), or drop them")
            if self.calib_samples is not None and self.calib is None:
                raise UsageError(f"`calib_samples` {self.calib_samples}: draws from `calib`, and no `calib` is given",
                                 hint="pass `calib` SPEC, or drop `calib_samples`")
        if self.mode in (QuantMode.FLOAT16, QuantMode.DYNAMIC) and self.method in (CalibMethod.ENTROPY,
                                                                                   CalibMethod.PERCENTILE):
            raise UsageError(f"`method` {self.method}: `mode` {self.mode} calibrates no activation ranges",
                             hint="drop `method`, or use `mode` int8")


@dataclasses.dataclass(frozen=True)
class ConvertOptions(StageOptions):
    """Options of ``edgeml.convert`` (the parameters of the same names)."""

    to: str
    out: PathLike
    opset: int = 17
    simplify: bool = True
    float16: bool = False
    verify: int = 8
    calib: Data | None = None
    atol: float | None = None
    force: bool = False
    strict: bool = False
    input_shapes: InputShapes | None = None

    def __post_init__(self) -> None:
        if self.to is None or self.out is None:
            raise UsageError("convert needs to (the output format) and out (the output file)",
                             hint="pass to= and out=, or options=ConvertOptions(to=..., out=...)")
        if self.to not in ConvertTo.values():
            raise EdgeMLError(f"`to` {self.to}: unknown target format", hint="use `to` tflite or `to` onnx")


@dataclasses.dataclass(frozen=True)
class PruneOptions(StageOptions):
    """Options of ``edgeml.prune`` (the parameters of the same names)."""

    out: PathLike
    sparsity: float
    method: str = PruneMethod.MAGNITUDE.value
    scope: str = PruneScope.LAYER.value
    criterion: str = PruneCriterion.L1.value
    train: Data | None = None
    val: Data | None = None
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = PruneSchedule.POLYNOMIAL.value
    exclude: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.out is None or self.sparsity is None:
            raise UsageError("prune needs out (the output file) and sparsity",
                             hint="pass out= and sparsity=, or options=PruneOptions(out=..., sparsity=...)")
        if not 0 < self.sparsity < 1:
            raise UsageError(f"`sparsity` {self.sparsity}: must be between 0 and 1 (exclusive)",
                             hint="e.g. `sparsity` 0.5 removes half of the weights (magnitude) or channels (channel)")
        for opt, value, allowed in (("`method`", self.method, PruneMethod.values()),
                                    ("`scope`", self.scope, PruneScope.values()),
                                    ("`schedule`", self.schedule, PruneSchedule.values()),
                                    ("`criterion`", self.criterion, PruneCriterion.values())):
            if value not in allowed:
                raise EdgeMLError(f"{opt} {value}: expected one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise UsageError("`epochs` and `batch_size` must be >= 1 and `lr` > 0")
        if self.criterion != PruneCriterion.L1 and self.method != PruneMethod.CHANNEL:
            raise UsageError(f"`criterion` {self.criterion}: ranks channels for `method=\"channel\"`; `method` "
                             f"{self.method} ranks single weights by magnitude",
                             hint="drop `criterion`, or use `method=\"channel\"`")
        if self.train is None:  # set, but only fine-tuning reads them
            tuned = self.set_away("epochs", "batch_size", "lr", "schedule")
            if tuned:
                raise UsageError(f"{', '.join(tuned)}: fine-tuning options, but no `train` data is given (one-shot "
                                 "pruning trains nothing)", hint="pass `train` SPEC, or drop them")
        elif self.schedule != PruneSchedule.POLYNOMIAL and self.method == PruneMethod.CHANNEL:
            raise UsageError(f"`schedule` {self.schedule}: ramps magnitude sparsity during fine-tuning; "
                             "`method=\"channel\"` removes the channels once, before fine-tuning",
                             hint="drop `schedule`, or use `method=\"magnitude\"`")
        if self.exclude:
            try:
                re.compile(self.exclude)
            except re.error as exc:
                raise UsageError(f"`exclude` {self.exclude!r}: not a valid regular expression ({exc})") from exc


MAX_RUNS = 100_000  # the board runner stops there; more is refused, never silently capped


def check_numbers(*, runs: int, warmup: int, min_time: float, timeout: float | None = None) -> None:
    """Timing options that reach the runner are finite and in range (a clear error, never a silent cap)."""
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"`runs` {runs}: must be a whole number from 1 to {MAX_RUNS:,}",
                         hint="use `min_time` SECONDS to time for longer")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup <= MAX_RUNS:
        raise UsageError(f"`warmup` {warmup}: must be a whole number from 0 to {MAX_RUNS:,}")
    if not isinstance(min_time, (int, float)) or not math.isfinite(min_time) or not 0 <= min_time <= 86400:
        raise UsageError(f"`min_time` {min_time}: must be a finite number of seconds from 0 to 86400")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise UsageError(f"`timeout` {timeout}: must be a positive, finite number of seconds")


@dataclasses.dataclass(frozen=True)
class BenchOptions(StageOptions):
    """Options of ``edgeml.bench`` (the parameters of the same names).

    ``host`` is the board to run on over SSH: an :class:`~edgeml.targets.remote.SSHTarget` (which carries the
    ssh client options: ``identity``, ``config``, ``port``, ``python``, ``connect_timeout``) or its string form
    ``"[USER@]HOST[:PORT]"``, parsed by the stage (``SSHTarget.parse``); None measures this host, or estimates a
    board ``target``."""

    target: str | None = None
    host: SSHTarget | str | None = None
    runs: int = 50
    warmup: int = 5
    min_time: float = 0.0
    threads: int | None = None
    data: Data | None = None
    reference: PathLike | None = None
    timeout: float | None = None
    input_shapes: InputShapes | None = None

    def __post_init__(self) -> None:
        check_numbers(runs=self.runs, warmup=self.warmup, min_time=self.min_time, timeout=self.timeout)


@dataclasses.dataclass(frozen=True)
class EstimateOptions(StageOptions):
    """Options of ``edgeml.estimate`` (the parameters of the same names)."""

    target: str
    precision: str | None = None
    threads: int | None = None
    top: int = 8
    input_shapes: InputShapes | None = None

    def __post_init__(self) -> None:
        if self.target is None:
            raise UsageError("estimate needs target (a target profile name or TOML file)",
                             hint="pass target=, or options=EstimateOptions(target=...)")
        precisions = Precision.values()
        if self.precision is not None and self.precision not in precisions:
            raise UsageError(f"`precision` {self.precision}: unknown", hint=f"use one of {', '.join(precisions)}")


@dataclasses.dataclass(frozen=True)
class CheckOptions(StageOptions):
    """Options of ``edgeml.check`` (the parameters of the same names): how latency budgets are measured."""

    repeat: int = 3
    runs: int = 50
    input_shapes: InputShapes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise UsageError(f"`repeat` {self.repeat}: must be a whole number >= 1")
        check_numbers(runs=self.runs, warmup=0, min_time=0.0)
