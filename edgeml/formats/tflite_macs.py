"""MACs of a .tflite model: per op at the stored or resolved shapes, control flow (WHILE) by trip count."""

from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np

from edgeml.formats.common import conv_macs, matmul_macs
from edgeml.formats.tflite_reader import TFLiteReader

_RECURRENT_WEIGHTS = {
    "LSTM": (1, 2, 3, 4, 5, 6, 7, 8, 16),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, 2, 3, 4, 5, 6, 7, 8, 16),
    "BIDIRECTIONAL_SEQUENCE_LSTM": (1, 2, 3, 4, 5, 6, 7, 8, 16, 18, 19, 20, 21, 22, 23, 24, 25, 33,
                                    40, 41, 42, 43, 44, 45, 46, 47),
    "RNN": (1, 2), "UNIDIRECTIONAL_SEQUENCE_RNN": (1, 2), "BIDIRECTIONAL_SEQUENCE_RNN": (1, 2, 5, 6, 10, 11),
}


def _options(op, cls):
    opts = op.BuiltinOptions()
    if opts is None:
        return None
    o = cls()
    o.Init(opts.Bytes, opts.Pos)
    return o


def file_op_macs(op_name: str, sg, op, reader: TFLiteReader) -> int:
    """MACs of one op of subgraph ``sg`` at the shapes stored in the file (static models; 0 when unknown)."""
    def file_shape(t_idx: int) -> tuple:
        t = sg.Tensors(t_idx)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    return op_macs(op_name, op, file_shape, reader) or 0


def op_macs(op_name: str, op, shape_of, reader: TFLiteReader) -> int | None:
    """MACs of one op; ``shape_of(tensor index)`` is a concrete shape or None (unknown). None: unknown."""
    def t_shape(i: int) -> tuple | None:
        idx = op.Inputs(i) if i >= 0 else op.Outputs(0)
        return shape_of(idx) if idx >= 0 else ()

    if op_name in _RECURRENT_WEIGHTS:
        x = t_shape(0)
        if x is None:
            return None
        if op_name in ("LSTM", "RNN"):
            steps_batch = prod(x[:-1])
        else:
            steps_batch = prod(x[:2])  # [batch, time, input] or time-major [time, batch, input]
        total = 0
        for pos in _RECURRENT_WEIGHTS[op_name]:
            if pos < op.InputsLength() and op.Inputs(pos) >= 0:
                w = shape_of(op.Inputs(pos))
                if w is None:
                    return None
                total += prod(w)
        return steps_batch * total
    if op_name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
                       "BATCH_MATMUL"):
        return 0
    out = t_shape(-1)
    w = t_shape(1)
    if out is None or w is None:
        return None
    if op_name == "CONV_2D":
        o, kh, kw, ipg = w
        return conv_macs(out[1:3], o, (kh, kw), ipg, batch=out[0])
    if op_name == "DEPTHWISE_CONV_2D":
        _, kh, kw, o = w
        return conv_macs(out[1:3], o, (kh, kw), 1, batch=out[0])
    if op_name == "CONV_3D":
        kd, kh, kw, ipg, o = w
        return conv_macs(out[1:4], o, (kd, kh, kw), ipg, batch=out[0])
    if op_name == "FULLY_CONNECTED":
        return matmul_macs(out, w[-1])
    if op_name == "TRANSPOSE_CONV":
        o, kh, kw, i = w
        inp = t_shape(2)
        if inp is None:
            return None
        return conv_macs(inp[1:3], i, (kh, kw), o, batch=inp[0])
    a = t_shape(0)  # BATCH_MATMUL
    if a is None:
        return None
    bm = _options(op, reader.S.BatchMatMulOptions)
    adj_x = bool(bm.AdjX()) if bm is not None else False
    return matmul_macs(out, a[-2] if adj_x else a[-1])


