"""Recording the integer IO contract of an ONNX model (scale and zero-point of its int8/uint8 inputs and
outputs) in its ``metadata_props``, and reading it for a session. Why and how it is read from a file:
:mod:`edgeml.formats.onnx_io`.
"""

from __future__ import annotations

import json
from typing import Any

from edgeml.formats.common import Quantization, TensorSpec

# reading the contract (metadata record, else the graph) sits with the ONNX format: runtimes use it too
from edgeml.formats.onnx_io import INTEGER, KEY, read, read_file  # noqa: F401 (re-exported)


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
