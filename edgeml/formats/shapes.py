"""Concrete input shapes for a model whose inputs have dynamic dimensions.

edgeml never computes on a silently invented size. A dynamic dimension gets its value from, in order:

1. ``--input-shape NAME=D0,D1,...`` (``input_shapes``) for that input, or without ``NAME=`` for a
   single-input model;
2. the same symbolic dimension (ONNX ``dim_param``, e.g. ``batch``) fixed on another input: symbols are
   resolved by name across all inputs, so ``input [batch, seq]`` and ``state [2, batch, 128]`` agree;
3. for a batch dimension only (a dimension named like a batch, or the unnamed/non-sequence first axis
   of an input, or a symbol that is the first axis of some input): 1, and the result says so.

Every other dynamic dimension stays unknown: ``inspect`` marks its MACs partial, and commands that must
run or cost the model (bench, estimate, verification samples) refuse with a hint naming the
``--input-shape`` to give.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeml.errors import ShapeError
from edgeml.formats.common import TensorSpec

_BATCH_NAME = re.compile(r"batch|^(n|b|bs|batch_size|unk__\d+|none)$", re.IGNORECASE)
_NOT_BATCH_NAME = re.compile(r"seq|len|time|step|token|frame|sample|height|width|^h$|^w$|^t$|^l$|^s$|feat",
                             re.IGNORECASE)


Overrides = dict[str | None, tuple[int, ...]]


def parse_input_shapes(items: Any) -> Overrides:
    """``["x=1,3,320,320", "state=2,1,128"]`` / ``"1,3,320,320"`` / ``{"x": [1, 3, 320, 320]}`` -> overrides.

    An item without ``NAME=`` (key ``None``) is for a single-input model. ``sr=`` (nothing after ``=``)
    or ``sr=scalar`` is a rank-0 input.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs: list[tuple[str | None, Any]] = [(str(k) if k is not None else None, v) for k, v in items.items()]
    else:
        if isinstance(items, str):
            items = [items]
        pairs = []  # type: ignore[var-annotated]  # declared in the branch above
        for item in items:
            text = str(item).strip()
            text_name, sep, dims = text.rpartition("=")
            pairs.append(((text_name.strip() or None) if sep else None, dims))
    out: Overrides = {}
    for name, dims in pairs:
        shape = _parse_dims(name, dims)
        if name in out:
            raise ShapeError(f"`input_shapes` given twice for {'input ' + repr(name) if name else 'the input'}",
                             hint="give one `input_shapes` per input")
        out[name] = shape
    return out


def format_input_shapes(shapes: Any) -> list[str]:
    """Overrides back to ``["NAME=D0,D1,..."]`` (the recipe / command-line form)."""
    return [(f"{k}=" if k else "") + ",".join(str(d) for d in v) for k, v in parse_input_shapes(shapes).items()]


def _parse_dims(name: str | None, dims: Any) -> tuple[int, ...]:
    label = f"{name}=" if name else ""
    if isinstance(dims, (list, tuple)):
        values = list(dims)
    else:
        text = str(dims).strip().strip("[]()")
        values = [] if text in ("", "scalar") else [v.strip() for v in re.split(r"[,x]", text)]
    try:
        shape = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ShapeError(f"`input_shapes` {label}{dims}: dimensions must be whole numbers",
                         hint="`input_shapes` NAME=D0,D1,... e.g. `input_shapes` images=1,3,320,320") from None
    if any(d < 1 for d in shape):
        raise ShapeError(f"`input_shapes` {label}{dims}: every dimension must be at least 1",
                         hint="`input_shapes` NAME=D0,D1,... e.g. `input_shapes` images=1,3,320,320")
    return shape


@dataclass(frozen=True)
class UnknownDim:
    input: str
    axis: int
    symbol: str | None

    def __str__(self) -> str:
        return f"{self.input}[{self.axis}]" + (f" ({self.symbol})" if self.symbol else "")


@dataclass
class ResolvedShapes:
    """Per input: the shape with every dimension that could be fixed (``None`` where still unknown)."""

    shapes: dict[str, tuple[int | None, ...]]
    unknown: list[UnknownDim] = field(default_factory=list)
    batch_defaulted: list[str] = field(default_factory=list)  # "x[0]" dims set to 1 as a batch
    overridden: bool = False

    @property
    def complete(self) -> bool:
        return not self.unknown

    def notes(self) -> list[str]:
        out = []
        if self.batch_defaulted:
            out.append("batch dimension " + ", ".join(self.batch_defaulted) + " taken as 1")
        if self.unknown:
            out.append("unknown input dimensions " + ", ".join(str(u) for u in self.unknown) +
                       f": MACs are partial; give {self.hint_example()}")
        return out

    def hint_example(self) -> str:
        names = sorted({u.input for u in self.unknown}, key=list(self.shapes).index)
        parts = []
        for name in names:
            dims = ",".join(str(d) if d is not None else "D" for d in self.shapes[name])
            parts.append(f"`input_shapes={name}={dims}`")
        return " ".join(parts)

    def require(self, what: str) -> dict[str, tuple[int, ...]]:
        """The concrete shapes, or a ShapeError saying which dims are unknown (``what``: what needs them)."""
        if self.unknown:
            raise ShapeError(f"{what} needs concrete input shapes; unknown dimension(s) "
                             + ", ".join(str(u) for u in self.unknown),
                             hint=f"give {self.hint_example()} (replace D), or data of the right shape")
        return {k: tuple(int(d) for d in v) for k, v in self.shapes.items()}  # type: ignore[arg-type]

    def macs_notes(self, uncounted: list[str], why: str) -> list[str]:
        """An inspection's notes on its shapes and MAC count: a batch taken as 1, and, where ops were not counted
        (``uncounted``; ``why`` says what kept them out), that the MACs are partial, with the input dimensions to
        give when unknown ones are the cause."""
        notes = [n for n in self.notes() if not n.startswith("unknown")]
        if uncounted and self.unknown:
            notes.append("MACs partial: unknown input dimensions " + ", ".join(str(u) for u in self.unknown)
                         + f"; give {self.hint_example()} (replace D)")
        elif uncounted:
            shown = ", ".join(uncounted[:3]) + (" ..." if len(uncounted) > 3 else "")
            notes.append(f"MACs partial: {len(uncounted)} op(s) {why} ({shown})")
        return notes


