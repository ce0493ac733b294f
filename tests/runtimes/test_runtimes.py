"""Runtime sessions: one interface over LiteRT and ONNX Runtime (quantized IO handled alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeml.formats.common import Quantization


def _int8_io_onnx(path: Path, *, scale: float = 0.5, zero_point: int = -3) -> Path:
    """int8 input -> DequantizeLinear -> Relu -> QuantizeLinear -> int8 output (scale/zero-point in the graph)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(scale, np.float32), "s"),
             numpy_helper.from_array(np.array(zero_point, np.int8), "z")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
             helper.make_node("Relu", ["xf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "int8io", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_ort_session_specs_carry_io_quantization(tmp_path):
    from edgeml.runtimes.onnxruntime import OrtSession

    s = OrtSession(_int8_io_onnx(tmp_path / "m.onnx"))
    assert s.inputs[0].quantization == Quantization(0.5, -3) and s.outputs[0].quantization == Quantization(0.5, -3)


def test_ort_session_quantizes_floats_and_dequantizes_unless_raw(tmp_path):
    from edgeml.runtimes.onnxruntime import OrtSession

    s = OrtSession(_int8_io_onnx(tmp_path / "m.onnx"))
    x = np.array([[-2.0, -0.5, 1.0, 2.5]], np.float32)
    real = s.run({"x": x})["y"]
    assert real.dtype == np.float32 and real.tolist() == [[0.0, 0.0, 1.0, 2.5]]
    raw = s.run({"x": x}, raw=True)["y"]
    assert raw.dtype == np.int8 and raw.tolist() == [[-3, -3, -1, 2]]  # q = round(y / 0.5) - 3


@pytest.mark.parametrize("dtype, q, x, want", [
    ("int8", Quantization(0.1, 0), [1000.0, -1000.0, 0.04], [127, -128, 0]),  # clipped to the range
    ("uint8", Quantization(1 / 255, 0), [0.0, 1.0], [0, 255]),
    ("float32", None, [1.5], [1.5]),
])
def test_quantize_rounds_and_clips_to_the_dtype(dtype, q, x, want):
    from edgeml.runtimes.session import dequantize, quantize

    got = quantize(np.array(x, np.float32), dtype, q)
    assert got.dtype == np.dtype(dtype) and got.tolist() == pytest.approx(want)
    if q is not None:
        back = dequantize(got, q)
        assert back.dtype == np.float32
