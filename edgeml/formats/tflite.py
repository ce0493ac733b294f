"""Read .tflite flatbuffers without TensorFlow (LiteRT ships the generated schema)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from edgeml.errors import MissingDependencyError, ModelLoadError
from edgeml.formats.common import (Inspection, LayerInfo, Quantization, TensorSpec, WeightStats, conv_macs,
                                   dim, matmul_macs)

log = logging.getLogger(__name__)

_NP_DTYPES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
    "STRING": "string", "BOOL": "bool", "INT16": "int16", "INT8": "int8", "FLOAT64": "float64",
    "UINT64": "uint64", "UINT32": "uint32", "UINT16": "uint16", "INT4": "int4", "BFLOAT16": "bfloat16",
    "COMPLEX64": "complex64", "COMPLEX128": "complex128",
}
# Integer constant tensors only count as weights when they are the bias input of these ops.
_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3, "CONV_3D": 2}


def schema():
    """The generated TFLite flatbuffer schema module."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated  # type: ignore[no-redef]
        except ImportError as exc:
            raise MissingDependencyError("reading .tflite files needs ai-edge-litert or tensorflow",
                                         hint="pip install ai-edge-litert") from exc
    return schema_py_generated


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Reader:
    def __init__(self, path: Path, data: bytes):
        S = schema()
        self.path, self.data, self.S = path, data, S
        self.model = S.Model.GetRootAs(data, 0)
        self.op_names = _enum_names(S.BuiltinOperator)
        self.type_names = _enum_names(S.TensorType)

    def opcode(self, index: int) -> tuple[str, bool]:
        code = self.model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == self.S.BuiltinOperator.CUSTOM:
            return (code.CustomCode() or b"?").decode("utf-8", "replace"), True
        return self.op_names.get(builtin, f"BUILTIN_{builtin}"), False

    def dtype(self, tensor) -> str:
        name = self.type_names.get(tensor.Type(), str(tensor.Type()))
        return _NP_DTYPES.get(name, name.lower())

    def buffer(self, tensor) -> np.ndarray | None:
        idx = tensor.Buffer()
        if idx <= 0 or idx >= self.model.BuffersLength():
            return None
        buf = self.model.Buffers(idx)
        offset = buf.Offset() if hasattr(buf, "Offset") else 0
        if offset > 1:  # models > 2 GB keep buffers after the flatbuffer
            raw = np.frombuffer(self.data, dtype=np.uint8, count=buf.Size(), offset=offset)
        elif buf.DataLength() > 0:
            raw = buf.DataAsNumpy()
        else:
            return None
        return raw

    @staticmethod
    def shape(tensor) -> tuple[int | None, ...]:
        shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
        if tensor.ShapeSignatureLength():
            sig = tensor.ShapeSignatureAsNumpy()
            shape = [None if int(s) < 0 else d for d, s in zip(shape, sig)]
        return tuple(shape)

    @staticmethod
    def quantization(tensor) -> Quantization | None:
        q = tensor.Quantization()
        if q is None or q.ScaleLength() != 1:
            return None
        zp = int(q.ZeroPointAsNumpy()[0]) if q.ZeroPointLength() else 0
        return Quantization(float(q.ScaleAsNumpy()[0]), zp)

    def signature_names(self) -> dict[int, str]:
        """Tensor index -> signature name, when the model has exactly one signature."""
        if self.model.SignatureDefsLength() != 1:
            return {}
        sig = self.model.SignatureDefs(0)
        names = {}
        for i in range(sig.InputsLength()):
            names[sig.Inputs(i).TensorIndex()] = sig.Inputs(i).Name().decode()
        for i in range(sig.OutputsLength()):
            names[sig.Outputs(i).TensorIndex()] = sig.Outputs(i).Name().decode()
        return names


