"""Shapes from a run: when ONNX shape inference gives up (shape-dependent control flow), edgeml runs the
model once on zeros at the resolved input shapes with every intermediate value exposed."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgeml.formats.onnx_graph import attr_graph, graph_inputs

log = logging.getLogger("edgeml.formats.onnx")


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
        g = attr_graph(node, branch) if branch else None
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
