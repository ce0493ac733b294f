"""Flatbuffer edits that make a published float .tflite quantizable by AI Edge Quantizer.

- **No signature.** Most MediaPipe / MLPerf files were converted without a SignatureDef; AI Edge Quantizer
  calibrates through signature runners, so a temporary ``serving_default`` signature over subgraph 0 (its
  tensor names, in subgraph order) is added for quantization and removed from the output again.
- **Hybrid (dynamic-range) weights.** A "float" model converted with ``Optimize.DEFAULT`` and no
  representative dataset keeps float activations but stores large weights as int8 (consumed directly by
  hybrid kernels) or behind ``DEQUANTIZE`` ops. Those weights are dequantized back to float32 (exactly the
  values the hybrid kernels use: ``scale * (q - zero_point)`` per channel), giving the float model that full
  int8 quantization starts from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TEMP_SIGNATURE = "serving_default"
_INT_ACT = ("INT8", "UINT8", "INT16")


def _schema():
    from edgeml.formats.tflite import schema

    return schema()


def _unpack(data: bytes) -> tuple[Any, Any]:
    """The object-API model, with buffers stored after the flatbuffer (offset/size) moved inline so that
    repacking keeps them (their offsets would point past the new, differently sized flatbuffer)."""
    S = _schema()
    model = S.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for buf in model.buffers or []:
        if (buf.offset or 0) > 1:
            buf.data = np.frombuffer(data, np.uint8, count=int(buf.size), offset=int(buf.offset)).copy()
            buf.offset, buf.size = 0, 0
    return model, S


def _pack(model: Any) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _type_names(S: Any) -> dict[int, str]:
    return {v: k for k, v in vars(S.TensorType).items() if not k.startswith("_")}


def _has_data(model: Any, t: Any) -> bool:
    buf = model.buffers[t.buffer] if 0 < t.buffer < len(model.buffers) else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def add_signature(data: bytes, inputs: list[str], outputs: list[str]) -> bytes:
    """``data`` with a ``serving_default`` SignatureDef over subgraph 0 named ``inputs``/``outputs`` (in order)."""
    model, S = _unpack(data)
    sg = model.subgraphs[0]
    sig = S.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = TEMP_SIGNATURE, 0
    sig.inputs, sig.outputs = [], []
    for names, indices, dest in ((inputs, sg.inputs, sig.inputs), (outputs, sg.outputs, sig.outputs)):
        for name, index in zip(names, indices):
            m = S.TensorMapT()
            m.name, m.tensorIndex = name, int(index)
            dest.append(m)
    model.signatureDefs = [sig]
    return _pack(model)


def normalise_opcodes(data: bytes) -> tuple[bytes, int]:
    """Files from converters before schema 3a store the op in ``deprecated_builtin_code`` only, leaving
    ``builtin_code`` 0 (ADD); the op is the larger of the two. AI Edge Quantizer reads ``builtin_code``
    alone (every CONV_2D of a 2019 MediaPipe file looks like an ADD to it), so both are set."""
    model, _ = _unpack(data)
    fixed = 0
    for oc in model.operatorCodes or []:
        code = max(oc.builtinCode or 0, oc.deprecatedBuiltinCode or 0)
        if oc.builtinCode != code:
            oc.builtinCode = code
            fixed += 1
    return (_pack(model), fixed) if fixed else (data, 0)


def strip_signatures(data: bytes) -> bytes:
    model, _ = _unpack(data)
    model.signatureDefs = []
    return _pack(model)


def hybrid_weights(data: bytes) -> list[str] | None:
    """Names of the int8 weight tensors of a hybrid (float-activation) model; None if it is not hybrid.

    Hybrid: some constant tensor is int8 with quantization parameters, and no non-constant tensor
    (activation, input, output) is an integer type with quantization parameters.
    """
    model, S = _unpack(data)
    names = _type_names(S)
    weights = []
    for sg in model.subgraphs:
        for t in sg.tensors:
            quantized = t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)
            if names.get(t.type) not in _INT_ACT or not quantized:
                continue
            if not _has_data(model, t):
                return None  # an integer activation: a full-integer model, not a hybrid one
            weights.append(t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name))
    return weights or None


def _real(model: Any, S: Any, t: Any) -> np.ndarray:
    names = _type_names(S)
    buf = model.buffers[t.buffer]
    dtype = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "FLOAT16": np.float16}[names[t.type]]
    raw = np.frombuffer(bytes(bytearray(buf.data)), dtype=dtype)
    shape = [int(d) for d in t.shape] if t.shape is not None else [raw.size]
    q = raw.reshape(shape) if shape else raw.reshape(())
    if dtype is np.float16:
        return q.astype(np.float32)
    qp = t.quantization
    scale = np.asarray(qp.scale, np.float64)
    zp = np.asarray(qp.zeroPoint if qp.zeroPoint is not None else np.zeros_like(scale), np.float64)
    if scale.size > 1:  # per-channel along quantizedDimension
        bshape = [1] * q.ndim
        bshape[int(qp.quantizedDimension)] = scale.size
        scale, zp = scale.reshape(bshape), zp.reshape(bshape)
    return ((q.astype(np.float64) - zp) * scale).astype(np.float32)


def _opnames(model: Any, S: Any) -> dict[int, str]:
    codes = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    return {i: codes.get(max(oc.builtinCode or 0, oc.deprecatedBuiltinCode or 0), "")
            for i, oc in enumerate(model.operatorCodes or [])}


def stored_weights(data: bytes) -> tuple[list[str], int]:
    """(int8 weights of a hybrid model, DEQUANTIZE ops of constants): what ``dequantize_weights`` would undo."""
    model, S = _unpack(data)
    opname = _opnames(model, S)
    folded = sum(1 for sg in model.subgraphs for op in sg.operators
                 if opname.get(op.opcodeIndex) == "DEQUANTIZE" and _has_data(model, sg.tensors[op.inputs[0]]))
    return hybrid_weights(data) or [], folded


def _drop_unused_tensors(model: Any, index: int) -> None:
    """Remove tensors no op, subgraph IO or signature refers to (the stored copies of folded weights)."""
    sg = model.subgraphs[index]

    def ids(values) -> list[int]:
        return [int(v) for v in values] if values is not None else []

    used = set(ids(sg.inputs)) | set(ids(sg.outputs))
    for op in sg.operators:
        used |= {i for i in ids(op.inputs) + ids(op.outputs) + ids(op.intermediates) if i >= 0}
    sigs = [sig for sig in model.signatureDefs or [] if sig.subgraphIndex == index]
    for sig in sigs:
        used |= {m.tensorIndex for m in (sig.inputs or []) + (sig.outputs or [])}
    new = {old: k for k, old in enumerate(sorted(used))}
    if len(new) == len(sg.tensors):
        return

    def remap(values):
        return [new[i] if i >= 0 else i for i in ids(values)] if values is not None else values

    sg.tensors = [sg.tensors[i] for i in sorted(used)]
    sg.inputs, sg.outputs = remap(sg.inputs), remap(sg.outputs)
    for op in sg.operators:
        op.inputs, op.outputs, op.intermediates = remap(op.inputs), remap(op.outputs), remap(op.intermediates)
    for sig in sigs:
        for m in (sig.inputs or []) + (sig.outputs or []):
            m.tensorIndex = new[m.tensorIndex]


def dequantize_weights(data: bytes) -> tuple[bytes, int, int]:
    """The float model behind stored int8/float16 weights: (model bytes, int8 tensors dequantized, DEQUANTIZE
    ops of constants folded). Float16 weights behind DEQUANTIZE ops (MediaPipe's storage) become float32
    constants too: AI Edge Quantizer needs a conv's weights as a constant tensor."""
    model, S = _unpack(data)
    names = _type_names(S)
    opname = _opnames(model, S)
    int8, folded, done = 0, 0, set()

    def to_float(t: Any) -> None:
        if t.buffer not in done:  # tensors may share a buffer: convert it once
            model.buffers[t.buffer].data = np.ascontiguousarray(_real(model, S, t)).tobytes()
            done.add(t.buffer)
        t.type, t.quantization = S.TensorType.FLOAT32, None

    for sg in model.subgraphs:
        keep = []
        for op in sg.operators:  # DEQUANTIZE(constant) -> the constant itself, in float32
            src = sg.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
            if opname.get(op.opcodeIndex) == "DEQUANTIZE" and src is not None and _has_data(model, src):
                buf = S.BufferT()  # its own buffer: the quantizer rewrites weight buffers in place
                buf.data = np.ascontiguousarray(_real(model, S, src)).tobytes()
                model.buffers.append(buf)
                sg.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
                folded += 1
            else:
                keep.append(op)
        if len(keep) != len(sg.operators):
            sg.operators = keep
            _drop_unused_tensors(model, model.subgraphs.index(sg))
        for t in sg.tensors:  # int8 weights read directly by hybrid kernels
            qp = t.quantization
            if (names.get(t.type) in _INT_ACT and qp is not None and qp.scale is not None and len(qp.scale)
                    and _has_data(model, t)):
                to_float(t)
                int8 += 1
    if folded:  # the dropped stored copies leave their buffers behind: empty them
        referenced = {t.buffer for sg in model.subgraphs for t in sg.tensors}
        for k, buf in enumerate(model.buffers):
            if k not in referenced and buf.data is not None:
                buf.data = None
    return _pack(model), int8, folded


def sparse_weights(data: bytes) -> int:
    """DENSIFY ops of constant (sparse-stored) weights in subgraph 0: what ``densify`` would fold."""
    model, S = _unpack(data)
    opname = _opnames(model, S)
    sg = model.subgraphs[0]
    return sum(1 for op in sg.operators if opname.get(op.opcodeIndex) == "DENSIFY"
               and _has_data(model, sg.tensors[op.inputs[0]]))


def densify(data: bytes) -> tuple[bytes, int]:
    """The model with its sparse weights stored dense: (model bytes, DENSIFY ops folded).

    Sparse weights (MediaPipe's ``*_sparse`` files: a constant with sparsity metadata read through a
    ``DENSIFY`` op) are refused or misread by AI Edge Quantizer and tf2onnx. The dense values are LiteRT's
    own: a DENSIFY of a constant runs once, and its output is read back and stored as the constant."""
    import os
    import sys
    import tempfile
    import warnings

    from edgeml._litert import interpreter_class

    model, S = _unpack(data)
    opname = _opnames(model, S)
    sg = model.subgraphs[0]
    ops = [op for op in sg.operators if opname.get(op.opcodeIndex) == "DENSIFY"
           and _has_data(model, sg.tensors[op.inputs[0]])]
    if not ops:
        return data, 0
    fd, tmp = tempfile.mkstemp(suffix=".tflite", prefix="edgeml-densify-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        cls, _ = interpreter_class()
        kwargs = {"experimental_preserve_all_tensors": True}
        resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
        if resolver is not None:  # XNNPACK reads sparse weights itself: the DENSIFY output would stay empty
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with warnings.catch_warnings():  # "intended for debugging purposes only": reading tensors is the point
            warnings.simplefilter("ignore")
            interp = cls(model_path=tmp, **kwargs)
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        interp.invoke()
        dense = {int(op.outputs[0]): np.array(interp.get_tensor(int(op.outputs[0]))) for op in ops}
    except (RuntimeError, ValueError) as exc:
        from edgeml.errors import EdgeMLError

        raise EdgeMLError(f"the model stores {len(ops)} weight tensor(s) sparse (DENSIFY ops), and LiteRT could not "
                          f"run it to read them dense: {' '.join(str(exc).split())[:200]}",
                          hint="use the dense (non-sparse) variant of the model") from exc
    finally:
        os.unlink(tmp)
    for out, values in dense.items():
        buf = S.BufferT()
        buf.data = np.ascontiguousarray(values).tobytes()
        model.buffers.append(buf)
        sg.tensors[out].buffer = len(model.buffers) - 1
    folded = {id(op) for op in ops}
    sg.operators = [op for op in sg.operators if id(op) not in folded]
    _drop_unused_tensors(model, 0)
    referenced = {t.buffer for g in model.subgraphs for t in g.tensors}
    for k, buf in enumerate(model.buffers):  # the sparse copies' buffers
        if k not in referenced and buf.data is not None:
            buf.data = None
    return _pack(model), len(ops)


def unique_tensor_names(data: bytes) -> tuple[bytes, int]:
    """Tensor names made unique across subgraphs: (model bytes, tensors renamed). AI Edge Quantizer keys
    its parameters by tensor name over the whole model; control-flow branches exported by onnx-tf (an ``If``
    whose two branch subgraphs both name their inputs ``arg0``, ``arg1``, ...) repeat names. Repeats outside
    the main subgraph get the subgraph's index as a prefix (``sg2/arg0``); subgraph 0 (the model's IO) keeps
    its names."""
    model, _ = _unpack(data)
    seen = {t.name for t in model.subgraphs[0].tensors} if model.subgraphs else set()
    renamed = 0
    for g, sg in enumerate(model.subgraphs[1:], start=1):
        for t in sg.tensors:
            name = t.name
            if name in seen:
                base = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
                k, new = 0, f"sg{g}/{base}".encode()
                while new in seen:
                    k += 1
                    new = f"sg{g}/{base}_{k}".encode()
                t.name = new
                renamed += 1
            seen.add(t.name)
    return (_pack(model), renamed) if renamed else (data, 0)
