#!/usr/bin/env python
"""Independent MAC count (no edgeml code): shapes from the runtime itself, one formula per op.

ONNX: every node output is exposed and the model is run once with ONNX Runtime (optimisations off) at the
given input shapes; Conv = out elements x (Cin/groups x kernel), ConvTranspose = in elements x (Cout/groups
x kernel), MatMul/Gemm = out elements x K, LSTM/GRU/RNN = steps x batch x dirs x gates x hidden x (in + hidden).
Control flow (If/Loop/Scan) is not followed: the count is then reported as None ("not comparable").

TFLite: the interpreter allocates at the given shapes; CONV_2D = out x (kh x kw x Cin), DEPTHWISE_CONV_2D =
out x (kh x kw), FULLY_CONNECTED = out x K, TRANSPOSE_CONV = in x (kh x kw x Cout), BATCH_MATMUL = out x K.
Models with custom ops are counted on the ops above only; control flow (IF/WHILE) -> None.

    python macs_check.py MODEL [NAME=D0,D1,... ...]   -> prints JSON {"macs": N | null, "why": ...}
"""

from __future__ import annotations

import json
import sys

import numpy as np


def onnx_macs(path: str, shapes: dict[str, list[int]]) -> dict:
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    m = onnx.load(path)
    g = m.graph
    consts = {t.name: tuple(t.dims) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = tuple(a.t.dims)
    if any(n.op_type in ("If", "Loop", "Scan") for n in g.node):
        return {"macs": None, "why": "control flow (If/Loop/Scan) not followed by the independent counter"}
    seen = {o.name for o in g.output}
    for n in g.node:
        for o in n.output:
            if o and o not in seen and o not in consts:
                g.output.append(onnx.helper.make_value_info(o, onnx.TypeProto()))
                seen.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in s.get_inputs():
        shp = shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape]
        if "int" in i.type:
            dt = np.int64 if "int64" in i.type else np.int32
            feeds[i.name] = (np.array(16000, dt) if not shp else rng.integers(0, 50, shp).astype(dt))
        else:
            feeds[i.name] = rng.random(shp, dtype=np.float32) * 0.1
    outs = s.run(None, feeds)
    shape = {o.name: np.asarray(v).shape for o, v in zip(s.get_outputs(), outs)}
    shape.update({k: np.asarray(v).shape for k, v in feeds.items()})
    shape.update(consts)
    total = 0
    for n in g.node:
        op = n.op_type
        try:
            if op == "Conv":
                total += int(np.prod(shape[n.output[0]])) * int(np.prod(shape[n.input[1]][1:]))
            elif op == "ConvTranspose":
                w = shape[n.input[1]]
                total += int(np.prod(shape[n.input[0]])) * int(np.prod(w[1:]))
            elif op == "MatMul":
                total += int(np.prod(shape[n.output[0]])) * shape[n.input[0]][-1]
            elif op == "Gemm":
                a = shape[n.input[0]]
                trans_a = any(at.name == "transA" and at.i for at in n.attribute)
                total += int(np.prod(shape[n.output[0]])) * (a[0] if trans_a else a[-1])
            elif op in ("LSTM", "GRU", "RNN"):
                x, w, r = shape[n.input[0]], shape[n.input[1]], shape[n.input[2]]
                total += x[0] * x[1] * w[0] * w[1] * (w[2] + r[2])
        except KeyError as exc:
            return {"macs": None, "why": f"no runtime shape for {op} {n.name}: {exc}"}
    return {"macs": total, "why": "ONNX Runtime shapes"}


def tflite_macs(path: str, shapes: dict[str, list[int]]) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # no XNNPack: its delegated partition keeps stale intermediate shapes after resize_tensor_input
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = it.get_input_details()
    for d in details:  # edgeml names inputs by signature key; the tensor name may differ (single input: either)
        dims = shapes.get(d["name"]) or (next(iter(shapes.values())) if len(details) == 1 and shapes else None)
        if dims:
            it.resize_tensor_input(d["index"], dims)
    it.allocate_tensors()
    if shapes:  # shapes of intermediates settle only after one invoke
        for d in details:
            it.set_tensor(d["index"], np.zeros(it._get_tensor_details(d["index"], 0)["shape"], d["dtype"]))
        it.invoke()
    shp = {}

    def s(i):
        if i not in shp:
            shp[i] = tuple(int(x) for x in it._get_tensor_details(i, 0)["shape"])
        return shp[i]

    ops = it._get_ops_details()
    if any(op["op_name"] in ("IF", "WHILE") for op in ops):
        return {"macs": None, "why": "control flow (IF/WHILE) not followed by the independent counter"}
    total = 0
    for op in ops:
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        if name == "CONV_2D":
            w = s(ins[1])
            total += int(np.prod(s(outs[0]))) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":
            w = s(ins[1])
            total += int(np.prod(s(outs[0]))) * w[1] * w[2]
        elif name == "FULLY_CONNECTED":
            total += int(np.prod(s(outs[0]))) * s(ins[1])[-1]
        elif name == "TRANSPOSE_CONV":
            w = s(ins[1])
            total += int(np.prod(s(ins[2]))) * w[0] * w[1] * w[2]
        elif name == "BATCH_MATMUL":
            total += int(np.prod(s(outs[0]))) * s(ins[0])[-1]
    return {"macs": total, "why": "LiteRT tensor shapes"}


def main(argv: list[str]) -> int:
    path, rest = argv[0], argv[1:]
    shapes = {}
    for item in rest:
        name, dims = item.rsplit("=", 1)
        shapes[name] = [int(d) for d in dims.split(",")]
    try:
        res = (tflite_macs if path.endswith(".tflite") else onnx_macs)(path, shapes)
    except Exception as exc:  # noqa: BLE001 - the caller records why there is no reference
        res = {"macs": None, "why": f"{type(exc).__name__}: {str(exc)[:200]}"}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
