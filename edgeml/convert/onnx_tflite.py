"""ONNX -> verified float32 TFLite through onnx2tf: the route's driver and its result.

The steps, one module each: ``onnx_tflite_prepare`` makes the ONNX graph ready (fixed input shapes, onnxsim,
the rewrites onnx2tf needs; control flow refused), ``onnx_tflite_run`` runs onnx2tf (an optional, separately
installed tool) in a private folder, ``onnx_tflite_io`` pairs the channel-last TFLite inputs/outputs with the
ONNX ones. ``convert_onnx_to_tflite`` chains them, refuses Flex ops, verifies the TFLite model against ONNX
Runtime (inputs and outputs transposed to match) and writes it atomically only if it matches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.convert.onnx_tflite_io import IOTensor, LayoutAdapter, io_contract
from edgeml.convert.onnx_tflite_prepare import keep_onnx_hint, prepare
from edgeml.convert.onnx_tflite_run import INSTALL_COMMAND, INSTALL_PIP, ONNX2TF_VERSION, require_onnx2tf, run_onnx2tf
from edgeml.errors import OnnxToTFLiteError, VerificationError


@dataclass
class OnnxToTFLiteResult:
    source: str
    output: str
    size_bytes: int
    seconds: float
    converter: str
    input_shapes: dict[str, list[int]]
    simplify: dict[str, Any]
    inputs: list[IOTensor]
    outputs: list[IOTensor]
    ops: dict[str, int]
    transpose_count: int
    verification: Any

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verification"] = self.verification.to_dict() if self.verification else None
        return {"schema": "edgeml.convert/1", "source_format": "onnx", "to": "tflite", **d}


def convert_onnx_to_tflite(model: str | Path, out: str | Path, *, input_shapes: Any = None, integer_ids: bool = False,
                           verify: int = 8, calib: Any = None, atol: float = 1e-4, force: bool = False,
                           progress: Any = None, strict: bool = False) -> OnnxToTFLiteResult:
    """ONNX -> verified float32 TFLite (channel-last), written atomically only if it matches ONNX Runtime.
    ``strict``: fail when onnxsim fails, instead of converting the unsimplified graph."""
    import time

    from edgeml._io import atomic_path, check_output
    from edgeml.convert.verify import compare, data_feeds, random_feeds
    from edgeml.formats.common import TensorSpec
    from edgeml.formats.tflite_reader import TFLiteReader
    from edgeml.runtimes.litert import LiteRTSession
    from edgeml.runtimes.onnxruntime import OrtSession

    say = progress or (lambda msg: None)
    src = Path(model)
    out = check_output(out, inputs=[src, calib], force=force)
    require_onnx2tf()
    t0 = time.perf_counter()
    say("preparing the ONNX graph (fixed shapes, onnxsim)")
    proto, simp = prepare(src, input_shapes, integer_ids=integer_ids)
    if strict and simp.get("warning"):
        raise OnnxToTFLiteError(f"{src}: ONNX simplification failed: {simp['warning']}",
                                hint="drop `strict` to convert the unsimplified graph")
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    say(f"converting with onnx2tf {ONNX2TF_VERSION} (NCHW -> NHWC)")
    data, layouts = run_onnx2tf(proto, src)
    seconds = time.perf_counter() - t0
    ops = TFLiteReader(Path("<model>"), data).op_counts()
    flex = sorted(n for n in ops if n.startswith("Flex") or n == "?")
    if flex:
        raise OnnxToTFLiteError(f"{src}: the TFLite model needs TensorFlow ops ({', '.join(flex)}) that LiteRT "
                                "cannot run without the Flex delegate", hint=keep_onnx_hint(src))
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
        reference = OrtSession(src)
        test = LiteRTSession(tmp)
        specs = [TensorSpec(t.name, tuple(shapes[t.name]), t.dtype) for t in reference.inputs]
        n = max(verify, 1)
        if calib is not None:
            feeds, label = data_feeds(specs, calib, n), f"data {getattr(calib, 'origin', None) or calib}"
        else:
            from edgeml.artifact import ModelArtifact
            from edgeml.convert.verify import random_feeds_label

            values = ModelArtifact.open(src).inspect().input_values  # e.g. a sample rate the graph tests for
            feeds = random_feeds(specs, n, seed=0, what="verifying the conversion on generated inputs", values=values)
            label = random_feeds_label(specs, values)
        first = reference.run(feeds[0])
        ref_shapes = {**shapes, **{k: list(np.shape(v)) for k, v in first.items()}}
        ins, outs = io_contract(reference, test, layouts, ref_shapes, src)
        verification = None
        if verify > 0:
            say(f"verifying against ONNX Runtime on {len(feeds)} samples")
            adapter = LayoutAdapter(test, ins, outs, (specs, reference.outputs))
            verification = compare(reference, adapter, feeds, atol=atol, data=label)
            if not verification.passed:
                raise VerificationError(f"{src}: converted TFLite output differs from ONNX Runtime: "
                                        f"{verification.summary()}",
                                        hint="no output was written; " + keep_onnx_hint(src))
        size = tmp.stat().st_size
    return OnnxToTFLiteResult(source=str(src), output=str(out), size_bytes=size, seconds=round(seconds, 3),
                              converter=f"onnx2tf {ONNX2TF_VERSION}", input_shapes=shapes, simplify=simp,
                              inputs=ins, outputs=outs, ops=ops, transpose_count=ops.get("TRANSPOSE", 0),
                              verification=verification)


# INSTALL_*, IOTensor, LayoutAdapter, OnnxToTFLiteError, io_contract, prepare, require_onnx2tf and run_onnx2tf are
# also importable from here, as before the steps had modules of their own
__all__ = ["INSTALL_COMMAND", "INSTALL_PIP", "IOTensor", "LayoutAdapter", "OnnxToTFLiteError", "OnnxToTFLiteResult",
           "ONNX2TF_VERSION", "convert_onnx_to_tflite", "io_contract", "prepare", "require_onnx2tf", "run_onnx2tf"]
