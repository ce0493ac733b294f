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


def _h5_model_config(path: Path) -> dict:
    """The architecture stored in a Keras HDF5 file (clear errors for weights-only or broken files)."""
    import json

    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ModelLoadError(f"{path}: corrupt or truncated HDF5 file ({exc})", hint="re-save the model") from exc
    if raw is None:
        raise ModelLoadError(f"{path}: HDF5 file holds weights only, no model architecture",
                             hint="build the model in code, load_weights() this file, then model.save('model.keras')")
    try:
        return json.loads(raw.decode() if hasattr(raw, "decode") else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: the HDF5 model_config is not valid JSON ({exc})", hint="re-save the model") \
            from exc


# Keras 2 recorded raw TensorFlow calls on symbolic tensors (x + 3, tf.nn.relu6(x), x[:, 0]) as these layers;
# they hold TensorFlow function names, which Keras 3 has no way to rebuild.
_TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


def _keras2_fixes(config: Any, path: Path) -> tuple[Any, list[str]]:
    """Rewrite a Keras 2 model_config into one Keras 3 accepts, changing nothing the model computes.

    - ``DepthwiseConv2D`` configs carry ``groups: 1`` (Keras 3 rejects the argument); it is dropped.
    - Layer names with ``/`` (``Conv/BatchNorm`` in Keras 2's MobileNetV3) are invalid in Keras 3; the ``/``
      becomes ``_`` everywhere the name is referenced. (HDF5 weights are matched by layer order, not name.)
    Returns (config, what was changed)."""
    names: set[str] = set()
    found_ops: dict[str, int] = {}

    def scan(node: Any) -> None:
        if isinstance(node, dict):
            cls = node.get("class_name")
            cfg = node.get("config")
            if cls in _TF_OP_LAYERS:
                fn = cfg.get("function", "?") if isinstance(cfg, dict) else "?"
                found_ops[str(fn)] = found_ops.get(str(fn), 0) + 1
            if cls == "DepthwiseConv2D" and isinstance(cfg, dict) and "groups" in cfg:
                if cfg["groups"] != 1:
                    raise ModelLoadError(f"{path}: layer {cfg.get('name')}: DepthwiseConv2D with groups="
                                         f"{cfg['groups']} has no Keras 3 equivalent",
                                         hint="re-export the model from Keras 2 as a SavedModel or .tflite, which "
                                              "edgeml reads")
                del cfg["groups"]
            if isinstance(cfg, dict) and isinstance(cfg.get("name"), str) and "/" in cfg["name"]:
                names.add(cfg["name"])
            for v in node.values():
                scan(v)
        elif isinstance(node, list):
            for v in node:
                scan(v)

    scan(config)
    if found_ops:
        ops = ", ".join(f"{fn} x{n}" if n > 1 else fn for fn, n in sorted(found_ops.items()))
        raise ModelLoadError(f"{path}: Keras 2 recorded raw TensorFlow operations in this model as TFOpLambda layers "
                             f"({ops}); Keras 3 cannot rebuild them",
                             hint="load it with tf_keras (pip install tf_keras) and export a SavedModel "
                                  "(model.export(DIR)) or .tflite, which edgeml reads; or rebuild those operations "
                                  "as Keras layers")
    changes = []
    if names:
        scan_names: list[str] = []

        def collect(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("config"), dict) and isinstance(node["config"].get("name"), str):
                    scan_names.append(node["config"]["name"])
                for v in node.values():
                    collect(v)
            elif isinstance(node, list):
                for v in node:
                    collect(v)

        collect(config)
        taken = set(scan_names)
        mapping = {}
        for old in sorted(names):
            new = old.replace("/", "_")
            while new in taken:
                new += "_"
            taken.add(new)
            mapping[old] = new

        def rename(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rename(v) for k, v in node.items()}
            if isinstance(node, list):
                return [rename(v) for v in node]
            return mapping.get(node, node) if isinstance(node, str) else node

        config = rename(config)
        changes.append(f"{len(mapping)} layer name(s) with '/' renamed ('/' -> '_'), e.g. "
                       f"{next(iter(mapping))} -> {next(iter(mapping.values()))}")
    return config, changes


def _keras2_optimizer_fixes(training: dict, keras: Any) -> list[str]:
    """Make a Keras 2 training_config's optimizer one Keras 3 can build (in place): ``lr`` is ``learning_rate``,
    and arguments Keras 3 optimizers no longer take (``decay``, ...) are dropped. Only the optimizer is touched
    (fine-tuning and re-saving use the loss; the old optimizer's state is not carried over anyway)."""
    import inspect

    opt = training.get("optimizer_config")
    if not isinstance(opt, dict) or not isinstance(opt.get("config"), dict):
        return []
    cfg = opt["config"]
    try:
        cls = type(keras.optimizers.get(opt.get("class_name", "")))
    except (ValueError, TypeError):
        return []  # unknown optimizer: let Keras say so
    if "lr" in cfg:
        cfg.setdefault("learning_rate", cfg.pop("lr"))
    accepted = set(inspect.signature(cls.__init__).parameters)
    dropped = sorted(k for k in cfg if k not in accepted)
    for k in dropped:
        del cfg[k]
    return [f"optimizer {opt.get('class_name')}: dropped Keras 2 arguments {', '.join(dropped)}"] if dropped else []


def _load_h5(path: Path, keras: Any, compile: bool) -> Any:
    """Load a (Keras 2) HDF5 model, through a patched temporary copy when its config needs Keras 3 fixes."""
    import json
    import shutil
    import tempfile

    import h5py

    original = _h5_model_config(path)
    config, changes = _keras2_fixes(json.loads(json.dumps(original)), path)
    training = None
    if compile:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("training_config")
        if raw is not None:
            training = json.loads(raw.decode() if hasattr(raw, "decode") else raw)
            before = json.dumps(training)
            changes += _keras2_optimizer_fixes(training, keras)
            if json.dumps(training) == before:
                training = None
    if config == original and training is None and path.suffix.lower() in (".h5", ".hdf5"):
        return keras.saving.load_model(str(path), compile=compile, safe_mode=True)
    with tempfile.TemporaryDirectory(prefix="edgeml-h5-") as tmp:
        copy = Path(tmp) / "model.h5"  # Keras picks its HDF5 loader by the .h5 suffix
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
            if training is not None:
                f.attrs["training_config"] = json.dumps(training)
        model = keras.saving.load_model(str(copy), compile=compile, safe_mode=True)
    for change in changes:
        log.info("%s: %s", path, change)
    return model


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    # Keras wraps the real reason after a dump of the whole layer config; keep the reason.
    marker = "Exception encountered:"
    if marker in text:
        cls = text.split("deserializing class '", 1)[-1].split("'", 1)[0] if "deserializing class '" in text else ""
        text = (f"layer class {cls}: " if cls else "") + text.split(marker, 1)[1].strip()
    return text[:300]


def load(path: str | Path, *, compile: bool = False) -> Any:
    """Load a .keras / .h5 model with Keras ``safe_mode`` kept on.

    Keras 2 HDF5 files are loaded with their configs fixed where Keras 3 rejects them (see ``_keras2_fixes``):
    the loaded model holds only built-in Keras 3 classes, so it saves to .keras and reloads like any other."""
    p = Path(path)
    keras = import_keras()
    from edgeml.artifact import ModelFormat, detect_format

    h5 = detect_format(p) is ModelFormat.H5
    try:
        with native_stderr_captured():
            if h5:
                return _load_h5(p, keras, compile)
            return keras.saving.load_model(str(p), compile=compile, safe_mode=True)
    except ModelLoadError:
        raise
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