class Shapes:
    """Concrete tensor shapes per subgraph: file shapes, or the interpreter's after resizing inputs."""

    def __init__(self, reader: TFLiteReader, resolved, path: Path):
        self.reader = reader
        self.runtime: dict[int, tuple] = {}
        self.notes: list[str] = []
        self.dynamic_ok = resolved.complete and not resolved.overridden  # only batch dims were dynamic
        if resolved.complete and resolved.overridden:
            self._from_interpreter(path, resolved.shapes)

    def _from_interpreter(self, path: Path, shapes: dict[str, tuple]) -> None:
        try:
            import sys

            from edgeml._litert import interpreter_class

            cls, _ = interpreter_class()
            kwargs = {}
            resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
            if resolver is not None:  # a delegate (XNNPACK) would hide the intermediate shapes
                kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            it = cls(model_path=str(path), **kwargs)
            details = it.get_input_details()
            main = self.reader.model.Subgraphs(0)
            names = self.reader.signature_names()
            for i, d in enumerate(details):
                t_idx = main.Inputs(i)
                name = names.get(t_idx) or main.Tensors(t_idx).Name().decode("utf-8", "replace")
                if name in shapes:
                    it.resize_tensor_input(d["index"], list(shapes[name]), strict=False)
            it.allocate_tensors()
            for d in it.get_input_details():  # dynamic tensors get their shapes when the graph runs
                it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
            it.invoke()
            for d in it.get_tensor_details():
                self.runtime[int(d["index"])] = tuple(int(x) for x in d["shape"])
            self.dynamic_ok = True
        except Exception as exc:  # no runtime, or the model refuses the shape: MACs stay partial
            self.notes.append(f"the input shapes could not be propagated through the model ({exc})")

    def of(self, g: int, sg, t_idx: int) -> tuple | None:
        if g == 0 and t_idx in self.runtime:
            return self.runtime[t_idx]
        t = sg.Tensors(t_idx)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if t.ShapeSignatureLength() and any(int(s) < 0 for s in t.ShapeSignatureAsNumpy()):
            if not self.dynamic_ok or g != 0 and self.runtime:
                return None
        return shape


class MacCounter:
    """MACs per op reached from the main subgraph: WHILE bodies x trip count, IF = costlier branch."""

    def __init__(self, reader: TFLiteReader, shapes: Shapes):
        self.reader, self.shapes = reader, shapes
        self.S = reader.S
        self.macs: dict[tuple[int, int], int] = {}
        self.unknown: list[str] = []
        self.notes: list[str] = []
        self.visiting: set[int] = set()

    def subgraph(self, g: int, scale: int, record: bool = True) -> int:
        if g in self.visiting or g >= self.reader.model.SubgraphsLength():
            return 0
        self.visiting.add(g)
        sg = self.reader.model.Subgraphs(g)
        total = 0
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            name, is_custom = self.reader.opcode(op.OpcodeIndex())
            macs = self.op(g, sg, op, name, is_custom, scale, record)
            if record:
                self.macs[(g, k)] = self.macs.get((g, k), 0) + macs
            total += macs
        self.visiting.discard(g)
        return total

    def _dry(self, g: int) -> tuple[int, list[str]]:
        saved = self.unknown
        self.unknown = []
        try:
            return self.subgraph(g, 1, record=False), self.unknown
        finally:
            self.unknown = saved

    def op(self, g: int, sg, op, name: str, is_custom: bool, scale: int, record: bool) -> int:
        if is_custom:
            return 0
        if name == "WHILE":
            o = _options(op, self.S.WhileOptions)
            if o is None:
                return 0
            body, cond = o.BodySubgraphIndex(), o.CondSubgraphIndex()
            once, unknown = self._dry(body)
            trips = _while_trips(self.reader, g, sg, op, cond, body)
            if trips is None:
                if once or unknown:
                    self.unknown.append(f"WHILE loop {self._label(sg, op)} (trip count unknown)")
                return 0
            self.unknown += unknown
            return self.subgraph(body, scale * trips, record) if record else once * trips * scale
        if name == "IF":
            o = _options(op, self.S.IfOptions)
            if o is None:
                return 0
            branches = [o.ThenSubgraphIndex(), o.ElseSubgraphIndex()]
            costs = [self._dry(b) for b in branches]
            best = max(range(2), key=lambda i: costs[i][0])
            if max(c[0] for c in costs):
                self.notes.append("IF: MACs count the costlier branch")
            self.unknown += costs[best][1]
            return self.subgraph(branches[best], scale, record) if record else costs[best][0] * scale
        if name == "CALL_ONCE":
            o = _options(op, self.S.CallOnceOptions)
            return self.subgraph(o.InitSubgraphIndex(), 1, record) if o is not None else 0
        macs = op_macs(name, op, lambda t: self.shapes.of(g, sg, t), self.reader)
        if macs is None:
            self.unknown.append(f"{name} {self._label(sg, op)}")
            return 0
        return macs * scale

    @staticmethod
    def _label(sg, op) -> str:
        idx = op.Outputs(0) if op.OutputsLength() else -1
        return sg.Tensors(idx).Name().decode("utf-8", "replace") if idx >= 0 else "?"


