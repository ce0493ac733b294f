"""Which outputs of a model are class scores (so that argmax agreement means something)?

An output is a classifier head when the op that computes it, looking through layout-only ops (reshape,
squeeze, flatten, transpose, identity, (de)quantize), is a softmax / log-softmax / sigmoid or a dense layer
(FULLY_CONNECTED; ONNX Gemm, MatMul, MatMul + Add). Landmark coordinates, boxes, heatmaps and embeddings
made by convolutions are not, even when their shape is ``[N, K]``: argmax over them picks an arbitrary
coordinate, so quantize judges them on relative error and cosine only.
"""

from __future__ import annotations

from pathlib import Path

_TFLITE_LAYOUT = {"RESHAPE", "SQUEEZE", "TRANSPOSE", "DEQUANTIZE", "QUANTIZE", "EXPAND_DIMS"}
_TFLITE_HEADS = {"SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "FULLY_CONNECTED"}
_ONNX_LAYOUT = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Identity", "QuantizeLinear",
                "DequantizeLinear", "Cast"}
_ONNX_HEADS = {"Softmax", "LogSoftmax", "Sigmoid", "Gemm", "MatMul"}


def classifier_outputs(path: Path, fmt: str, output_names: list[str]) -> set[str]:
    """The names (as the session lists them, in graph order) of ``path``'s classifier-head outputs."""
    try:
        heads = _tflite(path) if fmt == "tflite" else _onnx(path)
    except Exception:  # an unreadable graph: claim nothing, judge on relative error and cosine
        return set()
    return {name for name, is_head in zip(output_names, heads) if is_head}


def _tflite(path: Path) -> list[bool]:
    from edgeml.formats.tflite_reader import TFLiteReader

    reader = TFLiteReader(path, path.read_bytes())
    sg = reader.model.Subgraphs(0)
    producer = reader.producers(0)
    heads = []
    for i in range(sg.OutputsLength()):
        t, found = sg.Outputs(i), None
        for _ in range(16):
            found = producer.get(t)
            if found is None or found[0] not in _TFLITE_LAYOUT:
                break
            t = found[1].Inputs(0) if found[1].InputsLength() else -1
        heads.append(found is not None and found[0] in _TFLITE_HEADS)
    return heads


def _onnx(path: Path) -> list[bool]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    heads = []
    for vi in model.graph.output:
        n = producer.get(vi.name)
        for _ in range(16):
            if n is None or n.op_type not in _ONNX_LAYOUT:
                break
            n = producer.get(n.input[0])
        if n is not None and n.op_type == "Add":  # MatMul + bias
            n = next((producer[i] for i in n.input if i in producer and producer[i].op_type == "MatMul"), n)
        heads.append(n is not None and n.op_type in _ONNX_HEADS)
    return heads
