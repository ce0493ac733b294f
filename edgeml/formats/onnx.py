"""Read .onnx models: IO, ops, weights and MACs via ONNX shape inference. No TensorFlow needed."""

from __future__ import annotations

import logging
from collections import Counter
from math import prod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import ModelLoadError
from edgeml.formats.common import (Inspection, LayerInfo, Quantization, TensorSpec, WeightStats, conv_macs,
                                   matmul_macs)

log = logging.getLogger(__name__)

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}
_WEIGHT_DTYPES = {"float32", "float16", "float64", "bfloat16", "int8", "uint8", "int16", "uint16", "int4",
                  "uint4", "float8e4m3fn", "float8e5m2"}


def _dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _all_graphs(graph) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.node or attr.g.output:
                yield from _all_graphs(attr.g)
            for g in attr.graphs:
                yield from _all_graphs(g)


def _external_tensors(model) -> Iterator[Any]:
    for graph in _all_graphs(model.graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.t.name or attr.t.dims or attr.t.data_location:
                    yield attr.t
                yield from attr.tensors


def check_external_data(model, base_dir: Path, path: Path) -> bool:
    """Refuse external-data locations outside the model's folder, and ranges past the end of the data file or
    over the memory ceiling (checked before anything is read). Returns True when any are used."""
    return bool(external_files(model, base_dir, path))


def external_files(model, base_dir: Path, path: Path) -> list[str]:
    """The external-data locations (relative to the model's folder) the model uses, each validated."""
    import onnx

    from edgeml._io import check_alloc

    base = base_dir.resolve()
    used: list[str] = []
    for tensor in _external_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(base):
            raise ModelLoadError(
                f"{path}: external data of tensor '{tensor.name}' points outside the model's folder ({location!r})",
                hint="edgeml only reads external data stored beside the model; move the data file next to it")
        if not target.is_file():
            raise ModelLoadError(f"{path}: external data file '{location}' of tensor '{tensor.name}' is missing",
                                 hint="copy the .data file next to the .onnx model")
        fields = {e.key: e.value for e in tensor.external_data}
        try:
            offset, length = int(fields.get("offset") or 0), fields.get("length")
            length = int(length) if length not in (None, "") else target.stat().st_size - offset
        except ValueError as exc:
            raise ModelLoadError(f"{path}: external data of tensor '{tensor.name}' has a non-numeric offset/length",
                                 hint="re-export the model") from exc
        if offset < 0 or length < 0 or offset + length > target.stat().st_size:
            raise ModelLoadError(f"{path}: external data of tensor '{tensor.name}' (offset {offset}, length {length})"
                                 f" runs past the end of '{location}' ({target.stat().st_size} bytes)",
                                 hint="the data file is truncated or does not belong to this model; re-export it")
        check_alloc(length, f"{path}: external data of tensor '{tensor.name}'", error=ModelLoadError)
        if location not in used:
            used.append(location)
    return used


def _parse(p: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise ModelLoadError(f"{p}: not a valid ONNX file ({' '.join(str(exc).split()) or type(exc).__name__})",
                             hint="the file is truncated or not an ONNX model; re-export it") from exc
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{p}: not a valid ONNX model (no graph found)",
                             hint="the file is truncated or not an ONNX model; re-export it")
    return model


def check_safe(path: str | Path) -> None:
    """Parse the graph (no external data) and refuse external data outside the model's folder."""
    p = Path(path)
    check_external_data(_parse(p), p.parent, p)


def load(path: str | Path, *, check: bool = True, external: list[str] | None = None):
    """Load an ONNX model safely (external data only from the model's folder) and validate it.

    ``external``, when given, receives the model's external-data files (relative to its folder).
    """
    import onnx

    p = Path(path)
    model = _parse(p)
    files = external_files(model, p.parent, p)
    if external is not None:
        external.extend(files)
    if files:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(p.parent))
    if check:
        try:
            onnx.checker.check_model(model)
        except (onnx.checker.ValidationError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{p}: invalid ONNX model: {first}",
                                 hint="re-export the model, or run onnx.checker on it for details") from exc
    return model


