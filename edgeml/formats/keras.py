"""Describe Keras 3 models (.keras) and legacy Keras 2 HDF5 models (.h5): layers, MACs, IO, weights. Loading is
edgeml.formats.keras_load (``load`` is importable from here too)."""

from __future__ import annotations

from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from edgeml._io import path_size
from edgeml._tf import keras as import_keras
from edgeml.errors import ModelLoadError
from edgeml.formats.common import Inspection, LayerInfo, TensorSpec, WeightStats, conv_macs, dim, matmul_macs
from edgeml.formats.keras_load import error_text, load


def _class_names(layer) -> set[str]:
    return {c.__name__ for c in type(layer).__mro__}


def _output_shapes(layer) -> list[tuple]:
    try:
        outs = layer.output
    except (AttributeError, ValueError, RuntimeError):  # shared layers have several inbound nodes
        outs = [t for node in getattr(layer, "_inbound_nodes", []) for t in getattr(node, "outputs", [])]
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    return [tuple(t.shape) for t in outs if hasattr(t, "shape")]


def _input_shapes(layer) -> list[tuple]:
    try:
        ins = layer.input
    except (AttributeError, ValueError, RuntimeError):
        ins = [t for node in getattr(layer, "_inbound_nodes", []) for t in node.arguments.keras_tensors]
    if not isinstance(ins, (list, tuple)):
        ins = [ins]
    return [tuple(t.shape) for t in ins if hasattr(t, "shape")]


def layer_macs(layer) -> int:
    """MACs of one Keras layer for all of its calls (see edgeml.formats.common for what counts)."""
    names = _class_names(layer)
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"

    def spatial(shape: tuple) -> tuple:
        return shape[2:] if channels_first else shape[1:-1]

    total = 0
    rnns = [layer.forward_layer, layer.backward_layer] if "Bidirectional" in names else [layer]
    cells: list[Any] = [getattr(r, "cell", None) for r in rnns]
    if all(c is not None and hasattr(c, "recurrent_kernel") and hasattr(c, "kernel") for c in cells):
        per_step = sum(int(prod(c.kernel.shape)) + int(prod(c.recurrent_kernel.shape)) for c in cells)
        shp = (_input_shapes(layer) or [()])[0]
        return dim(shp[0]) * dim(shp[1]) * per_step if len(shp) >= 3 else 0  # batch x steps x (W + R)
    if "BaseConvTranspose" in names:
        k = layer.kernel.shape  # (*kernel, out, in)
        for shp in _input_shapes(layer):
            total += conv_macs(spatial(shp), int(k[-1]), tuple(k[:-2]), int(k[-2]) // layer.groups
                               if hasattr(layer, "groups") else int(k[-2]), batch=dim(shp[0]))
        return total
    for out in _output_shapes(layer):
        b = dim(out[0])
        if "BaseSeparableConv" in names:
            k = layer.depthwise_kernel.shape  # (*kernel, in, multiplier)
            cin, mult = int(k[-2]), int(k[-1])
            cout = int(layer.pointwise_kernel.shape[-1])
            total += conv_macs(spatial(out), cin * mult, tuple(k[:-2]), 1, batch=b)
            total += conv_macs(spatial(out), cout, (1,), cin * mult, batch=b)
        elif "BaseDepthwiseConv" in names:
            k = layer.kernel.shape  # (*kernel, in, multiplier)
            total += conv_macs(spatial(out), int(k[-2]) * int(k[-1]), tuple(k[:-2]), 1, batch=b)
        elif "BaseConv" in names:
            k = layer.kernel.shape  # (*kernel, in/groups, out)
            total += conv_macs(spatial(out), int(k[-1]), tuple(k[:-2]), int(k[-2]), batch=b)
        elif "Dense" in names:
            total += matmul_macs(out, int(layer.kernel.shape[0]))
    return total


def unknown_dims(layer) -> bool:
    """True when a layer that costs MACs has a dynamic non-batch dimension (its MACs cannot be counted)."""
    names = _class_names(layer)
    if not ({"BaseConv", "BaseConvTranspose", "BaseSeparableConv", "BaseDepthwiseConv", "Dense", "Bidirectional"}
            & names or hasattr(getattr(layer, "cell", None), "recurrent_kernel")):
        return False
    shapes = _input_shapes(layer) + _output_shapes(layer)
    return any(d is None for shp in shapes for d in shp[1:])


def walk_layers(model) -> list:
    layers = []
    for layer in model.layers:
        if {"Functional", "Sequential"} & _class_names(layer) and layer.layers:
            layers.extend(walk_layers(layer))
        else:
            layers.append(layer)
    return layers


