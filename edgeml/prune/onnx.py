"""One-shot magnitude pruning of an ONNX model's weight initializers (no fine-tuning possible here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import EdgeMLError
from edgeml.prune.magnitude import masks

WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def prune_onnx(src: Path, out: Path, sparsity: float, *, scope: str = "layer",
               exclude: str | None = None) -> list[dict[str, Any]]:
    """Zero the smallest weights of Conv/ConvTranspose/Gemm/MatMul initializers; write ``out``."""
    import onnx
    from onnx import numpy_helper

    from edgeml.formats.onnx import load

    model = load(src)
    rx = re.compile(exclude) if exclude else None
    inits = {t.name: t for t in model.graph.initializer}
    chosen: dict[str, tuple[str, str]] = {}
    for node in model.graph.node:
        k = WEIGHT_INPUT.get(node.op_type)
        if k is None or len(node.input) <= k or node.input[k] not in inits:
            continue
        if rx and (rx.search(node.name) or rx.search(node.input[k])):
            continue
        t = inits[node.input[k]]
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            chosen.setdefault(t.name, (node.name or t.name, node.op_type))
    if not chosen:
        raise EdgeMLError(f"{src}: no prunable float weights (Conv/Gemm/MatMul initializers)"
                          + (f" outside `exclude` {exclude}" if exclude else ""),
                          hint="a quantized ONNX model cannot be pruned; prune the float model first")
    names = list(chosen)
    arrays = [numpy_helper.to_array(inits[n]) for n in names]
    rows = []
    for n, w, m in zip(names, arrays, masks(arrays, sparsity, scope)):
        pruned = np.where(m, w, np.zeros((), w.dtype))
        inits[n].CopyFrom(numpy_helper.from_array(pruned, n))
        rows.append({"name": n, "op": chosen[n][1], "weights": int(w.size),
                     "sparsity": float((pruned == 0).sum() / w.size)})
    onnx.save(model, str(out))
    return rows


def onnx_stats(path: Path) -> dict[str, int]:
    from onnx import numpy_helper

    from edgeml.formats.onnx import load

    model = load(path, check=False)
    params = nonzero = 0
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            params += a.size
            nonzero += int(np.count_nonzero(a))
    return {"params": params, "nonzero_params": nonzero}