class _Graph:
    """Shapes and constant values of a (shape-inferred) model, subgraphs (If/Loop/Scan bodies) included."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        self.np = numpy_helper
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception as exc:  # inference is best effort; MACs then come out partial
            log.debug("shape inference failed: %s", exc)
            inferred = model
        self.graph = model.graph
        self.shapes: dict[str, tuple] = {}
        for g in _all_graphs(inferred.graph):
            for vi in list(g.value_info) + list(g.input) + list(g.output):
                t = vi.type.tensor_type
                if t.HasField("shape"):
                    self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                                 else None for d in t.shape.dim)
        self.consts: dict[str, Any] = {}
        for g in _all_graphs(model.graph):
            for init in g.initializer:
                self.consts[init.name] = init
                self.shapes[init.name] = tuple(init.dims)
            for node in g.node:
                if node.op_type == "Constant":
                    for attr in node.attribute:
                        if attr.name == "value":
                            self.consts[node.output[0]] = attr.t
                            self.shapes[node.output[0]] = tuple(attr.t.dims)

    def value(self, name: str) -> np.ndarray | None:
        t = self.consts.get(name)
        return None if t is None else self.np.to_array(t)

    def shape(self, name: str) -> tuple | None:
        return self.shapes.get(name)


def _known(*shapes) -> bool:
    return all(s is not None and all(d is not None for d in s) for s in shapes)


# recurrent ops: weights W [dirs, gates*hidden, input] and R [dirs, gates*hidden, hidden]
_RECURRENT = {"LSTM", "GRU", "RNN"}


def _node_macs(node, g: _Graph) -> int | None:
    """MACs of one node, 0 for uncounted ops, None when a needed shape is unknown."""
    op = node.op_type
    w_pos = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}.get(op)
    if w_pos is not None:
        w, out = g.shape(node.input[w_pos]), g.shape(node.output[0])
        if not _known(w, out) or len(out) < 3:
            return None
        return conv_macs(out[2:], w[0], tuple(w[2:]), w[1], batch=out[0])
    if op == "ConvTranspose":
        w, x = g.shape(node.input[1]), g.shape(node.input[0])
        if not _known(w, x):
            return None
        return conv_macs(x[2:], w[0], tuple(w[2:]), w[1], batch=x[0])
    if op == "Gemm":
        a, out = g.shape(node.input[0]), g.shape(node.output[0])
        if not _known(a, out):
            return None
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        return matmul_macs(out, a[0] if trans_a else a[-1])
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a, out = g.shape(node.input[0]), g.shape(node.output[0])
        if not _known(a, out):
            return None
        return matmul_macs(out, a[-1])
    if op in _RECURRENT:
        x, w, r = g.shape(node.input[0]), g.shape(node.input[1]), g.shape(node.input[2])
        if not _known(x, w, r) or len(x) != 3:
            return None
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        steps, batch = (x[1], x[0]) if layout else (x[0], x[1])
        return steps * batch * (prod(w) + prod(r))
    return 0


def _attr_graph(node, name: str):
    return next((a.g for a in node.attribute if a.name == name), None)


class _MacCounter:
    """MACs of a graph, recursing into control flow: Loop x trip count, If = costlier branch."""

    def __init__(self, g: _Graph, weight_params: dict[str, int], taken: dict[str, str] | None = None):
        self.g, self.weight_params = g, weight_params
        self.taken = taken or {}  # If name -> the branch the input shapes select
        self.layers: list[LayerInfo] = []
        self.unknown: list[str] = []
        self.notes: list[str] = []

    def graph(self, graph, scale: int = 1, record: bool = True) -> int:
        total = 0
        for node in graph.node:
            total += self.node(node, scale, record)
        return total

    def node(self, node, scale: int, record: bool) -> int:
        name = node.name or (node.output[0] if node.output else node.op_type)
        if node.op_type == "If":
            kinds = [k for k in ("then_branch", "else_branch") if _attr_graph(node, k) is not None]
            branches = [_attr_graph(node, k) for k in kinds]
            if node.name in self.taken and self.taken[node.name] in kinds:  # decided by the input shapes
                best = kinds.index(self.taken[node.name])
                costs = [self._sub(b, scale, record=False) if k == best else 0 for k, b in enumerate(branches)]
            else:
                costs = [self._sub(b, scale, record=False) for b in branches]
                best = max(range(len(costs)), key=costs.__getitem__) if costs else None
                if best is not None and max(costs) > 0:
                    self.notes.append(f"If {name}: MACs count the costlier branch")
            for k, b in enumerate(branches):
                if k == best:
                    self.graph(b, scale, record=record)
                elif record:  # keep the other branch's layers (params) at 0 MACs
                    self._record_zero(b)
            return costs[best] if best is not None else 0
        if node.op_type in ("Loop", "Scan"):
            body = _attr_graph(node, "body")
            if body is None:
                return 0
            trips = self._trips(node)
            body_once = self._sub(body, 1, record=False)
            if body_once and trips is None:
                self.unknown.append(f"{node.op_type} {name} (trip count unknown)")
                self._record_zero(body)
                return 0
            self.graph(body, scale * (trips or 0), record=record)
            return body_once * (trips or 0) * scale
        macs = _node_macs(node, self.g)
        if macs is None:
            self.unknown.append(f"{node.op_type} {name}")
            macs = 0
        macs *= scale
        if record:
            params = sum(self.weight_params.get(i, 0) for i in node.input)
            group = next((a.i for a in node.attribute if a.name == "group"), 1) if node.op_type == "Conv" else 1
            self.layers.append(LayerInfo(name, "Conv(depthwise)" if group > 1 else node.op_type, macs, params))
        return macs

    def _sub(self, graph, scale: int, record: bool) -> int:
        saved = (self.layers, self.unknown, self.notes)
        self.layers, self.unknown, self.notes = [], [], []
        try:
            return self.graph(graph, scale, record)
        finally:
            self.layers, self.unknown, self.notes = saved

    def _record_zero(self, graph) -> None:
        for node in graph.node:
            for sub in (a.g for a in node.attribute if a.g.node):
                self._record_zero(sub)
            params = sum(self.weight_params.get(i, 0) for i in node.input)
            self.layers.append(LayerInfo(node.name or (node.output[0] if node.output else node.op_type),
                                         node.op_type, 0, params))

    def _trips(self, node) -> int | None:
        if node.op_type == "Scan":
            x = self.g.shape(node.input[-1]) if node.input else None
            axis = 0
            return x[axis] if x and x[axis] is not None else None
        trip = self.g.value(node.input[0]) if node.input and node.input[0] else None
        if trip is None or trip.size != 1 or int(trip.reshape(-1)[0]) >= 2**31:
            return None
        body = _attr_graph(node, "body")
        if body is not None and len(body.input) > 1 and body.output:
            # only a loop whose condition is passed through unchanged runs exactly `trip` times
            cond_in, cond_out = body.input[1].name, body.output[0].name
            producer = next((n for n in body.node if cond_out in n.output), None)
            fixed = cond_out == cond_in or (producer is not None and producer.op_type == "Identity"
                                            and producer.input[0] == cond_in)
            if not fixed:
                return None
        return int(trip.reshape(-1)[0])


def _quant_of(name: str, g: _Graph, consumers: dict, producers: dict) -> Quantization | None:
    """Scale/zero-point of an integer graph input (read by DequantizeLinear) or output (from QuantizeLinear)."""
    candidates = [n for n, pos in consumers.get(name, []) if n.op_type == "DequantizeLinear" and pos == 0]
    prod_node = producers.get(name)
    if prod_node is not None and prod_node.op_type == "QuantizeLinear":
        candidates.append(prod_node)
    for node in candidates:
        scale = g.value(node.input[1]) if len(node.input) > 1 else None
        zp = g.value(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
        if scale is not None and scale.size == 1 and zp is not None and zp.size == 1:
            return Quantization(float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]))
    return None


def _is_weight(dtype: str, name: str, consumers: dict) -> bool:
    uses = consumers.get(name, [])
    if dtype == "int32":  # quantized biases only
        return any((n.op_type == "DequantizeLinear" and p == 0) or (n.op_type == "QLinearConv" and p == 8)
                   for n, p in uses)
    if dtype not in _WEIGHT_DTYPES:
        return False
    # scales and zero points of (De)QuantizeLinear / QLinear* are quantization parameters, not weights
    qparam = all((n.op_type in ("QuantizeLinear", "DequantizeLinear") and p in (1, 2))
                 or (n.op_type.startswith("QLinear") and p % 3 != 0) for n, p in uses)
    return not (uses and qparam)


def _spec_of(vi, g: _Graph | None = None, consumers=None, producers=None) -> TensorSpec:
    t = vi.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim)
    # a dim_param that is no name ("?", "-1", "None") is an anonymous dynamic dimension; protobuf hands a
    # dim_param that is not valid UTF-8 back as bytes (found by fuzzing)
    params = [p.decode("utf-8", "replace") if isinstance(p, bytes) else p for p in (d.dim_param for d in t.shape.dim)]
    symbols = tuple(p if p and p.strip("?-0123456789 ") and p != "None"
                    and not (d.HasField("dim_value") and d.dim_value > 0) else None
                    for d, p in zip(t.shape.dim, params))
    quant = _quant_of(vi.name, g, consumers, producers) if g is not None else None
    return TensorSpec(vi.name, shape, _dtype_name(t.elem_type), quant, symbols=symbols)


def graph_inputs(model) -> list:
    init_names = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in init_names]


def fix_input_shapes(model, shapes: dict[str, tuple]) -> None:
    """Set the graph inputs' dims to ``shapes`` (None keeps a dimension as it is), in place."""
    for vi in graph_inputs(model):
        shape = shapes.get(vi.name)
        if shape is None or not vi.type.tensor_type.HasField("shape"):
            continue
        for d, value in zip(vi.type.tensor_type.shape.dim, shape):
            if value is not None:
                d.Clear()
                d.dim_value = int(value)