def _op_macs(op_name: str, sg, op, reader: _Reader) -> int:
    def t_shape(i: int) -> tuple:
        idx = op.Inputs(i) if i >= 0 else op.Outputs(0)
        return tuple(dim(d) for d in reader.shape(sg.Tensors(idx))) if idx >= 0 else ()

    out = t_shape(-1)
    if op_name == "CONV_2D":
        o, kh, kw, ipg = t_shape(1)
        return conv_macs(out[1:3], o, (kh, kw), ipg, batch=out[0])
    if op_name == "DEPTHWISE_CONV_2D":
        _, kh, kw, o = t_shape(1)
        return conv_macs(out[1:3], o, (kh, kw), 1, batch=out[0])
    if op_name == "CONV_3D":
        kd, kh, kw, ipg, o = t_shape(1)
        return conv_macs(out[1:4], o, (kd, kh, kw), ipg, batch=out[0])
    if op_name == "FULLY_CONNECTED":
        return matmul_macs(out, t_shape(1)[-1])
    if op_name == "TRANSPOSE_CONV":
        o, kh, kw, i = t_shape(1)
        inp = t_shape(2)
        return conv_macs(inp[1:3], i, (kh, kw), o, batch=inp[0])
    if op_name in ("BATCH_MATMUL",):
        a = t_shape(0)
        adj_x = False
        opts = op.BuiltinOptions()
        if opts is not None:
            bm = reader.S.BatchMatMulOptions()
            bm.Init(opts.Bytes, opts.Pos)
            adj_x = bool(bm.AdjX())
        return matmul_macs(out, a[-2] if adj_x else a[-1])
    return 0


def _validate_with_runtime(path: Path, inspection: Inspection) -> None:
    from edgeml.runtimes.litert import load_interpreter

    if inspection.custom_ops:
        inspection.notes.append(
            "custom ops " + ", ".join(inspection.custom_ops) + " need a delegate or op resolver at run time "
            "(edgetpu-custom-op: the Coral Edge TPU delegate, libedgetpu)")
        return
    try:
        load_interpreter(path)
    except MissingDependencyError:
        inspection.notes.append("no TFLite runtime installed: the model was parsed but not loaded")


def inspect(path: Path, *, validate: bool = True) -> Inspection:
    """Describe a .tflite file; with ``validate`` the LiteRT interpreter must also accept it."""
    data = path.read_bytes()
    try:
        info = _parse(path, data)
    except (ModelLoadError, MissingDependencyError):
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


def _parse(path: Path, data: bytes) -> Inspection:
    reader = _Reader(path, data)
    model = reader.model
    if model.SubgraphsLength() < 1:
        raise ModelLoadError(f"{path}: TFLite file has no subgraph", hint="re-export the model")
    ops: Counter[str] = Counter()
    custom: list[str] = []
    layers: list[LayerInfo] = []
    stats = WeightStats()
    seen_weights: set[tuple[int, int]] = set()
    total_macs = 0
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            name, is_custom = reader.opcode(op.OpcodeIndex())
            ops[name] += 1
            if is_custom and name not in custom:
                custom.append(name)
            macs = 0 if is_custom else _op_macs(name, sg, op, reader)
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
            total_macs += macs
            out_idx = op.Outputs(0) if op.OutputsLength() else -1
            out_name = sg.Tensors(out_idx).Name().decode("utf-8", "replace") if out_idx >= 0 else f"op{k}"
            layers.append(LayerInfo(out_name, name, macs, params))
    main = model.Subgraphs(0)
    sig_names = reader.signature_names()

    def spec(t_idx: int) -> TensorSpec:
        t = main.Tensors(t_idx)
        name = sig_names.get(t_idx) or t.Name().decode("utf-8", "replace")
        return TensorSpec(name, reader.shape(t), reader.dtype(t), reader.quantization(t))

    return Inspection(
        path=str(path), format="tflite", size_bytes=len(data),
        inputs=[spec(main.Inputs(i)) for i in range(main.InputsLength())],
        outputs=[spec(main.Outputs(i)) for i in range(main.OutputsLength())],
        params=stats.params, macs=total_macs, ops=dict(ops.most_common()), weight_dtypes=dict(stats.dtypes),
        sparsity=stats.sparsity, custom_ops=custom, layers=layers,
    )


def _add_weight(stats: WeightStats, tensor, raw: np.ndarray, dtype: str, reader: _Reader) -> int:
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
    return stats.add(values[:count] if values.size >= count else values, dtype=dtype, zero=zero)
