"""Read .tflite flatbuffers without TensorFlow (LiteRT ships the generated schema): IO, ops, weights, MACs.
The flatbuffer reader is :mod:`edgeml.formats.tflite_reader`, the MAC count :mod:`edgeml.formats.tflite_macs`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgeml.errors import MissingDependencyError, ModelLoadError
from edgeml.formats.common import Inspection, LayerInfo, TensorSpec, WeightStats, dim
from edgeml.formats.tflite_macs import MacCounter, Shapes, file_op_macs, op_macs  # noqa: F401 (re-exported)
from edgeml.formats.tflite_reader import TFLiteReader, schema  # noqa: F401 (re-exported)

# the reader's old private name: the quantize-budget and ONNX->TFLite branches still import it; drop it once
# they use TFLiteReader
_Reader = TFLiteReader

_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3, "CONV_3D": 2}


def _validate_with_runtime(path: Path, inspection: Inspection) -> None:
    from edgeml._litert import load_interpreter

    if inspection.custom_ops:
        inspection.notes.append(
            "custom ops " + ", ".join(inspection.custom_ops) + " need a delegate or op resolver at run time "
            "(edgetpu-custom-op: the Coral Edge TPU delegate, libedgetpu)")
        return
    from edgeml.formats.shapes import resolve

    unknown = not resolve(inspection.inputs).complete
    try:  # unknown input dims: ops are checked, but nothing is prepared at the placeholder size 1
        load_interpreter(path, allocate=not unknown)
    except MissingDependencyError:
        inspection.notes.append("no TFLite runtime installed: the model was parsed but not loaded")


def inspect(path: Path, *, validate: bool = True, input_shapes=None) -> Inspection:
    """Describe a .tflite file; with ``validate`` the LiteRT interpreter must also accept it.

    ``input_shapes`` (see edgeml.formats.shapes) fix dynamic input dimensions for the MAC count.
    """
    from edgeml.errors import EdgeMLError

    data = path.read_bytes()
    try:
        info = _parse(path, data, input_shapes)
    except (EdgeMLError, MissingDependencyError):
        raise
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{path}: a tensor or operator name in the model is not valid UTF-8 ({exc.object[:40]!r})",
                             hint="rename it when exporting; runtimes cannot address such a tensor") from exc
    except Exception as exc:  # flatbuffers raise struct/index errors on truncated or corrupt data
        raise ModelLoadError(f"{path}: corrupt or truncated TFLite file ({type(exc).__name__}: {exc})",
                             hint="re-export the model; the file does not parse as a TFLite flatbuffer") from exc
    if validate:
        _validate_with_runtime(path, info)
    return info


def _parse(path: Path, data: bytes, input_shapes=None) -> Inspection:
    from edgeml.formats.shapes import resolve

    reader = TFLiteReader(path, data)
    model = reader.model
    if model.SubgraphsLength() < 1:
        raise ModelLoadError(f"{path}: TFLite file has no subgraph", hint="re-export the model")
    main = model.Subgraphs(0)
    sig_names = reader.signature_names()

    def spec(t_idx: int) -> TensorSpec:
        t = main.Tensors(t_idx)
        name = sig_names.get(t_idx) or t.Name().decode("utf-8", "replace")
        return TensorSpec(name, reader.shape(t), reader.dtype(t), reader.quantization(t))

    inputs = [spec(main.Inputs(i)) for i in range(main.InputsLength())]
    resolved = resolve(inputs, input_shapes)
    shapes = Shapes(reader, resolved, path)
    counter = MacCounter(reader, shapes)
    total_macs = counter.subgraph(0, 1)

    ops: Counter[str] = Counter()
    custom: list[str] = []
    layers: list[LayerInfo] = []
    stats = WeightStats()
    seen_weights: set[tuple[int, int]] = set()
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            name, is_custom = reader.opcode(op.OpcodeIndex())
            ops[name] += 1
            if is_custom and name not in custom:
                custom.append(name)
            params = 0
            for pos in range(op.InputsLength()):
                t_idx = op.Inputs(pos)
                if t_idx < 0:
                    continue
                tensor = sg.Tensors(t_idx)
                raw = reader.buffer(tensor)
                if raw is None or (g, t_idx) in seen_weights:
                    continue
                dtype = reader.dtype(tensor)
                if dtype in ("int32", "int64") and _BIAS_INPUT.get(name) != pos:
                    continue  # shapes, axes, paddings: not weights
                if dtype in ("string", "bool"):
                    continue
                seen_weights.add((g, t_idx))
                params += _add_weight(stats, tensor, raw, dtype, reader)
            out_idx = op.Outputs(0) if op.OutputsLength() else -1
            out_name = sg.Tensors(out_idx).Name().decode("utf-8", "replace") if out_idx >= 0 else f"op{k}"
            layers.append(LayerInfo(out_name, name, counter.macs.get((g, k), 0), params))

    notes = list(dict.fromkeys(counter.notes)) + shapes.notes
    notes += resolved.macs_notes(counter.unknown, "could not be counted")
    partial = bool(counter.unknown)
    return Inspection(
        path=str(path), format="tflite", size_bytes=len(data),
        inputs=inputs,
        outputs=[spec(main.Outputs(i)) for i in range(main.OutputsLength())],
        params=stats.params, macs=total_macs, ops=dict(ops.most_common()), weight_dtypes=dict(stats.dtypes),
        sparsity=stats.sparsity, custom_ops=custom, layers=layers, notes=notes, macs_partial=partial,
        macs_shapes=dict(resolved.shapes),
    )


def _add_weight(stats: WeightStats, tensor, raw: np.ndarray, dtype: str, reader: TFLiteReader) -> int:
    shape = reader.shape(tensor)
    count = int(np.prod([dim(d) for d in shape])) if shape else 1
    try:
        values = raw.view(np.dtype(dtype))
    except TypeError:  # int4, bfloat16, ...: count elements, no zero scan
        stats.params += count
        stats.dtypes[dtype] += count
        return count
    q = reader.quantization(tensor)
    zero = q.zero_point if (q is not None and dtype in ("int8", "uint8", "int16")) else 0
    if tensor.Sparsity() is not None and values.size < count:
        # stored sparse (read through DENSIFY, or by a sparse kernel): the buffer holds only the kept values;
        # the weight is its dense shape, and every value not stored is a zero
        stats.add(values, dtype=dtype, zero=zero)
        stats.params += count - values.size
        stats.dtypes[dtype] += count - values.size
        stats.zeros += count - values.size
        return count
    return stats.add(values[:count] if values.size >= count else values, dtype=dtype, zero=zero)