def _inline_ifs(model, choose) -> Any:
    """A copy of ``model`` with each top-level If replaced by the branch ``choose(node)`` names (None: kept)."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = []
    for node in m.graph.node:
        branch = choose(node) if node.op_type == "If" else None
        g = _attr_graph(node, branch) if branch else None
        if g is None:
            nodes.append(node)
            continue
        nodes.extend(g.node)
        m.graph.initializer.extend(g.initializer)
        for out_vi, name in zip(g.output, node.output):
            nodes.append(helper.make_node("Identity", [out_vi.name], [name]))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def _run_exposed(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` with every typed main-graph tensor exposed as an output; name -> value."""
    import onnx
    import onnxruntime as ort

    typed = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in typed.graph.value_info}
    flat = onnx.ModelProto()
    flat.CopyFrom(model)
    outs = {o.name for o in flat.graph.output}
    for node in flat.graph.node:
        for name in node.output:
            if name and name not in outs and types.get(name):
                flat.graph.output.append(onnx.helper.make_tensor_value_info(name, types[name], None))
                outs.add(name)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    sess = ort.InferenceSession(flat.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _cond_subgraph(m, cond: str) -> list | None:
    """The main-graph nodes ``cond`` is computed from, when they read the inputs' shapes only (not their
    values) and hold no If; else None."""
    producers = {o: n for n in m.graph.node for o in n.output}
    inputs = {vi.name for vi in m.graph.input}
    needed: dict[int, Any] = {}
    stack = [(cond, False)]
    while stack:
        name, via_shape = stack.pop()
        node = producers.get(name)
        if node is None:
            if name in inputs and not via_shape:
                return None  # the condition depends on input values (e.g. a sample rate)
            continue
        if node.op_type in ("If", "Loop", "Scan"):
            return None
        if id(node) in needed and not (node.op_type in ("Shape", "Size") and not via_shape):
            continue
        needed[id(node)] = node
        stack += [(i, via_shape or node.op_type in ("Shape", "Size")) for i in node.input if i]
    return [n for n in m.graph.node if id(n) in needed]


def _resolve_shape_ifs(m, feeds: dict[str, np.ndarray], taken: dict[str, str]):
    """Inline every top-level If whose condition follows from the input shapes alone (PyTorch's
    squeeze-if-size-1 pattern) with the branch those shapes take; record it in ``taken``."""
    import onnx
    import onnxruntime as ort

    for _ in range(64):
        for node in m.graph.node:
            if node.op_type != "If":
                continue
            sub = _cond_subgraph(m, node.input[0])
            if sub is None:
                continue
            probe = onnx.helper.make_graph(sub, "cond", list(m.graph.input),
                                           [onnx.helper.make_tensor_value_info(node.input[0], onnx.TensorProto.BOOL,
                                                                               None)],
                                           initializer=list(m.graph.initializer))
            pm = onnx.helper.make_model(probe, opset_imports=list(m.opset_import))
            pm.ir_version = m.ir_version
            try:
                sess = ort.InferenceSession(pm.SerializeToString(), providers=["CPUExecutionProvider"])
                used = {i.name for i in sess.get_inputs()}
                value = sess.run(None, {k: v for k, v in feeds.items() if k in used})[0]
            except Exception as exc:
                log.debug("If %s: condition not evaluated: %s", node.name, exc)
                continue
            branch = "then_branch" if bool(np.asarray(value).reshape(-1)[0]) else "else_branch"
            taken[node.name] = branch
            m = _inline_ifs(m, lambda n, out=list(node.output), b=branch: b if list(n.output) == out else None)
            break
        else:
            return m
    return m


def runtime_shapes(model, feeds: dict[str, np.ndarray], taken: dict[str, str] | None = None
                   ) -> dict[str, tuple]:
    """Every intermediate tensor's shape from ONNX Runtime runs of ``model`` (dynamic dims as they are)
    on ``feeds``. An If whose condition follows from the input shapes is inlined with the branch taken
    (recorded in ``taken``); any other If is inlined both ways, level by level (at most 16 runs).

    The fallback when ONNX shape inference cannot follow a model's shape arithmetic (Paddle2ONNX and
    PyTorch exports compute Reshape/Pad arguments at run time). Empty when ONNX Runtime is missing.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {}
    taken = {} if taken is None else taken
    found: dict[str, tuple] = {}
    queue, runs = [model], 0
    while queue and runs < 16:
        m = _resolve_shape_ifs(queue.pop(0), feeds, taken)
        if any(n.op_type == "If" for n in m.graph.node):  # run each branch inlined, never a branch choice
            queue += [_inline_ifs(m, lambda n, b=b: b) for b in ("then_branch", "else_branch")]
            continue
        runs += 1
        try:
            values = _run_exposed(m, feeds)
        except Exception as exc:  # a branch that cannot run on these inputs: its shapes stay unknown
            log.debug("runtime shape capture failed: %s", exc)
            continue
        for name, v in values.items():
            found.setdefault(name, tuple(int(d) for d in np.shape(v)))
    return found


_PASS_THROUGH = {"Reshape", "Cast", "Squeeze", "Unsqueeze", "Identity", "Flatten"}


def compared_values(model, g: _Graph, specs: list[TensorSpec]) -> dict[str, int]:
    """Scalar integer inputs the graph tests against exactly one constant (``Equal(sr, 16000)``)."""
    consumers: dict[str, list] = {}
    for graph in _all_graphs(model.graph):
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
    out = {}
    for t in specs:
        if t.shape or not (t.dtype.startswith("int") or t.dtype.startswith("uint")):
            continue
        values, todo, seen = set(), [t.name], set()
        while todo:
            name = todo.pop()
            for node in consumers.get(name, []):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if node.op_type in _PASS_THROUGH and node.input[0] == name:
                    todo += list(node.output[:1])
                elif node.op_type == "Equal":
                    other = g.value(node.input[1] if node.input[0] == name else node.input[0])
                    if other is not None and other.size == 1:
                        values.add(int(other.reshape(-1)[0]))
        if len(values) == 1:
            out[t.name] = values.pop()
    return out


# inputs that hold a layer's parameters (a ConstantOfShape feeding one is a placeholder weight)
_WEIGHT_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
                  "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
                  "PRelu": (1,), "LSTM": (1, 2, 3), "GRU": (1, 2, 3), "RNN": (1, 2, 3)}


def _feeds_weight(name: str, consumers: dict, depth: int = 0) -> bool:
    """Whether ``name`` reaches a parameter input (through Reshape/Transpose/Cast/... of the value itself)."""
    for node, pos in consumers.get(name, []):
        if pos in _WEIGHT_INPUTS.get(node.op_type, ()):
            return True
        if (node.op_type in _PASS_THROUGH or node.op_type == "Transpose") and pos == 0 and depth < 4 \
                and _feeds_weight(node.output[0], consumers, depth + 1):
            return True
    return False


def inspect(path: Path, *, input_shapes=None) -> Inspection:
    """Describe an .onnx file; MACs at ``input_shapes`` (see edgeml.formats.shapes) for dynamic inputs."""
    import onnx

    from edgeml.formats.shapes import resolve

    external: list[str] = []
    model = load(path, external=external)
    raw_inputs = [_spec_of(vi) for vi in graph_inputs(model)]
    resolved = resolve(raw_inputs, input_shapes)
    fix_input_shapes(model, resolved.shapes)
    g = _Graph(model)
    consumers: dict[str, list] = {}
    producers: dict[str, Any] = {}
    ops: Counter[str] = Counter()
    custom: list[str] = []
    for graph in _all_graphs(model.graph):
        for node in graph.node:
            for pos, name in enumerate(node.input):
                consumers.setdefault(name, []).append((node, pos))
            for name in node.output:
                producers[name] = node
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            ops[key] += 1
            if node.domain not in STANDARD_DOMAINS and key not in custom:
                custom.append(key)

    stats = WeightStats()
    weight_params: dict[str, int] = {}
    for name, tensor in g.consts.items():
        dtype = _dtype_name(tensor.data_type)
        if _is_weight(dtype, name, consumers):
            weight_params[name] = stats.add(g.value(name), dtype=dtype)
    materialised = 0
    for graph in _all_graphs(model.graph):  # weights built at run time (e.g. models with stripped weights)
        for node in graph.node:
            if node.op_type != "ConstantOfShape" or not node.input or g.value(node.input[0]) is None:
                continue
            if not _feeds_weight(node.output[0], consumers):
                continue  # a zero state or a shape helper, not a weight
            shape = g.value(node.input[0])
            fill = next((onnx.numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                        np.zeros(1, np.float32))
            n = int(np.prod(shape))
            weight_params[node.output[0]] = n
            stats.params += n
            stats.dtypes[str(fill.dtype)] += n
            stats.zeros += n if float(fill.reshape(-1)[0]) == 0.0 else 0
            materialised += n

    counter = _MacCounter(g, weight_params)
    total = counter.graph(model.graph)
    notes = []
    if counter.unknown and resolved.complete:  # shape inference gave up: take the shapes from a run
        feeds = {t.name: np.zeros(resolved.shapes[t.name], np.dtype(t.dtype)) for t in raw_inputs}
        taken: dict[str, str] = {}
        captured = runtime_shapes(load(path), feeds, taken)
        if captured:
            for name, shape in captured.items():
                if not _known(g.shapes.get(name)):
                    g.shapes[name] = shape
            counter = _MacCounter(g, weight_params, taken)
            total = counter.graph(model.graph)
            notes.append("shapes ONNX shape inference could not resolve were taken from an ONNX Runtime run at "
                         "these input shapes")
    notes += list(dict.fromkeys(counter.notes))
    if materialised:
        notes.append(f"{materialised} parameter(s) are built at run time by ConstantOfShape (placeholder weights)")
    notes += [n for n in resolved.notes() if not n.startswith("unknown")]
    partial = bool(counter.unknown)
    if partial:
        if resolved.unknown:
            notes.append("MACs partial: unknown input dimensions " + ", ".join(str(u) for u in resolved.unknown)
                         + f"; give {resolved.hint_example()} (replace D)")
        else:
            shown = ", ".join(counter.unknown[:3]) + (" ..." if len(counter.unknown) > 3 else "")
            notes.append(f"MACs partial: {len(counter.unknown)} op(s) have shapes ONNX shape inference could "
                         f"not resolve ({shown})")
    if custom:
        notes.append("custom-domain ops " + ", ".join(custom) + " need a runtime with those kernels registered")

    quant_inputs = {vi.name: _spec_of(vi, g, consumers, producers).quantization for vi in graph_inputs(model)}
    return Inspection(
        path=str(path), format="onnx",  # the size on disk includes external data files
        size_bytes=path.stat().st_size + sum((path.parent / f).stat().st_size for f in external),
        inputs=[TensorSpec(t.name, t.shape, t.dtype, quant_inputs[t.name], symbols=t.symbols) for t in raw_inputs],
        outputs=[_spec_of(vi, g, consumers, producers) for vi in model.graph.output],
        params=stats.params, macs=total, ops=dict(ops.most_common()), weight_dtypes=dict(stats.dtypes),
        sparsity=stats.sparsity, custom_ops=custom, layers=counter.layers, notes=notes, macs_partial=partial,
        macs_shapes=dict(resolved.shapes), input_values=compared_values(model, g, raw_inputs),
    )