def _is_batch(spec: TensorSpec, axis: int, symbol: str | None, first_axis_symbols: set[str]) -> bool:
    if symbol:
        if _BATCH_NAME.search(symbol):
            return True
        if _NOT_BATCH_NAME.search(symbol):
            return False
        return symbol in first_axis_symbols
    return axis == 0 and len(spec.shape) >= 2


def resolve(inputs: Iterable[TensorSpec], overrides: Any = None, *, data_shapes: Mapping[str, tuple] | None = None
            ) -> ResolvedShapes:
    """Fix every dimension of ``inputs`` that can be fixed honestly (see the module docstring).

    ``data_shapes`` (shapes of one sample of real data, batch axis included) count as overrides: the
    data decides. A shape that contradicts a static dimension or the input's rank is refused.
    """
    specs = list(inputs)
    given = dict(parse_input_shapes(overrides))
    names = [t.name for t in specs]
    if None in given:
        if len(specs) != 1:
            raise ShapeError(f"`input_shapes` without a name, but the model has {len(specs)} inputs "
                             f"({', '.join(names)})", hint="name each input: `input_shapes` NAME=D0,D1,...")
        given[specs[0].name] = given.pop(None)
    for name in given:
        if name not in names:
            raise ShapeError(f"`input_shapes` {name}=...: the model has no input {name!r}",
                             hint="inputs: " + ", ".join(names))
    for name, shape in (data_shapes or {}).items():
        if name in names:
            if name in given and tuple(given[name]) != tuple(shape):
                raise ShapeError(f"`input_shapes` {name}={','.join(map(str, given[name]))} contradicts the data's "
                                 f"shape {list(shape)}", hint="drop `input_shapes`; the data decides the shape")
            given[name] = tuple(int(d) for d in shape)

    symbols: dict[str, int] = {}
    shapes: dict[str, list[int | None]] = {}
    for t in specs:
        syms = _symbols(t)
        if t.name in given:
            shape = tuple(given[t.name])
            if len(shape) != len(t.shape):
                raise ShapeError(f"input {t.name!r} has rank {len(t.shape)} {t.shape_str()}; the shape given "
                                 f"{list(shape)} has rank {len(shape)}",
                                 hint=f"give {len(t.shape)} dimensions: `input_shapes` {t.name}=" +
                                      ",".join(str(d) if d else "D" for d in t.shape))
            for axis, (want, got) in enumerate(zip(t.shape, shape)):
                if want is not None and want != got:
                    raise ShapeError(f"input {t.name!r} {t.shape_str()} has a fixed size {want} at axis {axis}; "
                                     f"the shape given has {got}",
                                     hint="only dynamic (?) dimensions can be set")
                sym = syms[axis]
                if want is None and sym:
                    if symbols.setdefault(sym, got) != got:
                        raise ShapeError(f"dimension {sym!r} is {symbols[sym]} on one input and {got} on "
                                         f"{t.name!r}", hint="symbolic dimensions with one name must agree")
            shapes[t.name] = list(shape)
        else:
            shapes[t.name] = list(t.shape)
    first_axis = {s for t in specs if t.shape and (s := _symbols(t)[0]) and t.shape[0] is None}
    unknown, defaulted = [], []
    for t in specs:
        syms = _symbols(t)
        for axis, d in enumerate(shapes[t.name]):
            if d is not None:
                continue
            sym = syms[axis]
            if sym and sym in symbols:
                shapes[t.name][axis] = symbols[sym]
            elif _is_batch(t, axis, sym, first_axis):
                shapes[t.name][axis] = 1
                if sym:
                    symbols[sym] = 1
                defaulted.append(f"{t.name}[{axis}]" + (f" ({sym})" if sym else ""))
            else:
                unknown.append(UnknownDim(t.name, axis, sym))
    return ResolvedShapes({k: tuple(v) for k, v in shapes.items()}, unknown, defaulted, overridden=bool(given))


def _symbols(t: TensorSpec) -> tuple[str | None, ...]:
    syms = tuple(t.symbols or ())
    return syms + (None,) * (len(t.shape) - len(syms))
