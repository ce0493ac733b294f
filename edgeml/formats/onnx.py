"""Read .onnx models: IO, ops, weights and MACs via ONNX shape inference. No TensorFlow needed."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import ModelLoadError
from edgeml.formats.common import (Inspection, LayerInfo, Quantization, TensorSpec, WeightStats, conv_macs,
                                   dim, matmul_macs)

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
    """Shapes and constant values of one (shape-inferred) graph."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        self.np = numpy_helper
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception as exc:  # inference is best effort; MACs then come out incomplete
            log.debug("shape inference failed: %s", exc)
            inferred = model
        g = inferred.graph
        self.graph = model.graph
        self.shapes: dict[str, tuple] = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                                             for d in t.shape.dim)
        self.consts: dict[str, Any] = {}
        for init in model.graph.initializer:
            self.consts[init.name] = init
            self.shapes[init.name] = tuple(init.dims)
        for node in model.graph.node:
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


def _node_macs(node, g: _Graph) -> int | None:
    """MACs of one node, 0 for uncounted ops, None when a needed shape is unknown."""
    op = node.op_type
    w_pos = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}.get(op)
    if w_pos is not None:
        w, out = g.shape(node.input[w_pos]), g.shape(node.output[0])
        if not w or not out or len(out) < 3:
            return None
        return conv_macs(out[2:], dim(w[0]), tuple(dim(k) for k in w[2:]), dim(w[1]), batch=dim(out[0]))
    if op == "ConvTranspose":
        w, x = g.shape(node.input[1]), g.shape(node.input[0])
        if not w or not x:
            return None
        return conv_macs(x[2:], dim(w[0]), tuple(dim(k) for k in w[2:]), dim(w[1]), batch=dim(x[0]))
    if op == "Gemm":
        a, out = g.shape(node.input[0]), g.shape(node.output[0])
        if not a or not out:
            return None
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        return matmul_macs(out, dim(a[0] if trans_a else a[-1]))
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a, out = g.shape(node.input[0]), g.shape(node.output[0])
        if not a or out is None:
            return None
        return matmul_macs(out, dim(a[-1]))
    return 0


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


def inspect(path: Path) -> Inspection:
    import onnx

    external: list[str] = []
    model = load(path, external=external)
    g = _Graph(model)
    consumers: dict[str, list] = {}
    producers: dict[str, Any] = {}
    for node in model.graph.node:
        for pos, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, pos))
        for name in node.output:
            producers[name] = node
    ops: Counter[str] = Counter()
    custom: list[str] = []
    for graph in _all_graphs(model.graph):
        for node in graph.node:
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
    for node in model.graph.node:  # weights materialised at run time (e.g. models with stripped weights)
        if node.op_type == "ConstantOfShape" and node.input and g.value(node.input[0]) is not None:
            shape = g.value(node.input[0])
            fill = next((onnx.numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                        np.zeros(1, np.float32))
            n = int(np.prod(shape))
            weight_params[node.output[0]] = n
            stats.params += n
            stats.dtypes[str(fill.dtype)] += n
            stats.zeros += n if float(fill.reshape(-1)[0]) == 0.0 else 0

    layers: list[LayerInfo] = []
    unknown = 0
    total = 0
    for node in model.graph.node:
        macs = _node_macs(node, g)
        if macs is None:
            unknown += 1
            macs = 0
        total += macs
        params = sum(weight_params.get(i, 0) for i in node.input)
        group = next((a.i for a in node.attribute if a.name == "group"), 1) if node.op_type == "Conv" else 1
        op = "Conv(depthwise)" if group > 1 else node.op_type  # grouped convs cost like depthwise ones
        layers.append(LayerInfo(node.name or node.output[0], op, macs, params))
    notes = []
    if unknown:
        notes.append(f"MACs incomplete: {unknown} node(s) have shapes ONNX shape inference could not resolve")
    if custom:
        notes.append("custom-domain ops " + ", ".join(custom) + " need a runtime with those kernels registered")

    init_names = set(g.consts)

    def spec(vi) -> TensorSpec:
        t = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim)
        return TensorSpec(vi.name, shape, _dtype_name(t.elem_type), _quant_of(vi.name, g, consumers, producers))

    return Inspection(
        path=str(path), format="onnx",  # the size on disk includes external data files
        size_bytes=path.stat().st_size + sum((path.parent / f).stat().st_size for f in external),
        inputs=[spec(vi) for vi in model.graph.input if vi.name not in init_names],
        outputs=[spec(vi) for vi in model.graph.output],
        params=stats.params, macs=total, ops=dict(ops.most_common()), weight_dtypes=dict(stats.dtypes),
        sparsity=stats.sparsity, custom_ops=custom, layers=layers, notes=notes,
    )
