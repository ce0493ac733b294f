"""Describe TensorFlow SavedModel directories (signature IO; ops and MACs from the frozen graph)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgeml._io import path_size
from edgeml._quiet import native_stderr_captured
from edgeml._tf import tensorflow
from edgeml.errors import ModelLoadError
from edgeml.formats.common import Inspection, LayerInfo, TensorSpec, WeightStats, conv_macs, dim, matmul_macs

_SKIP_OPS = {"Const", "Identity", "NoOp", "Placeholder", "IdentityN", "ReadVariableOp", "VarHandleOp"}


def load(path: str | Path) -> tuple[Any, Any]:
    """Load a SavedModel and return ``(loaded object, serving function)``."""
    tf = tensorflow()
    p = Path(path)
    try:
        with native_stderr_captured():
            loaded = tf.saved_model.load(str(p))
    except Exception as exc:
        raise ModelLoadError(f"{p}: TensorFlow cannot load this SavedModel: {' '.join(str(exc).split())[:300]}",
                             hint="re-export it with model.export() or tf.saved_model.save()") from exc
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if not sigs:
        raise ModelLoadError(f"{p}: SavedModel has no serving signature",
                             hint="export with model.export(path) so a 'serving_default' signature exists")
    fn = sigs.get("serving_default") or next(iter(sigs.values()))
    return loaded, fn


def _macs(op, shape) -> int:
    t = op.type
    out = shape(op.outputs[0]) if op.outputs else None
    if out is None:
        return 0
    if t in ("Conv2D", "Conv3D", "Conv1D"):
        k = shape(op.inputs[1])  # (*kernel, in, out)
        nchw = op.get_attr("data_format") in (b"NCHW", b"NCDHW")
        sp = out[2:] if nchw else out[1:-1]
        return conv_macs(sp, dim(k[-1]), tuple(dim(d) for d in k[:-2]), dim(k[-2]), batch=dim(out[0]))
    if t == "DepthwiseConv2dNative":
        k = shape(op.inputs[1])  # (kh, kw, in, mult)
        return conv_macs(out[1:-1], dim(k[2]) * dim(k[3]), (dim(k[0]), dim(k[1])), 1, batch=dim(out[0]))
    if t == "Conv2DBackpropInput":
        k, x = shape(op.inputs[1]), shape(op.inputs[2])  # (kh, kw, out, in)
        return conv_macs(x[1:-1], dim(k[3]), (dim(k[0]), dim(k[1])), dim(k[2]), batch=dim(x[0]))
    if t in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
        a = shape(op.inputs[0])
        transpose = any(op.node_def.attr[name].b for name in ("transpose_a", "adj_x") if name in op.node_def.attr)
        return matmul_macs(out, dim(a[-2] if transpose else a[-1]))
    return 0


def inspect(path: Path) -> Inspection:
    tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded, fn = load(path)
    in_sig = fn.structured_input_signature[1]
    inputs = [TensorSpec(name, tuple(spec.shape.as_list()) if spec.shape.rank is not None else (),
                         spec.dtype.name) for name, spec in sorted(in_sig.items())]
    outs = fn.structured_outputs
    outputs = [TensorSpec(name, tuple(t.shape.as_list()) if t.shape.rank is not None else (), t.dtype.name)
               for name, t in sorted(outs.items())] if isinstance(outs, dict) else []
    stats = WeightStats()
    for var in fn.variables:
        stats.add(var.numpy(), dtype=var.dtype.name)
    try:
        with native_stderr_captured():
            frozen = convert_variables_to_constants_v2(fn)
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot freeze the SavedModel graph for inspection: {exc}",
                             hint="inspect the converted .tflite or .onnx instead") from exc

    def shape(t) -> tuple | None:
        return tuple(t.shape.as_list()) if t.shape.rank is not None else None

    ops: Counter[str] = Counter()
    layers: list[LayerInfo] = []
    for op in frozen.graph.get_operations():
        if op.type in _SKIP_OPS:
            continue
        ops[op.type] += 1
        layers.append(LayerInfo(op.name, op.type, _macs(op, shape), 0))
    return Inspection(
        path=str(path), format="savedmodel", size_bytes=path_size(path), inputs=inputs, outputs=outputs,
        params=stats.params, macs=sum(layer.macs for layer in layers), ops=dict(ops.most_common()),
        weight_dtypes=dict(stats.dtypes), sparsity=stats.sparsity, layers=layers,
    )
