"""Read .onnx models: IO, ops, weights and MACs via ONNX shape inference. No TensorFlow needed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import ModelLoadError
from edgeml.formats.common import Inspection, Quantization, TensorSpec, WeightStats
from edgeml.formats.onnx_graph import Graph, MacCounter, all_graphs, graph_inputs, known
from edgeml.formats.onnx_run import fix_input_shapes, runtime_shapes

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}
_WEIGHT_DTYPES = {"float32", "float16", "float64", "bfloat16", "int8", "uint8", "int16", "uint16", "int4",
                  "uint4", "float8e4m3fn", "float8e5m2"}


def _dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _external_tensors(model) -> Iterator[Any]:
    for graph in all_graphs(model.graph):
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


def parse_proto(p: Path):
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
    check_external_data(parse_proto(p), p.parent, p)


def load(path: str | Path, *, check: bool = True, external: list[str] | None = None):
    """Load an ONNX model safely (external data only from the model's folder) and validate it.

    ``external``, when given, receives the model's external-data files (relative to its folder).
    """
    import onnx

    p = Path(path)
    model = parse_proto(p)
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


def _quant_of(name: str, g: Graph, consumers: dict, producers: dict) -> Quantization | None:
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


def spec_of(vi, g: Graph | None = None, consumers=None, producers=None) -> TensorSpec:
    """A graph input/output's ``TensorSpec`` (symbolic dims named; quantization only given the graph ``g``)."""
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


_PASS_THROUGH = {"Reshape", "Cast", "Squeeze", "Unsqueeze", "Identity", "Flatten"}


def compared_values(model, g: Graph, specs: list[TensorSpec]) -> dict[str, int]:
    """Scalar integer inputs the graph tests against exactly one constant (``Equal(sr, 16000)``)."""
    consumers: dict[str, list] = {}
    for graph in all_graphs(model.graph):
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
    raw_inputs = [spec_of(vi) for vi in graph_inputs(model)]
    resolved = resolve(raw_inputs, input_shapes)
    fix_input_shapes(model, resolved.shapes)
    g = Graph(model)
    consumers: dict[str, list] = {}
    producers: dict[str, Any] = {}
    ops: Counter[str] = Counter()
    custom: list[str] = []
    for graph in all_graphs(model.graph):
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
            weight_params[name] = stats.add(np.asarray(g.value(name)), dtype=dtype)
    materialised = 0
    for graph in all_graphs(model.graph):  # weights built at run time (e.g. models with stripped weights)
        for node in graph.node:
            if node.op_type != "ConstantOfShape" or not node.input or g.value(node.input[0]) is None:
                continue
            if not _feeds_weight(node.output[0], consumers):
                continue  # a zero state or a shape helper, not a weight
            shape = np.asarray(g.value(node.input[0]))
            fill = next((onnx.numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                        np.zeros(1, np.float32))
            n = int(np.prod(shape))
            weight_params[node.output[0]] = n
            stats.params += n
            stats.dtypes[str(fill.dtype)] += n
            stats.zeros += n if float(fill.reshape(-1)[0]) == 0.0 else 0
            materialised += n

    counter = MacCounter(g, weight_params)
    total = counter.graph(model.graph)
    notes = []
    if counter.unknown and resolved.complete:  # shape inference gave up: take the shapes from a run
        # resolved.complete: every dimension is known
        feeds = {t.name: np.zeros(resolved.shapes[t.name], np.dtype(t.dtype))  # type: ignore[type-var]
                 for t in raw_inputs}
        taken: dict[str, str] = {}
        captured = runtime_shapes(load(path), feeds, taken)
        if captured:
            for name, got in captured.items():
                if not known(g.shapes.get(name)):
                    g.shapes[name] = got
            counter = MacCounter(g, weight_params, taken)
            total = counter.graph(model.graph)
            notes.append("shapes ONNX shape inference could not resolve were taken from an ONNX Runtime run at "
                         "these input shapes")
    notes += list(dict.fromkeys(counter.notes))
    if materialised:
        notes.append(f"{materialised} parameter(s) are built at run time by ConstantOfShape (placeholder weights)")
    notes += resolved.macs_notes(counter.unknown, "have shapes ONNX shape inference could not resolve")
    partial = bool(counter.unknown)
    if custom:
        notes.append("custom-domain ops " + ", ".join(custom) + " need a runtime with those kernels registered")

    quant_inputs = {vi.name: spec_of(vi, g, consumers, producers).quantization for vi in graph_inputs(model)}
    return Inspection(
        path=str(path), format="onnx",  # the size on disk includes external data files
        size_bytes=path.stat().st_size + sum((path.parent / f).stat().st_size for f in external),
        inputs=[TensorSpec(t.name, t.shape, t.dtype, quant_inputs[t.name], symbols=t.symbols) for t in raw_inputs],
        outputs=[spec_of(vi, g, consumers, producers) for vi in model.graph.output],
        params=stats.params, macs=total, ops=dict(ops.most_common()), weight_dtypes=dict(stats.dtypes),
        sparsity=stats.sparsity, custom_ops=custom, layers=counter.layers, notes=notes, macs_partial=partial,
        macs_shapes=dict(resolved.shapes), input_values=compared_values(model, g, raw_inputs),
    )
