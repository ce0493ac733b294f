"""Per-layer quantization error: float vs quantized activations on the same samples.

SQNR (signal-to-quantization-noise ratio, dB) = 10 log10(sum f^2 / sum (f - q)^2), where ``f`` is the
float model's tensor and ``q`` the quantized model's tensor, dequantized. Higher is better: ~40 dB is
near-lossless, below ~15 dB a layer usually hurts accuracy. Layers are reported worst first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LayerError:
    name: str
    op: str
    sqnr_db: float
    mse: float
    float_range: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sqnr_db(signal: float, noise: float) -> float:
    if noise <= 0:
        return math.inf
    if signal <= 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


class _Acc:
    def __init__(self, op: str):
        self.op, self.signal, self.noise, self.count = op, 0.0, 0.0, 0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, f: np.ndarray, q: np.ndarray) -> None:
        f = f.astype(np.float64).ravel()
        d = f - q.astype(np.float64).ravel()
        self.signal += float(f @ f)
        self.noise += float(d @ d)
        self.count += f.size
        if f.size:
            self.lo, self.hi = min(self.lo, float(f.min())), max(self.hi, float(f.max()))


def _finish(acc: dict[str, _Acc]) -> list[LayerError]:
    rows = [LayerError(name, a.op, round(sqnr_db(a.signal, a.noise), 2), a.noise / max(a.count, 1),
                       (a.lo, a.hi)) for name, a in acc.items() if a.count]
    return sorted(rows, key=lambda r: r.sqnr_db)


def tflite_layer_errors(float_path: Path, quant_path: Path, feeds: list[dict[str, np.ndarray]]) -> list[LayerError]:
    """Match tensors by name between a float and a quantized .tflite (the converter keeps names)."""
    from edgeml.formats.common import Quantization
    from edgeml.runtimes.litert import LiteRTSession
    from edgeml.runtimes.session import dequantize

    with warnings.catch_warnings():  # "intended for debugging purposes only": that is what this is
        warnings.simplefilter("ignore")
        fs, qs = (LiteRTSession(p, preserve_all_tensors=True) for p in (float_path, quant_path))
    op_of = _tflite_producers(quant_path)
    f_details = {d["name"]: d for d in fs.interpreter.get_tensor_details()}
    pairs = []
    for d in qs.interpreter.get_tensor_details():
        qp = d.get("quantization_parameters", {})
        scales = qp.get("scales", np.zeros(0))
        f = f_details.get(d["name"])
        if (f is None or d["name"] not in op_of or len(scales) != 1 or f["dtype"] != np.float32
                or d["dtype"] not in (np.int8, np.uint8, np.int16) or tuple(f["shape"]) != tuple(d["shape"])):
            continue
        pairs.append((f["index"], d["index"], d["name"], Quantization(float(scales[0]), int(qp["zero_points"][0]))))
    acc = {name: _Acc(op_of[name]) for _, _, name, _ in pairs}
    for feed in feeds:
        fs.set_inputs(feed)
        fs.interpreter.invoke()
        qs.set_inputs(feed)
        qs.interpreter.invoke()
        for fi, qi, name, q in pairs:
            acc[name].add(fs.interpreter.get_tensor(fi), dequantize(qs.interpreter.get_tensor(qi), q))
    return _finish(acc)


def _tflite_producers(path: Path) -> dict[str, str]:
    """Tensor name -> the op that computes it (boundary QUANTIZE/DEQUANTIZE left out)."""
    from edgeml.formats.tflite_reader import TFLiteReader

    reader = TFLiteReader(path, path.read_bytes())
    sg = reader.model.Subgraphs(0)
    return {sg.Tensors(t).Name().decode("utf-8", "replace"): name for t, (name, _) in reader.producers(0).items()
            if name not in ("QUANTIZE", "DEQUANTIZE")}


def onnx_layer_errors(float_model: Any, quant_path: Path, feeds: Iterable[dict[str, np.ndarray]]) -> list[LayerError]:
    """Compare every tensor that the QDQ model quantizes with the same tensor of the float model.

    ``feeds`` is any iterable of feeds (a generator streams them: memory does not grow with their number)."""
    import onnx

    quant = onnx.load(str(quant_path))
    dq_of = {}  # float tensor name -> DequantizeLinear output in the QDQ model
    producers = {o: n for n in quant.graph.node for o in n.output}
    for node in quant.graph.node:
        if node.op_type == "DequantizeLinear":
            src = producers.get(node.input[0])
            if src is not None and src.op_type == "QuantizeLinear":
                dq_of[src.input[0]] = node.output[0]
    f_producers = {o: n.op_type for n in float_model.graph.node for o in n.output}
    names = [n for n in dq_of if n in f_producers]
    if not names:
        return []
    from edgeml.calibration.streaming import AugmentedSession

    # the same streaming path as calibration: one sample at a time, folded into fixed-size accumulators
    fs = AugmentedSession(float_model, names)
    qs = AugmentedSession(quant, [dq_of[n] for n in names])
    acc = {n: _Acc(f_producers[n]) for n in names}
    for feed in feeds:
        fo, qo = fs.run(feed), qs.run(feed)
        for n in names:
            acc[n].add(np.asarray(fo[n]), np.asarray(qo[dq_of[n]]))
        del fo, qo
    return _finish(acc)