def model_macs(model) -> int:
    """Total MACs of an in-memory Keras model (batch 1)."""
    return sum(layer_macs(layer) for layer in walk_layers(model))


def _tensor_name(t, fallback: str) -> str:
    hist = getattr(t, "_keras_history", None)
    op = getattr(hist, "operation", None) if hist is not None else None
    return getattr(op, "name", None) or getattr(t, "name", None) or fallback


def io_specs(model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    def spec(t, name: str) -> TensorSpec:
        return TensorSpec(name, tuple(None if d is None else int(d) for d in t.shape), str(t.dtype))

    def in_name(t, i: int) -> str:
        name = getattr(t, "name", None) or ""
        # Sequential models name inputs "keras_tensor_N"; the InputLayer's name is the readable one
        return _tensor_name(t, f"input_{i}") if (not name or name.startswith("keras_tensor")) else name

    inputs = [spec(t, in_name(t, i)) for i, t in enumerate(model.inputs)]
    out_names = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(model.outputs):
        out_names = [_tensor_name(t, f"output_{i}") for i, t in enumerate(model.outputs)]
    outputs = [spec(t, n) for t, n in zip(model.outputs, out_names)]
    return inputs, outputs


def describe(model, path: Path, fmt: str) -> Inspection:
    """Describe an already-loaded Keras model."""
    if not getattr(model, "inputs", None):
        raise ModelLoadError(f"{path}: model has no defined inputs (a subclassed model that was never built)",
                             hint="edgeml supports Functional and Sequential models with an Input shape")
    inputs, outputs = io_specs(model)
    ops: Counter[str] = Counter()
    layers: list[LayerInfo] = []
    unknown: list[str] = []
    for layer in walk_layers(model):
        cls = type(layer).__name__
        if cls == "InputLayer":
            continue
        ops[cls] += 1
        if unknown_dims(layer):
            unknown.append(layer.name)
        macs = 0 if unknown_dims(layer) else layer_macs(layer)
        layers.append(LayerInfo(layer.name, cls, macs, int(layer.count_params())))
    stats = WeightStats()
    for w in model.weights:
        stats.add(w.numpy(), dtype=str(w.dtype))
    return Inspection(
        path=str(path), format=fmt, size_bytes=path_size(path), inputs=inputs, outputs=outputs,
        params=int(model.count_params()), macs=sum(layer.macs for layer in layers), ops=dict(ops.most_common()),
        weight_dtypes=dict(stats.dtypes), sparsity=stats.sparsity, layers=layers, notes=_notes(inputs, unknown),
        macs_partial=bool(unknown),
    )


def _notes(inputs: list[TensorSpec], unknown: list[str]) -> list[str]:
    if not unknown:
        return []
    from edgeml.formats.shapes import resolve

    resolved = resolve(inputs)
    dims = ", ".join(str(u) for u in resolved.unknown) or "inside the model"
    return [f"MACs partial: {len(unknown)} layer(s) ({', '.join(unknown[:3])}) have dynamic dimensions "
            f"({dims}); convert with a fixed shape, or inspect the .tflite/.onnx with `input_shapes`"]


def with_input_shapes(model, input_shapes):
    """The model rebuilt on fixed input shapes (MACs of dynamic dims), or the model itself when none."""
    from edgeml.formats.shapes import ShapeError, resolve

    inputs, _ = io_specs(model)
    resolved = resolve(inputs, input_shapes)
    if not resolved.overridden:
        return model
    keras = import_keras()
    new_inputs = [keras.Input(batch_shape=resolved.shapes[t.name], dtype=t.dtype, name=f"in_{i}")
                  for i, t in enumerate(inputs)]
    try:
        return keras.models.clone_model(model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0])
    except Exception as exc:
        raise ShapeError(f"cannot rebuild this Keras model on the input shapes given: {error_text(exc)}",
                         hint="convert it to .tflite/.onnx and inspect that with `input_shapes`") from exc


def inspect(path: Path, *, input_shapes=None) -> Inspection:
    from edgeml.formats.detect import detect_format

    fmt = detect_format(path).value
    model = load(path)
    fixed = with_input_shapes(model, input_shapes)
    info = describe(fixed, path, fmt)
    if fixed is not model:
        info.inputs, _ = io_specs(model)
        info.macs_shapes = {t.name: s.shape for t, s in zip(info.inputs, io_specs(fixed)[0])}
    return info