def _const_scalar(reader: TFLiteReader, sg, t_idx: int) -> int | None:
    if t_idx < 0:
        return None
    t = sg.Tensors(t_idx)
    raw = reader.buffer(t)
    dtype = reader.dtype(t)
    if raw is None or dtype not in ("int32", "int64"):
        return None
    values = raw.view(np.dtype(dtype))
    return int(values[0]) if values.size == 1 else None


def _while_trips(reader: TFLiteReader, g: int, sg, op, cond: int, body: int) -> int | None:
    """Trip count of a counting WHILE loop (``i < N`` with constant start and N, step 1), else None.

    This is the form TensorFlow gives Keras RNN layers (while_v2: ``loop_counter < max_iterations`` and
    ``time < steps``); the smallest bound wins.
    """
    model = reader.model
    if cond >= model.SubgraphsLength() or body >= model.SubgraphsLength():
        return None
    csg, bsg = model.Subgraphs(cond), model.Subgraphs(body)
    cond_inputs = [csg.Inputs(i) for i in range(csg.InputsLength())]
    body_inputs = [bsg.Inputs(i) for i in range(bsg.InputsLength())]
    body_outputs = [bsg.Outputs(i) for i in range(bsg.OutputsLength())]

    def step(pos: int) -> int | None:  # the body's update of loop variable `pos`: x + constant
        if pos >= len(body_outputs) or pos >= len(body_inputs):
            return None
        for k in range(bsg.OperatorsLength()):
            bop = bsg.Operators(k)
            if bop.OutputsLength() and bop.Outputs(0) == body_outputs[pos]:
                name, _ = reader.opcode(bop.OpcodeIndex())
                if name != "ADD" or bop.InputsLength() != 2:
                    return None
                a, b = bop.Inputs(0), bop.Inputs(1)
                if a == body_inputs[pos]:
                    return _const_scalar(reader, bsg, b)
                if b == body_inputs[pos]:
                    return _const_scalar(reader, bsg, a)
                return None
        return None

    def operand(t_idx: int) -> tuple[int | None, int | None]:  # (loop var position, constant value)
        if t_idx in cond_inputs:
            pos = cond_inputs.index(t_idx)
            return pos, _const_scalar(reader, sg, op.Inputs(pos)) if pos < op.InputsLength() else None
        return None, _const_scalar(reader, csg, t_idx)

    bounds = []
    for k in range(csg.OperatorsLength()):
        cop = csg.Operators(k)
        name, _ = reader.opcode(cop.OpcodeIndex())
        if name != "LESS" or cop.InputsLength() != 2:
            continue
        (pos, start), (_, limit) = operand(cop.Inputs(0)), operand(cop.Inputs(1))
        if pos is None or start is None or limit is None or step(pos) != 1:
            continue
        bounds.append(max(0, limit - start))
    return min(bounds) if bounds else None
