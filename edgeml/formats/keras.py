"""Load and describe Keras 3 models (.keras) and legacy Keras 2 HDF5 models (.h5)."""

from __future__ import annotations

import logging
from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

from edgeml._io import path_size
from edgeml._quiet import native_stderr_captured
from edgeml._tf import keras as import_keras
from edgeml.errors import ModelLoadError
from edgeml.formats.common import Inspection, LayerInfo, TensorSpec, WeightStats, conv_macs, dim, matmul_macs

log = logging.getLogger(__name__)


def _check_h5_has_model(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            has_config = "model_config" in f.attrs
    except OSError as exc:
        raise ModelLoadError(f"{path}: corrupt or truncated HDF5 file ({exc})", hint="re-save the model") from exc
    if not has_config:
        raise ModelLoadError(f"{path}: HDF5 file holds weights only, no model architecture",
                             hint="build the model in code, load_weights() this file, then model.save('model.keras')")


def _keras2_compat_objects(keras) -> dict[str, Any]:
    """Built-in layers whose Keras 2 configs carry keys Keras 3 rejects (only default values are dropped)."""

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        # Keras 2 serialised `groups: 1` for DepthwiseConv2D; Keras 3 does not accept the argument.
        def __init__(self, *args, groups: int = 1, **kwargs):
            if groups != 1:
                raise ValueError(f"DepthwiseConv2D with groups={groups} is not supported by Keras 3")
            super().__init__(*args, **kwargs)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    # Keras wraps the real reason after a dump of the whole layer config; keep the reason.
    marker = "Exception encountered:"
    if marker in text:
        cls = text.split("deserializing class '", 1)[-1].split("'", 1)[0] if "deserializing class '" in text else ""
        text = (f"layer class {cls}: " if cls else "") + text.split(marker, 1)[1].strip()
    return text[:300]


def load(path: str | Path, *, compile: bool = False) -> Any:
    """Load a .keras / .h5 model with Keras ``safe_mode`` kept on."""
    p = Path(path)
    keras = import_keras()
    from edgeml.artifact import ModelFormat, detect_format

    custom_objects = None
    if detect_format(p) is ModelFormat.H5:
        _check_h5_has_model(p)
        custom_objects = _keras2_compat_objects(keras)
    try:
        with native_stderr_captured():
            return keras.saving.load_model(str(p), compile=compile, safe_mode=True, custom_objects=custom_objects)
    except Exception as exc:
        text = _reason(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise ModelLoadError(f"{p}: the model contains a Lambda layer (arbitrary code); edgeml keeps Keras "
                                 "safe_mode on and will not execute it",
                                 hint="replace the Lambda layer with a registered custom or built-in layer") from exc
        if "Could not locate" in text or "Unknown layer" in text or "custom_objects" in text:
            raise ModelLoadError(f"{p}: the model uses a custom class Keras cannot find: {text}",
                                 hint="custom layers must be registered with "
                                      "@keras.saving.register_keras_serializable in an importable package") from exc
        raise ModelLoadError(f"{p}: Keras cannot load this model: {text}",
                             hint="check it was saved with model.save(); edgeml reads .keras and Keras 2 .h5") from exc


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
        ins = [t for node in getattr(layer, "_inbound_nodes", []) for t in getattr(node, "arguments").keras_tensors]
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
    cells = [getattr(r, "cell", None) for r in rnns]
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


def _walk_layers(model) -> list:
    layers = []
    for layer in model.layers:
        if {"Functional", "Sequential"} & _class_names(layer) and layer.layers:
            layers.extend(_walk_layers(layer))
        else:
            layers.append(layer)
    return layers


def model_macs(model) -> int:
    """Total MACs of an in-memory Keras model (batch 1)."""
    return sum(layer_macs(layer) for layer in _walk_layers(model))


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
    for layer in _walk_layers(model):
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
            f"({dims}); convert with a fixed shape, or inspect the .tflite/.onnx with --input-shape"]


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
        raise ShapeError(f"cannot rebuild this Keras model on the input shapes given: {_reason(exc)}",
                         hint="convert it to .tflite/.onnx and inspect that with --input-shape") from exc


def inspect(path: Path, *, input_shapes=None) -> Inspection:
    from edgeml.artifact import detect_format

    fmt = detect_format(path).value
    model = load(path)
    fixed = with_input_shapes(model, input_shapes)
    info = describe(fixed, path, fmt)
    if fixed is not model:
        info.inputs, _ = io_specs(model)
        info.macs_shapes = {t.name: s.shape for t, s in zip(info.inputs, io_specs(fixed)[0])}
    return info
