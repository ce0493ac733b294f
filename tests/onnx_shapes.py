"""Tiny seeded ONNX graphs with shape traits (dynamic dims, weights outside initializers, control flow,
recurrent ops, stateful inputs), built by hand for the shape and zoo-trait tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save(graph, path: Path, opset: int = 17) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeml-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def weight(rng, name, shape):
    from onnx import numpy_helper

    return numpy_helper.from_array(rng.normal(0, 0.2, shape).astype(np.float32), name)


def dynamic_cnn(path: Path, *, computed_pad: bool = False) -> Path:
    """x [N, 3, H, W] -> Conv(3->8, 3x3, pad 1) -> GlobalAveragePool -> Flatten -> Gemm(8->4).

    MACs at H x W: H*W*8*27 + 8*4. With ``computed_pad`` the input is first padded by 0 with pads computed
    through a Cast (ONNX shape inference cannot follow it; an ONNX Runtime run can).
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, src = [], [weight(rng, "w", (8, 3, 3, 3)), weight(rng, "fc", (8, 4))], "x"
    if computed_pad:
        inits.append(numpy_helper.from_array(np.zeros(8, np.int32), "pads32"))
        nodes += [helper.make_node("Cast", ["pads32"], ["pads"], to=TensorProto.INT64),
                  helper.make_node("Pad", ["x", "pads"], ["xp"])]
        src = "xp"
    nodes += [helper.make_node("Conv", [src, "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
              helper.make_node("GlobalAveragePool", ["c"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], initializer=inits)
    return save(graph, path)


def constant_weights(path: Path) -> Path:
    """Paddle2ONNX style: the conv weight and the bias are Constant nodes. x [1, 2, 5, 5]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(0, 0.2, (4, 2, 3, 3)).astype(np.float32), "wv")
    b = numpy_helper.from_array(rng.normal(0, 0.2, (4,)).astype(np.float32), "bv")
    nodes = [helper.make_node("Constant", [], ["w"], value=w), helper.make_node("Constant", [], ["b"], value=b),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])]
    graph = helper.make_graph(nodes, "constw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])])
    return save(graph, path)


def if_with_weights(path: Path) -> Path:
    """y = If(flag, then: x @ W1[6,5] (initializer inside the branch), else: x @ W2[6,5] @ W3[5,5])."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])]
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w1"], ["y_then"])], "then", [],
                               [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1, 5])],
                               initializer=[weight(rng, "w1", (6, 5))])
    else_g = helper.make_graph([helper.make_node("MatMul", ["x", "w2"], ["h"]),
                                helper.make_node("MatMul", ["h", "w3"], ["y_else"])], "else", [],
                               [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [1, 5])],
                               initializer=[weight(rng, "w2", (6, 5)), weight(rng, "w3", (5, 5))])
    nodes = [helper.make_node("If", ["flag"], ["y"], then_branch=then_g, else_branch=else_g)]
    graph = helper.make_graph(nodes, "iff", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6]),
                                             helper.make_tensor_value_info("flag", TensorProto.BOOL, [])], out)
    return save(graph, path)


def loop_matmul(path: Path, trips: int = 3) -> Path:
    """A Loop running ``trips`` times with h = h @ W[4,4] in its body (initializer inside the body)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("MatMul", ["h_in", "w"], ["h_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 4])], initializer=[weight(rng, "w", (4, 4))])
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "M"), numpy_helper.from_array(np.array(True), "c")]
    graph = helper.make_graph([helper.make_node("Loop", ["M", "c", "x"], ["y"], body=body)], "loop",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=inits)
    return save(graph, path)


def recurrent(path: Path, op: str, *, hidden: int = 4, inp: int = 3, direction: str = "forward",
              steps: int | str = 5, batch: int | str = 2) -> Path:
    """One ONNX LSTM / GRU / RNN on X [steps, batch, inp]."""
    from onnx import TensorProto, helper

    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(4)
    inits = [weight(rng, "W", (dirs, gates * hidden, inp)), weight(rng, "R", (dirs, gates * hidden, hidden)),
             weight(rng, "B", (dirs, 2 * gates * hidden))]
    node = helper.make_node(op, ["X", "W", "R", "B"], ["Y"], hidden_size=hidden, direction=direction)
    graph = helper.make_graph([node], op.lower(),
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, batch, inp])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [steps, dirs, batch, hidden])],
                              initializer=inits)
    return save(graph, path)


def stateful_vad(path: Path) -> Path:
    """Silero-VAD-shaped IO: input [batch, seq], state [2, batch, 128], sr int64 scalar.

    out [batch, 1] = mean(input) * (sr == 16000) + mean(state); new_state = state.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Equal", ["sr", "k"], ["is16k"]),
             helper.make_node("Cast", ["is16k"], ["scale"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["m", "scale"], ["ms"]),
             helper.make_node("ReduceMean", ["state"], ["sm"], axes=[0, 2], keepdims=0),
             helper.make_node("Unsqueeze", ["sm", "one"], ["sm1"]),
             helper.make_node("Add", ["ms", "sm1"], ["output"]),
             helper.make_node("Identity", ["state"], ["stateN"])]
    graph = helper.make_graph(
        nodes, "vad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "seq"]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 128]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", 128])],
        initializer=[numpy_helper.from_array(np.array(16000, np.int64), "k"),
                     numpy_helper.from_array(np.array([1], np.int64), "one")])
    return save(graph, path)
