"""The .tflite flatbuffer reader (LiteRT ships the generated schema; no TensorFlow needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import MissingDependencyError
from edgeml.formats.common import Quantization

_NP_DTYPES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
    "STRING": "string", "BOOL": "bool", "INT16": "int16", "INT8": "int8", "FLOAT64": "float64",
    "UINT64": "uint64", "UINT32": "uint32", "UINT16": "uint16", "INT4": "int4", "BFLOAT16": "bfloat16",
    "COMPLEX64": "complex64", "COMPLEX128": "complex128",
}
# Integer constant tensors only count as weights when they are the bias input of these ops.


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


class TFLiteReader:
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
        shape: list[int | None] = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
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

    def operators(self, subgraph: int = 0) -> Iterator[tuple[str, Any]]:
        """(op name, operator) of every operator of one subgraph, in execution order."""
        sg = self.model.Subgraphs(subgraph)
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            yield self.opcode(op.OpcodeIndex())[0], op

    def producers(self, subgraph: int = 0) -> dict[int, tuple[str, Any]]:
        """Tensor index -> (op name, operator) of the operator that writes it, in one subgraph."""
        return {op.Outputs(i): (name, op) for name, op in self.operators(subgraph)
                for i in range(op.OutputsLength()) if op.Outputs(i) >= 0}

    def op_counts(self) -> dict[str, int]:
        """Operator histogram of every subgraph."""
        counts: dict[str, int] = {}
        for s in range(self.model.SubgraphsLength()):
            for name, _ in self.operators(s):
                counts[name] = counts.get(name, 0) + 1
        return counts

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


# Recurrent ops: input positions of the weight matrices (each element is one MAC per step per batch row).
