"""The ORT session streaming calibration drives: the tensors ORT's calibrators would calibrate (its own
selection, in graph order), shape inference as its quantizer runs it, and ``AugmentedSession``, which returns
those tensors as extra outputs for one sample at a time."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_PROTO_LIMIT = 1_800_000_000  # below protobuf's 2 GiB: pass the model to ORT as bytes, no file on disk


def _quantizable_op_types() -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def tensors_to_calibrate(model, op_types: Iterable[str] | None = None) -> list[str]:
    """The tensors ORT's calibrators would calibrate (its own selection), in graph order.

    ``model`` must carry shape-inference value_info (see :func:`infer_shapes`)."""
    from types import SimpleNamespace

    from onnxruntime.quantization.calibrate import CalibraterBase

    ops = list(op_types) if op_types is not None else _quantizable_op_types()
    chosen, _ = CalibraterBase.select_tensors_to_calibrate(SimpleNamespace(op_types_to_calibrate=ops), model)
    ordered: list[str] = []
    seen: set[str] = set()
    for node in model.graph.node:
        for name in [*node.input, *node.output]:
            if name in chosen and name not in seen:
                seen.add(name)
                ordered.append(name)
    return ordered


def infer_shapes(model):
    """Shape inference as ORT's quantizer runs it (``load_model_with_shape_infer``), in memory."""
    import onnx

    if model.ByteSize() < _PROTO_LIMIT:
        return onnx.shape_inference.infer_shapes(model)
    return model  # too large for in-memory inference: the caller's value_info is used as is


class AugmentedSession:
    """An ORT session over ``model`` that also returns ``tensors`` (intermediate activations).

    Graph optimizations are off, as in ORT's calibrators, so every tensor exists and holds the values ORT's
    calibration would see. The augmented model never touches the disk below 1.8 GB; above, it lives in a
    private temporary folder that is removed as soon as the session has loaded it (and in ``finally``)."""

    def __init__(self, model, tensors: list[str]):
        import onnx
        import onnxruntime as ort

        inputs = {i.name for i in model.graph.input}
        self.tensors = list(tensors)
        self.from_feed = [t for t in self.tensors if t in inputs]
        aug = onnx.ModelProto()
        aug.CopyFrom(model)
        present = {o.name for o in aug.graph.output}
        self.fetch = [t for t in self.tensors if t not in inputs]
        for name in self.fetch:
            if name not in present:
                aug.graph.output.append(onnx.ValueInfoProto(name=name))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if aug.ByteSize() < _PROTO_LIMIT:
            self.session = ort.InferenceSession(aug.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        else:
            folder = tempfile.mkdtemp(prefix="edgeml-calib-")
            try:
                path = Path(folder) / "augmented.onnx"
                onnx.save(aug, str(path), save_as_external_data=True)
                self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        del aug

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The requested tensors for one feed (graph inputs come straight from the feed)."""
        values = dict(zip(self.fetch, self.session.run(self.fetch, feed))) if self.fetch else {}
        for name in self.from_feed:  # a copy: a reader may refill its buffer for the next sample
            values[name] = np.array(feed[name])
        return values
