"""Format-neutral description of a model: IO specs, ops, params, MACs, weight dtypes, sparsity.

MACs (multiply-accumulates, 1 MAC = 2 FLOPs) are counted for the ops that dominate inference cost and
are counted the same way in every format, so a ``.keras``, its ``.tflite`` and its ``.onnx`` agree:

* convolutions (1-D/2-D/3-D, grouped, depthwise, separable = depthwise + pointwise, transposed):
  ``output positions x output channels x kernel volume x input channels per group``
  (transposed: ``input positions x input channels x kernel volume x output channels per group``);
* dense / fully-connected / Gemm / MatMul / BatchMatMul: ``output elements x reduction length``.

Not counted: bias adds, batch-norm (folded into convolutions by converters), activations, pooling,
element-wise ops, resizes, softmax. These are cheap next to the above for the CNNs edgeml targets and
different converters fold them differently. Recurrent layers (LSTM / GRU / simple RNN, uni- and
bidirectional) count their gate matrices once per time step: ``steps x batch x (W + R)`` elements, i.e.
``4 x hidden x (input + hidden)`` per step for an LSTM, 3x for a GRU, 1x for an RNN (plus a projection
where the layer has one). Control flow: a loop body counts times its trip count, a conditional counts
its costlier branch.

Dynamic dimensions are resolved by ``edgeml.formats.shapes``: a batch dimension is taken as 1, others
come from ``--input-shape`` or data; while any stays unknown the MACs are a partial sum
(``macs_partial``), never a count made on an invented size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

SCHEMA = "edgeml.inspect/1"


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``None`` in ``shape`` marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    quantization: Quantization | None = None
    # symbolic names of dynamic dimensions (ONNX dim_param), aligned with ``shape``; None where unnamed
    symbols: tuple[str | None, ...] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }

    def shape_str(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass
class LayerInfo:
    """One layer (Keras) or op (TFLite/ONNX/SavedModel graph)."""

    name: str
    op: str
    macs: int = 0
    params: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "macs": self.macs, "params": self.params}


@dataclass
class Inspection:
    """What ``edgeml inspect`` reports. ``to_dict()`` is the JSON contract (``edgeml.inspect/1``)."""

    path: str
    format: str
    size_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    params: int
    macs: int
    ops: dict[str, int]
    weight_dtypes: dict[str, int]
    sparsity: float
    custom_ops: list[str] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # True when some ops' MACs could not be counted (unknown dims, data-dependent shapes, loops with an
    # unknown trip count): ``macs`` is then the sum over the ops that could be counted, a lower bound
    macs_partial: bool = False
    macs_shapes: dict[str, tuple] | None = None  # the input shapes the MACs were counted at
    # scalar integer inputs the graph compares with one constant (a sample rate: Equal(sr, 16000)):
    # generated inputs feed that value rather than a random one
    input_values: dict[str, int] = field(default_factory=dict)

    def to_dict(self, *, layers: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "path": self.path,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "params": self.params,
            "macs": self.macs,
            "macs_partial": self.macs_partial,
            "macs_shapes": {k: list(v) for k, v in self.macs_shapes.items()} if self.macs_shapes else None,
            "ops": dict(self.ops),
            "weight_dtypes": dict(self.weight_dtypes),
            "sparsity": self.sparsity,
            "custom_ops": list(self.custom_ops),
            "notes": list(self.notes),
        }
        if layers:
            d["layers"] = [layer.to_dict() for layer in self.layers]
        return d


class WeightStats:
    """Accumulates parameter count, dtype mix and exact-zero fraction over weight tensors."""

    def __init__(self) -> None:
        self.params = 0
        self.zeros = 0
        self.dtypes: Counter[str] = Counter()

    def add(self, values: np.ndarray, *, dtype: str | None = None, zero: float | int = 0) -> int:
        n = int(values.size)
        self.params += n
        self.dtypes[dtype or str(values.dtype)] += n
        if n:
            self.zeros += int(np.count_nonzero(values == zero))
        return n

    @property
    def sparsity(self) -> float:
        return round(self.zeros / self.params, 6) if self.params else 0.0


def dim(d: int | None) -> int:
    """A dimension for MAC counting: dynamic (None / -1 / 0) counts as 1."""
    return 1 if d is None or d <= 0 else int(d)


def conv_macs(out_shape_spatial: tuple, out_channels: int, kernel: tuple, in_channels_per_group: int,
              batch: int = 1) -> int:
    return batch * prod(dim(d) for d in out_shape_spatial) * out_channels * prod(kernel) * in_channels_per_group


def matmul_macs(out_shape: tuple, reduction: int) -> int:
    return prod(dim(d) for d in out_shape) * int(reduction)


def human_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{int(n)}"


def human_bytes(n: float) -> str:
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{int(n)} B"
