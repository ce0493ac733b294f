"""Predict, op by op, what edgetpu_compiler will map to the Edge TPU, without the compiler.

The rules are data (profiles/rules/edgetpu_ops.toml, each with its source): supported ops and their
documented constraints, full int8 activations, at most 3 non-unit dimensions, the single-subgraph rule
(an op that depends on an op left on the CPU is not mapped either: "More than one subgraph is not
supported"), and the ~8 MiB on-chip parameter cache (weights beyond it stream over the host link on every
inference). A compiled ``*_edgetpu.tflite`` is read as it is: the ``edgetpu-custom-op`` and the CPU ops left
around it. This is a prediction; ``edgeml compile`` compares it with the compiler's log when the compiler
is installed (edgetpu_log.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeml._compat import tomllib
from edgeml.errors import EdgeMLError, ModelLoadError

RULES_PATH = Path(__file__).parent / "profiles" / "rules" / "edgetpu_ops.toml"
COMPILED_OP = "edgetpu-custom-op"
DEFAULT_COMPILER = 16  # the last released edgetpu_compiler (16.0.384591198, seen in edgetpu#433, #512, #829)
_RULES: dict[str, Any] | None = None


def rules() -> dict[str, Any]:
    global _RULES
    if _RULES is None:
        _RULES = tomllib.loads(RULES_PATH.read_text())
    return _RULES


@dataclass
class OpPlan:
    index: int
    op: str
    name: str
    where: str  # "edgetpu" | "cpu"
    reason: str
    macs: int = 0
    weight_bytes: int = 0
    boundary: bool = False  # an input/output conversion left on the CPU without splitting the graph


@dataclass
class Plan:
    model: str
    target: str
    compiled: bool  # the file is already an edgetpu_compiler output
    compiles: bool
    ops: list[OpPlan]
    cache_bytes: int
    cached_weight_bytes: int
    streamed_weight_bytes: int
    blockers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compiled_blob_bytes: int = 0
    io_bytes: int = 0  # bytes of the Edge TPU part's inputs + outputs (cross the link every inference)

    @property
    def ops_on_edgetpu(self) -> int:
        return sum(o.where == "edgetpu" for o in self.ops)

    @property
    def ops_on_cpu(self) -> int:
        return sum(o.where == "cpu" for o in self.ops)

    @property
    def edgetpu_macs(self) -> int:
        return sum(o.macs for o in self.ops if o.where == "edgetpu")

    @property
    def cpu_macs(self) -> int:
        return sum(o.macs for o in self.ops if o.where == "cpu")

    def summary(self) -> str:
        if not self.compiles:
            return f"Edge TPU plan: will not compile ({'; '.join(self.blockers)})"
        head = ("Edge TPU mapping (read from the compiled file)" if self.compiled else
                "Edge TPU plan (predicted, no compiler run)")
        s = (f"{head}: {self.ops_on_edgetpu} of {len(self.ops)} ops on the Edge "
             f"TPU, {self.ops_on_cpu} on the CPU; weights {self.cached_weight_bytes / 2**20:.2f} MiB cached"
             f", {self.streamed_weight_bytes / 2**20:.2f} MiB streamed per inference")
        first = next((o for o in self.ops if o.where == "cpu" and not o.boundary), None)
        return s + (f"; first CPU op: {first.op} {first.name!r} ({first.reason})" if first else "")

    def to_dict(self) -> dict[str, Any]:
        d = {"schema": "edgeml.edgetpu_plan/1", "kind": "predicted", "model": self.model, "target": self.target,
             "compiled": self.compiled, "compiles": self.compiles, "blockers": self.blockers,
             "ops_on_edgetpu": self.ops_on_edgetpu, "ops_on_cpu": self.ops_on_cpu,
             "cpu_ops": [{"index": o.index, "op": o.op, "name": o.name, "reason": o.reason} for o in self.ops
                         if o.where == "cpu"],
             "cache_bytes": self.cache_bytes, "cached_weight_bytes": self.cached_weight_bytes,
             "streamed_weight_bytes": self.streamed_weight_bytes, "io_bytes": self.io_bytes,
             "compiled_blob_bytes": self.compiled_blob_bytes, "edgetpu_macs": self.edgetpu_macs,
             "cpu_macs": self.cpu_macs, "notes": self.notes, "rules": str(RULES_PATH.name),
             "ops": [asdict(o) for o in self.ops]}
        return d


class _Graph:
    """Subgraph 0 of a .tflite: tensors, constants, producers, op options."""

    def __init__(self, path: Path):
        from edgeml.formats.tflite_reader import TFLiteReader

        data = path.read_bytes()
        try:
            self.r = TFLiteReader(path, data)
            if self.r.model.SubgraphsLength() < 1:
                raise ValueError("no subgraph")
            self.sg = self.r.model.Subgraphs(0)
            self.n_subgraphs = self.r.model.SubgraphsLength()
        except (ModelLoadError, EdgeMLError):
            raise
        except Exception as exc:
            raise ModelLoadError(f"{path}: the Edge TPU plan cannot parse this file as TFLite ({type(exc).__name__}: "
                                 f"{exc})", hint="`edgeml.inspect(MODEL)`; re-export the model") from exc
        self.S = self.r.S
        self.producer: dict[int, int] = {}
        for k in range(self.sg.OperatorsLength()):
            op = self.sg.Operators(k)
            for j in range(op.OutputsLength()):
                self.producer[op.Outputs(j)] = k
        self.inputs = {self.sg.Inputs(i) for i in range(self.sg.InputsLength())}
        self.outputs = {self.sg.Outputs(i) for i in range(self.sg.OutputsLength())}

    def tensor(self, idx: int):
        return self.sg.Tensors(idx)

    def const(self, idx: int) -> np.ndarray | None:
        return self.r.buffer(self.tensor(idx)) if idx >= 0 else None

    def const_values(self, idx: int) -> np.ndarray | None:
        raw = self.const(idx)
        if raw is None:
            return None
        try:
            return raw.view(np.dtype(self.r.dtype(self.tensor(idx))))
        except TypeError:
            return None

    def shape(self, idx: int) -> tuple:
        return tuple(1 if d is None else d for d in self.r.shape(self.tensor(idx)))

    def signature(self, idx: int) -> tuple:
        return self.r.shape(self.tensor(idx))

    def name(self, idx: int) -> str:
        return self.tensor(idx).Name().decode("utf-8", "replace")

    def nbytes(self, idx: int) -> int:
        t = self.tensor(idx)
        item = {"int8": 1, "uint8": 1, "int16": 2, "float16": 2, "int64": 8, "float64": 8}.get(self.r.dtype(t), 4)
        return int(np.prod(self.shape(idx) or (1,))) * item

    def options(self, op, cls_name: str):
        opts = op.BuiltinOptions()
        if opts is None or not hasattr(self.S, cls_name):
            return None
        o = getattr(self.S, cls_name)()
        o.Init(opts.Bytes, opts.Pos)
        return o


def _io(op) -> tuple[list[int], list[int]]:
    return ([op.Inputs(i) for i in range(op.InputsLength()) if op.Inputs(i) >= 0],
            [op.Outputs(i) for i in range(op.OutputsLength()) if op.Outputs(i) >= 0])


def _inner_ok(shape: tuple, max_inner: int) -> bool:
    return all(d == 1 for d in shape[:-max_inner]) if len(shape) > max_inner else True


def _non_unit(shape: tuple) -> int:
    return sum(d > 1 for d in shape)


def _check(name: str, g: _Graph, op, op_name: str, ins: list[int], outs: list[int]) -> str | None:
    """The reason a documented constraint fails, or None."""
    act = [i for i in ins if g.const(i) is None]
    if name == "no_fused_activation":
        cls = "ConcatenationOptions" if op_name == "CONCATENATION" else "Pool2DOptions"
        o = g.options(op, cls)
        if o is not None and o.FusedActivationFunction() != 0:
            return "fused activation function not supported on this op"
    elif name == "concat_const_zero_pad":
        consts = [i for i in ins if g.const(i) is not None]
        if consts and (len(ins) != 2 or any(np.any(g.const(i)) for i in consts)):
            return "constant input allowed only as the 2nd of exactly 2 inputs and all zeros"
    elif name == "fc_default_weights":
        o = g.options(op, "FullyConnectedOptions")
        if o is not None and o.WeightsFormat() != 0:
            return "only the default fully-connected weights format is supported"
    elif name == "fc_output_1d":
        if outs and _non_unit(g.shape(outs[0])) > 1:
            return f"output {list(g.shape(outs[0]))} is not one-dimensional"
    elif name == "reduce_xy_only":
        axes = g.const_values(ins[1]) if len(ins) > 1 else None
        if axes is None:
            return "reduction axes are not a compile-time constant"
        rank = len(g.shape(ins[0]))  # NHWC / NWC: x and y are the axes between batch and channels
        if rank < 3 or not {int(a) % rank for a in axes.ravel()} <= set(range(1, rank - 1)):
            return f"reduces along axes {sorted(int(a) for a in axes.ravel())} of a rank-{rank} tensor (x/y only)"
    elif name == "pad_xy_only":
        pads = g.const_values(ins[1]) if len(ins) > 1 else None
        if pads is None:
            return "paddings are not a compile-time constant"
        pads = pads.reshape(-1, 2)
        if len(pads) < 3 or np.any(pads[0]) or np.any(pads[-1]):
            return "pads along a dimension other than x/y (batch or channels)"
    elif name == "io_3d":
        for t in act[:1] + outs[:1]:
            if len(g.shape(t)) == 4 and g.shape(t)[0] != 1:
                return f"input/output {list(g.shape(t))} is not 3-dimensional"
    elif name == "softmax_1d_16000":
        shape = g.shape(act[0]) if act else ()
        if _non_unit(shape) > 1 or int(np.prod(shape or (1,))) > 16000:
            return f"input {list(shape)}: only 1-D inputs of at most 16,000 elements"
    elif name == "squeeze_leading_ones":
        shape = g.shape(act[0]) if act else ()
        first = next((i for i, d in enumerate(shape) if d > 1), len(shape))
        o = g.options(op, "SqueezeOptions")
        dims = [int(d) % max(1, len(shape)) for d in o.SqueezeDimsAsNumpy()] if o is not None and \
            o.SqueezeDimsLength() else [i for i, d in enumerate(shape) if d == 1]
        if any(d > first for d in dims):
            return f"squeezes a non-leading dimension of {list(shape)} (needs a relayout)"
    elif name == "strided_slice_unit":
        strides = g.const_values(ins[3]) if len(ins) > 3 else None
        o = g.options(op, "StridedSliceOptions")
        if strides is None or np.any(strides != 1):
            return "strides other than 1"
        if o is not None and (o.EllipsisMask() or o.NewAxisMask()):
            return "ellipsis or new-axis mask set"
    return None


def _analyse_op(g: _Graph, k: int, op_name: str, is_custom: bool, compiler: int) -> tuple[str, str, bool]:
    """(where, reason, boundary) for one op, before the single-subgraph rule."""
    R = rules()
    op = g.sg.Operators(k)
    ins, outs = _io(op)
    if is_custom:
        if op_name == COMPILED_OP:
            return "edgetpu", "compiled Edge TPU subgraph", False
        return "cpu", f"custom op {op_name}: Operation not supported", False
    rule = R["ops"].get(op_name)
    if rule is None:
        known = R["unsupported"].get(op_name)
        return "cpu", ("Operation not supported" + (f" ({known})" if known else
                                                    " (not in edgeml's Edge TPU op table: treated as CPU)")), False
    if compiler < int(rule.get("min_compiler", 0)):
        return "cpu", f"Operation not supported before compiler {rule['min_compiler']}", False
    m = R["model"]
    act = [i for i in ins if g.const(i) is None] + outs
    floats = sorted({g.r.dtype(g.tensor(t)) for t in act} - set(m["activation_dtypes"]) - {"int32"})
    if floats:
        boundary = op_name in m["boundary_ops"] and (
            all(i in g.inputs for i in ins if g.const(i) is None) or all(o in g.outputs for o in outs))
        return "cpu", f"Operation is working on an unsupported data type ({', '.join(floats)})", boundary
    weights = sorted({g.r.dtype(g.tensor(i)) for i in ins if g.const(i) is not None}
                     - set(m["activation_dtypes"]) - set(m["bias_dtypes"]))
    if weights:
        return "cpu", f"Operation is working on an unsupported data type (constant {', '.join(weights)})", False
    for t in act:
        if not _inner_ok(g.shape(t), int(m["max_inner_dims"])):
            return "cpu", (f"tensor {g.name(t)!r} {list(g.shape(t))} has more than {m['max_inner_dims']} dimensions "
                           "larger than 1"), False
    for check in rule.get("checks", []):
        if check == "size_dependent":
            continue
        why = _check(check, g, op, op_name, ins, outs)
        if why:
            return "cpu", why, False
    return "edgetpu", "supported" + ("; may still stay on the CPU depending on size (compiler-internal "
                                     "precision rule)" if "size_dependent" in rule.get("checks", []) else ""), False


def plan(model: str | Path, *, target: str = "coral-usb", compiler: int = DEFAULT_COMPILER) -> Plan:
    """The predicted Edge TPU mapping of a .tflite (or the actual one of a compiled *_edgetpu.tflite)."""
    from edgeml.formats.tflite_macs import file_op_macs
    from edgeml.targets import load_profile

    profile = load_profile(target)
    if profile.kind != "edgetpu":
        raise EdgeMLError(f"`target` {target} is not an Edge TPU target",
                          hint="use `target=\"coral-usb\"` or coral-devboard")
    path = Path(model)
    if path.suffix.lower() != ".tflite":
        raise EdgeMLError(f"{path}: the Edge TPU plan needs a .tflite", hint="`edgeml.quantize(MODEL, calib=SPEC, "
                                                                                f"target={profile.name!r})`")
    if not path.is_file():
        raise EdgeMLError(f"{path}: no such file")
    g = _Graph(path)
    cache = int((profile.param_cache_mib or 8.0) * 2**20)
    notes: list[str] = []
    blockers: list[str] = []
    ops: list[OpPlan] = []
    seen: set[int] = set()
    compiled = False
    blob = 0
    for k in range(g.sg.OperatorsLength()):
        op = g.sg.Operators(k)
        op_name, is_custom = g.r.opcode(op.OpcodeIndex())
        ins, outs = _io(op)
        where, reason, boundary = _analyse_op(g, k, op_name, is_custom, compiler)
        if is_custom and op_name == COMPILED_OP:
            compiled = True
            blob += op.CustomOptionsLength()
        try:
            macs = 0 if is_custom else file_op_macs(op_name, g.sg, op, g.r)
        except Exception:  # noqa: BLE001 - an op the MAC counter cannot read: counted as 0 and said
            macs = 0
            notes.append(f"op {k} {op_name}: MACs not countable")
        wbytes = 0
        for i in ins:
            raw = g.const(i)
            if raw is not None and i not in seen:
                seen.add(i)
                wbytes += int(raw.size)
        name = g.name(outs[0]) if outs else f"op{k}"
        ops.append(OpPlan(k, op_name, name, where, reason, macs, wbytes, boundary))
    # the single-subgraph rule: an op fed by a (non-boundary) CPU op cannot be mapped either
    by_index = {o.index: o for o in ops}
    for o in ops:
        if o.where != "edgetpu":
            continue
        ins, _ = _io(g.sg.Operators(o.index))
        for i in ins:
            p = by_index.get(g.producer.get(i, -1))
            if p is not None and p.where == "cpu" and not p.boundary:
                o.where = "cpu"
                o.reason = (f"More than one subgraph is not supported (fed by CPU op {p.op} #{p.index})"
                            if not o.reason.startswith("compiled") else "compiled subgraph after a CPU op")
                break
    for t in sorted(g.inputs):
        sig = g.signature(t)
        if any(d is None for d in sig[1:]):
            blockers.append(f"input {g.name(t)!r} {list(sig)} has dynamic dimensions: the compiler needs static "
                            "shapes ('dynamic-sized tensors', edgetpu#829)")
        elif sig and sig[0] is None:
            notes.append(f"input {g.name(t)!r} has a dynamic batch dimension; if the compiler reports "
                         "'dynamic-sized tensors', export with a fixed batch of 1")
    if g.n_subgraphs > 1:
        notes.append(f"{g.n_subgraphs - 1} control-flow subgraph(s): their ops run on the CPU")
    if not compiled and not any(o.where == "edgetpu" for o in ops) and ops:
        blockers.append(f"no op can run on the Edge TPU (first: {ops[0].op}: {ops[0].reason})")
    tpu_w = sum(o.weight_bytes for o in ops if o.where == "edgetpu")
    if compiled:  # the compiled op carries its instructions and parameters in its custom options
        tpu_w = blob
        notes.append(f"compiled model: the Edge TPU part ({blob / 2**20:.2f} MiB of compiled code + parameters) is "
                     "opaque; parameter bytes are approximated by that size")
    io_bytes = _io_bytes(g, ops)
    return Plan(str(path), profile.name, compiled, not blockers, ops, cache, min(tpu_w, cache), max(0, tpu_w - cache),
                blockers, notes, blob, io_bytes)


def _io_bytes(g: _Graph, ops: list[OpPlan]) -> int:
    """Bytes entering and leaving the Edge TPU part per inference."""
    tpu = {o.index for o in ops if o.where == "edgetpu"}
    total = 0
    seen: set[int] = set()
    for o in ops:
        ins, _ = _io(g.sg.Operators(o.index))
        if o.index in tpu:
            for i in ins:
                if g.const(i) is None and g.producer.get(i, -1) not in tpu and i not in seen:
                    seen.add(i)
                    total += g.nbytes(i)
        else:
            for i in ins:
                if g.producer.get(i, -1) in tpu and i not in seen:
                    seen.add(i)
                    total += g.nbytes(i)
    for t in g.outputs:
        if g.producer.get(t, -1) in tpu and t not in seen:
            total += g.nbytes(t)
    return total


__all__ = ["OpPlan", "Plan", "plan", "rules"]
