"""ONNX Runtime behind the Session interface, with execution providers chosen by target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeml._quiet import native_stderr_captured
from edgeml.errors import MissingDependencyError, ModelLoadError
from edgeml.formats.common import TensorSpec

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(int32)": "int32",
              "tensor(int64)": "int64", "tensor(bool)": "bool"}
_INTEGER = {"int8", "uint8", "int16"}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


class OrtSession:
    def __init__(self, path: str | Path, *, threads: int | None = None, providers: list[str] | None = None,
                 provider_options: list[dict] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("ONNX Runtime is not installed", hint="pip install onnxruntime") from exc
        from edgeml.formats.onnx import check_external_data, parse_proto
        from edgeml.formats.onnx_io import read

        self.path = Path(path)
        proto = parse_proto(self.path)  # the graph only, no external data
        check_external_data(proto, self.path.parent, self.path)  # refused before ORT reads anything
        io_quant = read(proto)  # the integer IO contract, as a .tflite carries it (LiteRTSession)
        del proto
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        wanted = providers or ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in ort.get_available_providers()]
        if missing:
            raise MissingDependencyError(
                f"ONNX Runtime here lacks execution provider {missing[0]} (available: "
                f"{', '.join(ort.get_available_providers())})",
                hint="on a Jetson install NVIDIA's onnxruntime-gpu wheel for your JetPack")
        try:
            with native_stderr_captured():
                self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=wanted,
                                                    provider_options=provider_options)
        except Exception as exc:
            raise ModelLoadError(f"{self.path}: ONNX Runtime refuses this model: {' '.join(str(exc).split())[:300]}",
                                 hint="check the opset and ops are supported by this onnxruntime version") from exc
        self.runtime = f"onnxruntime ({self.session.get_providers()[0]})"
        self.providers = self.session.get_providers()

        def spec(a: Any) -> TensorSpec:
            shape = tuple(d if isinstance(d, int) and d > 0 else None for d in a.shape)
            dtype = _ORT_TYPES.get(a.type, a.type)
            return TensorSpec(a.name, shape, dtype, io_quant.get(a.name) if dtype in _INTEGER else None)

        self.inputs = [spec(a) for a in self.session.get_inputs()]
        self.outputs = [spec(a) for a in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        """Float feeds to integer inputs are quantized with the model's scale/zero-point; integer outputs
        come back as real values unless ``raw`` (the model's own integers)."""
        from edgeml.formats.common import dequantize, quantize

        inputs = {t.name: quantize(np.asarray(feeds[t.name]), t.dtype, t.quantization) for t in self.inputs}
        outs = self.session.run(None, inputs)
        return {t.name: o if raw else dequantize(o, t.quantization) for t, o in zip(self.outputs, outs)}
