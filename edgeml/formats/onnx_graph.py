"""The graph view of an ONNX model that MAC counting reads (constants, static shapes) and the counter
itself: MACs per node, control flow (If/Loop/Scan) costed from its subgraphs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from math import prod
from typing import Any

import numpy as np

from edgeml.formats.common import LayerInfo, conv_macs, matmul_macs

log = logging.getLogger("edgeml.formats.onnx")


def all_graphs(graph) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.node or attr.g.output:
                yield from all_graphs(attr.g)
            for g in attr.graphs:
                yield from all_graphs(g)


def graph_inputs(model) -> list:
    init_names = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in init_names]


class Graph:
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
        for g in all_graphs(inferred.graph):
            for vi in list(g.value_info) + list(g.input) + list(g.output):
                t = vi.type.tensor_type
                if t.HasField("shape"):
                    self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                                 else None for d in t.shape.dim)
        self.consts: dict[str, Any] = {}
        for g in all_graphs(model.graph):
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

    def shape(self, name: str) -> Any:
        """The static shape of a value (a tuple, entries None where unknown), None when unknown."""
        return self.shapes.get(name)


def known(*shapes) -> bool:
    return all(s is not None and all(d is not None for d in s) for s in shapes)


# recurrent ops: weights W [dirs, gates*hidden, input] and R [dirs, gates*hidden, hidden]
_RECURRENT = {"LSTM", "GRU", "RNN"}


def node_macs(node, g: Graph) -> int | None:
    """MACs of one node, 0 for uncounted ops, None when a needed shape is unknown."""
    op = node.op_type
    w_pos = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}.get(op)
    if w_pos is not None:
        w, out = g.shape(node.input[w_pos]), g.shape(node.output[0])
        if not known(w, out) or len(out) < 3:
            return None
        return conv_macs(out[2:], w[0], tuple(w[2:]), w[1], batch=out[0])
    if op == "ConvTranspose":
        w, x = g.shape(node.input[1]), g.shape(node.input[0])
        if not known(w, x):
            return None
        return conv_macs(x[2:], w[0], tuple(w[2:]), w[1], batch=x[0])
    if op == "Gemm":
        a, out = g.shape(node.input[0]), g.shape(node.output[0])
        if not known(a, out):
            return None
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        return matmul_macs(out, a[0] if trans_a else a[-1])
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a, out = g.shape(node.input[0]), g.shape(node.output[0])
        if not known(a, out):
            return None
        return matmul_macs(out, a[-1])
    if op in _RECURRENT:
        x, w, r = g.shape(node.input[0]), g.shape(node.input[1]), g.shape(node.input[2])
        if not known(x, w, r) or len(x) != 3:
            return None
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        steps, batch = (x[1], x[0]) if layout else (x[0], x[1])
        return steps * batch * (prod(w) + prod(r))
    return 0


def attr_graph(node, name: str):
    return next((a.g for a in node.attribute if a.name == name), None)


class MacCounter:
    """MACs of a graph, recursing into control flow: Loop x trip count, If = costlier branch."""

    def __init__(self, g: Graph, weight_params: dict[str, int], taken: dict[str, str] | None = None):
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
            kinds = [k for k in ("then_branch", "else_branch") if attr_graph(node, k) is not None]
            branches = [attr_graph(node, k) for k in kinds]
            if node.name in self.taken and self.taken[node.name] in kinds:  # decided by the input shapes
                best: int | None = kinds.index(self.taken[node.name])
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
            body = attr_graph(node, "body")
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
        macs = node_macs(node, self.g)
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
        body = attr_graph(node, "body")
        if body is not None and len(body.input) > 1 and body.output:
            # only a loop whose condition is passed through unchanged runs exactly `trip` times
            cond_in, cond_out = body.input[1].name, body.output[0].name
            producer = next((n for n in body.node if cond_out in n.output), None)
            fixed = cond_out == cond_in or (producer is not None and producer.op_type == "Identity"
                                            and producer.input[0] == cond_in)
            if not fixed:
                return None
        return int(trip.reshape(-1)[0])
