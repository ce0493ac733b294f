"""The integer IO contract of an ONNX model: scale and zero-point of its int8/uint8 inputs and outputs.

A full-int8 .tflite converted with tf2onnx keeps its integer inputs and outputs (``image: int8``), but ONNX
has no field for what those integers mean. edgeml records it in the model's ``metadata_props`` under
``edgeml.io_quantization`` (JSON ``{name: {"scale", "zero_point", "dtype"}}``) so that the converted model
can be fed real data and its outputs read back as real values. For ONNX files without that record the
contract is read from the graph where it is unambiguous: an integer input whose every consumer is a
``DequantizeLinear`` with the same constant scalar scale/zero-point, an integer output produced by a
``QuantizeLinear`` with constant scalar scale/zero-point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.formats.common import Quantization, TensorSpec

KEY = "edgeml.io_quantization"
INTEGER = {"int8", "uint8", "int16"}
_LAYOUT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"}  # move integers, change none


def record(model: Any, specs: list[TensorSpec]) -> dict[str, dict[str, Any]]:
    """Store the quantization of ``specs`` (the source's IO) in ``model``'s metadata; returns what was stored."""
    table = {t.name: {"scale": float(t.quantization.scale), "zero_point": int(t.quantization.zero_point),
                      "dtype": t.dtype} for t in specs if t.quantization is not None and t.dtype in INTEGER}
    names = {vi.name for vi in list(model.graph.input) + list(model.graph.output)}
    table = {k: v for k, v in table.items() if k in names}
    keep = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    if table:
        entry = model.metadata_props.add()
        entry.key, entry.value = KEY, json.dumps(table, sort_keys=True)
    return table


def read(model: Any) -> dict[str, Quantization]:
    """The IO quantization of an ONNX ModelProto: the edgeml record, else what the graph states."""
    for p in model.metadata_props:
        if p.key == KEY:
            try:
                table = json.loads(p.value)
                return {k: Quantization(float(v["scale"]), int(v["zero_point"])) for k, v in table.items()}
            except (ValueError, KeyError, TypeError):
                break
    return _from_graph(model)


def read_file(path: str | Path) -> dict[str, Quantization]:
    import onnx

    return read(onnx.load(str(path), load_external_data=False))


def _scalar(consts: dict[str, np.ndarray], name: str) -> float | int | None:
    arr = consts.get(name)
    return arr.reshape(-1)[0].item() if arr is not None and arr.size == 1 else None


def _from_graph(model: Any) -> dict[str, Quantization]:
    from onnx import TensorProto, numpy_helper

    int_types = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16}
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if _small(i)}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    found: dict[str, Quantization] = {}
    init_names = {i.name for i in model.graph.initializer}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producers = {o: n for n in model.graph.node for o in n.output}
    for vi in model.graph.input:
        if vi.name in init_names or vi.type.tensor_type.elem_type not in int_types:
            continue
        params = set()
        stack, seen = [vi.name], set()
        while stack:  # through layout-only ops (tf2onnx puts a Reshape/Transpose before the DequantizeLinear)
            name = stack.pop()
            for n in consumers.get(name, []):
                if n.op_type in _LAYOUT and n.input[0] == name and n.output[0] not in seen:
                    seen.add(n.output[0])
                    stack.append(n.output[0])
                elif n.op_type == "DequantizeLinear" and n.input[0] == name:
                    params.add(_qparams(consts, n))
                else:
                    params.add(None)
        if len(params) == 1 and None not in params:
            found[vi.name] = Quantization(*params.pop())
    for vi in model.graph.output:
        n = producers.get(vi.name)
        while n is not None and n.op_type in _LAYOUT:
            n = producers.get(n.input[0])
        if vi.type.tensor_type.elem_type in int_types and n is not None and n.op_type == "QuantizeLinear":
            q = _qparams(consts, n)
            if q is not None:
                found[vi.name] = Quantization(*q)
    return found


def _small(init: Any) -> bool:
    return int(np.prod(init.dims)) <= 1 if init.dims else True


def _qparams(consts: dict[str, np.ndarray], node: Any) -> tuple[float, int] | None:
    scale = _scalar(consts, node.input[1]) if len(node.input) > 1 else None
    zp = _scalar(consts, node.input[2]) if len(node.input) > 2 and node.input[2] else 0
    return (float(scale), int(zp)) if scale is not None and zp is not None else None


def session_io(session: Any) -> tuple[dict[str, Quantization], dict[str, Quantization]]:
    """(input, output) quantization of a runtime session: its specs, plus an ONNX file's recorded contract."""
    ins = {t.name: t.quantization for t in session.inputs if t.quantization is not None}
    outs = {t.name: t.quantization for t in session.outputs if t.quantization is not None}
    path = getattr(session, "path", None)
    if path is not None and str(getattr(session, "runtime", "")).startswith("onnxruntime"):
        table = read_file(path)
        ins.update({t.name: table[t.name] for t in session.inputs if t.name in table and t.name not in ins})
        outs.update({t.name: table[t.name] for t in session.outputs if t.name in table and t.name not in outs})
    return ins, outs
