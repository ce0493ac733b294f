"""Keras / SavedModel / TFLite -> ONNX with tf2onnx (from_function / from_tflite; never from_keras).

tf2onnx >= 1.17 runs on numpy 2 for these paths (its np.cast use is gone); its remaining np.product call
is in the >2 GB external-tensor writer, which edgeml does not use. Nothing here patches numpy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edgeml._quiet import all_output_captured
from edgeml._tf import tensorflow
from edgeml.convert.tflite import ConversionError, failing_ops
from edgeml.errors import MissingDependencyError

log = logging.getLogger(__name__)
DEFAULT_OPSET = 17
_STATEFUL_TFLITE = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}


def _tf2onnx():
    tensorflow()
    try:
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        import tf2onnx
    except ImportError as exc:
        raise MissingDependencyError("ONNX conversion needs tf2onnx",
                                     hint="pip install 'edgeml-toolchain[tf]'") from exc
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    return tf2onnx


def _fail(exc: Exception, logs: list[str], opset: int, source: str = "keras") -> ConversionError:
    text = " ".join(str(exc).split())
    ops = failing_ops(text + " " + "".join(logs))
    what = f" (unsupported ops: {', '.join(ops)})" if ops else ""
    other = ("deploy and bench the .tflite as it is (tf2onnx's TFLite reader fails on this graph)"
             if source == "tflite" else "convert the SavedModel export instead of the .keras file")
    return ConversionError(f"ONNX conversion failed{what}: {text[:300]}",
                           hint=f"try another `opset` (now {opset}; 13-18 work), `simplify=False`, or {other}")


def _from_function(fn: Any, spec: list, opset: int) -> Any:
    """tf2onnx.convert.from_function with its output captured and its errors translated."""
    tf2onnx = _tf2onnx()
    logs: list[str] = []
    try:
        with all_output_captured() as logs:
            model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    except Exception as exc:
        raise _fail(exc, logs, opset) from exc
    return model


def rename_value(model, old: str, new: str) -> None:
    """Rename a graph input/output (and every reference to it)."""
    if old == new:
        return
    graph = model.graph
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def keras_to_onnx(keras_model: Any, *, opset: int = DEFAULT_OPSET) -> Any:
    from edgeml.formats.keras import io_specs

    tf = tensorflow()
    inputs, outputs = io_specs(keras_model)
    spec = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in inputs]

    def call(*args):
        out = keras_model(args[0] if len(args) == 1 else list(args), training=False)
        return out if isinstance(out, (list, tuple)) else [out]

    model = _from_function(tf.function(call, input_signature=spec), spec, opset)
    for vi, t in zip(list(model.graph.output), outputs):
        rename_value(model, vi.name, t.name)
    for vi, t in zip(list(model.graph.input), inputs):
        rename_value(model, vi.name, t.name)
    return model


def savedmodel_to_onnx(folder: Path, *, opset: int = DEFAULT_OPSET) -> Any:
    from edgeml.formats.savedmodel import load

    tf = tensorflow()
    _, sig = load(folder)
    in_specs = sorted(sig.structured_input_signature[1].items())
    spec = [tf.TensorSpec(s.shape, s.dtype, name=name) for name, s in in_specs]
    out_names = sorted(sig.structured_outputs)

    def call(*args):
        out = sig(**{name: a for (name, _), a in zip(in_specs, args)})
        return [out[n] for n in out_names]

    model = _from_function(tf.function(call, input_signature=spec), spec, opset)
    for vi, name in zip(list(model.graph.output), out_names):
        rename_value(model, vi.name, name)
    return model


def tflite_to_onnx(path: Path, *, opset: int = DEFAULT_OPSET) -> Any:
    import tempfile

    from edgeml.formats.tflite import inspect as inspect_tflite
    from edgeml.formats.tflite_edit import densify

    info = inspect_tflite(path, validate=False)
    if info.custom_ops:  # tf2onnx passes them through as TFL_<name> nodes that no ONNX runtime can run
        raise ConversionError(
            f"{path}: custom op(s) {', '.join(info.custom_ops)} have no ONNX equivalent (tf2onnx would emit them "
            "as TFL_ nodes that ONNX Runtime refuses)",
            hint="deploy and bench the .tflite with the op resolver that provides them (e.g. MediaPipe's), or "
                 "re-export the model without custom ops")
    tf2onnx = _tf2onnx()
    # sparse weights (DENSIFY of a constant): tf2onnx reshapes the stored values to the dense shape and fails
    data, dense = densify(path.read_bytes())
    try:
        with tempfile.TemporaryDirectory(prefix="edgeml-tfl2onnx-") as tmp, all_output_captured() as logs:
            src = path
            if dense:
                src = Path(tmp) / "dense.tflite"
                src.write_bytes(data)
            model, _ = tf2onnx.convert.from_tflite(str(src), opset=opset)
    except Exception as exc:
        stateful = {op: n for op, n in info.ops.items() if op in _STATEFUL_TFLITE}
        if stateful:
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(stateful.items()))
            raise ConversionError(
                f"{path}: the model keeps state in TFLite resource variables ({ops}: a streaming model), which "
                f"tf2onnx cannot convert ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})",
                hint="export a stateless variant (state as explicit inputs/outputs) to convert it, or deploy and "
                     "bench it as .tflite") from exc
        raise _fail(exc, logs, opset, "tflite") from exc
    # tf2onnx names IO after TFLite tensors ("serving_default_image:0"); use the signature names
    for vi, t in zip(list(model.graph.input), info.inputs):
        rename_value(model, vi.name, t.name)
    for vi, t in zip(list(model.graph.output), info.outputs):
        rename_value(model, vi.name, t.name)
    from edgeml.convert.ioquant import record

    record(model, info.inputs + info.outputs)  # int8 IO stays int8: keep what the integers mean
    return model
