"""ONNX source -> int8 TFLite: onnx2tf float TFLite (verified against ONNX Runtime), then the float-.tflite
quantization path (AI Edge Quantizer) with the calibration data transposed to the TFLite model's layout."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.calibration.dataset import Dataset
from edgeml.errors import EdgeMLError
from edgeml.options import QuantizeOptions
from edgeml.quantize.budget import MAX_EVALS, Budget
from edgeml.quantize.budget_steps import load_eval


class ChannelLastDataset:
    """A loaded calibration Dataset (ONNX names, NCHW) presented with the TFLite names and layouts."""

    def __init__(self, ds: Any, inputs: list[Any], order: list[str] | None = None):
        self.ds, self.spec = ds, ds.spec
        by_name = {t.name: t for t in inputs}
        self._inputs = [by_name[n] for n in order if n in by_name] if order and set(order) == set(by_name) \
            else list(inputs)
        self.input_names = [t.name for t in self._inputs]

    def __len__(self) -> int:
        return len(self.ds)

    @property
    def has_labels(self) -> bool:
        return self.ds.has_labels

    @property
    def labels(self) -> Any:
        return self.ds.labels

    @property
    def source(self) -> Any:  # where a sample came from (error messages name it)
        return self.ds.source

    @property
    def indices(self) -> Any:
        return self.ds.indices

    def sample(self, j: int) -> Any:
        from edgeml.calibration.dataset import Sample

        s = self.ds.sample(j)
        feeds = {}
        for t in self._inputs:
            x = np.asarray(s.feeds[t.onnx_name])
            if t.perm and t.onnx_name in s.whole:  # fed as stored: every axis is there
                x = np.transpose(x, t.perm)
            elif t.perm:  # no batch axis here
                x = np.transpose(x, [p - 1 for p in t.perm[1:]])
            feeds[t.name] = x.astype(t.dtype) if np.dtype(t.dtype).kind in "iu" and x.dtype.kind == "f" else x
        return Sample(feeds, s.label, s.where, self.whole)

    def __iter__(self) -> Iterator[Any]:
        for j in range(len(self)):
            yield self.sample(j)

    @property
    def whole(self) -> frozenset:
        """Inputs fed whole (not stacked into batches), under their TFLite names."""
        return frozenset(t.name for t in self._inputs if t.onnx_name in self.ds.whole)

    # batched feeds and stacked arrays exactly as a Dataset makes them, from the transposed samples
    batches = Dataset.batches
    arrays = Dataset.arrays


def _accuracy(onnx_path: Path, tfl_path: Path, conv: Any, eval_spec: Any, say: Any) -> dict[str, Any]:
    """Top-1 of the ONNX model (ONNX Runtime) and of the int8 TFLite model (fed the same data in its layout)."""
    from edgeml.bench.accuracy import evaluate, float_inputs
    from edgeml.calibration import load_dataset
    from edgeml.convert.onnx_tflite_io import LayoutAdapter
    from edgeml.runtimes.litert import LiteRTSession
    from edgeml.runtimes.onnxruntime import OrtSession

    ref = OrtSession(onnx_path)
    test = LayoutAdapter(LiteRTSession(tfl_path), conv.inputs, conv.outputs, (ref.inputs, ref.outputs))
    setattr(test, "path", Path(tfl_path))  # noqa: B010 - evaluate() names the model it scores by .path
    ds = load_dataset(eval_spec, inputs=float_inputs(ref.inputs))
    say(f"evaluating the ONNX model and the int8 TFLite model on {len(ds)} labelled samples")
    a, b = evaluate(ref, ds), evaluate(test, ds)
    return {"data": ds.spec.origin or ds.spec.source, "samples": a["samples"], "float_top1": a["top1"],
            "quantized_top1": b["top1"], "drop": a["top1"] - b["top1"], "float_model": str(onnx_path)}


def quantize_onnx_to_tflite(art: Any, o: QuantizeOptions, progress: Any) -> Any:
    """``quantize`` of an ONNX model to a TFLite model (``o.format`` tflite or a TFLite-only target)."""
    import time

    from edgeml._io import check_outputs
    from edgeml.convert.onnx_tflite import convert_onnx_to_tflite
    from edgeml.convert.onnx_tflite_prepare import index_inputs
    from edgeml.convert.onnx_tflite_run import private_dir, require_onnx2tf
    from edgeml.formats.shapes import resolve
    from edgeml.quantize import quantize, write_report
    from edgeml.quantize.checks import already_quantized, calibration_data
    from edgeml.runtimes.litert import load_interpreter

    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    calib = o.calib
    out_path, report_path = check_outputs([o.out, o.report], inputs=[art.path, calib, o.eval], force=o.force)
    assert out_path is not None
    why = already_quantized(art)
    if why:
        raise EdgeMLError(f"{art.path}: the model is already quantized ({why})",
                          hint="quantize the float model it was made from")
    if calib is None:
        raise EdgeMLError(f"`mode` {o.mode} from an ONNX source needs calibration data (it also fixes the input "
                          "shapes for the conversion)", hint="pass `calib=SPEC`")
    if o.method == "qat":
        from edgeml.errors import QATUsageError

        raise QATUsageError(f"{art.path}: quantization-aware training needs the Keras model (an ONNX source has no "
                            "training graph)", hint="quantize the .keras model with `method=\"qat\"`, or drop `method`")
    require_onnx2tf()
    specs = art.inspect().inputs
    import onnx

    ids = sorted(index_inputs(onnx.load(str(art.path), load_external_data=False)))
    ds = calibration_data(calib, o.calib_samples, specs)
    budget = Budget(o.max_accuracy_drop, o.min_fidelity, o.keep_best,
                    max_evals=MAX_EVALS if o.max_evals is None else o.max_evals)
    # the budget's held-out data, loaded with the ONNX model's inputs (labels checked now, before converting)
    eval_ds = load_eval(budget, o.eval, specs) if budget.active and o.eval is not None else None
    first = ds.sample(0)
    # the data decides the converted model's input shapes (batch 1); an --input-shape that contradicts it is refused
    shapes = resolve(specs, o.input_shapes, data_shapes={n: (1, *np.shape(first.feeds[n])) for n in ds.input_names}
                     ).require("converting to TFLite (fixed input shapes)")
    with private_dir() as work:
        float_path = work / "float.tflite"
        conv = convert_onnx_to_tflite(art.path, float_path, input_shapes=shapes, calib=ds.spec, progress=progress,
                                      integer_ids=True)
        sigs: dict[str, dict[str, list[str]]] = load_interpreter(float_path, allocate=False).get_signature_list()
        first_sig: dict[str, list[str]] = next(iter(sigs.values()), {})
        order = list(first_sig.get("inputs", []))
        say(f"calibration data transposed to the TFLite layout ({', '.join(t.layout for t in conv.inputs)})")
        try:
            # loaded datasets (calibration and the budget's eval data) in the TFLite layout: taken as they are.
            # The budget is judged against the float TFLite model, verified above to match ONNX Runtime.
            tfl = dataclasses.replace(
                o, out=out_path, calib=ChannelLastDataset(ds, conv.inputs, order),  # type: ignore[arg-type]
                eval=ChannelLastDataset(eval_ds, conv.inputs, order) if eval_ds is not None else None,  # type: ignore[arg-type]
                format="tflite", report=None, calib_samples=None, input_shapes=None)
            result = quantize(float_path, options=tfl, progress=progress)
        except EdgeMLError as exc:  # name the user's model, not the private float .tflite
            exc.message = exc.message.replace(str(float_path), f"{art.path} (as float TFLite)")
            exc.args = (exc.message,)
            raise
    if o.eval is not None:
        result.accuracy = _accuracy(art.path, out_path, conv, o.eval, say)
    result.source, result.source_format = str(art.path), "onnx"
    result.seconds = round(time.perf_counter() - t0, 3)  # the onnx2tf conversion included
    result.source_size_bytes = art.path.stat().st_size
    result.recipe["via"] = {"converter": conv.converter, "transpose_ops": conv.transpose_count,
                            "float_verification": conv.verification.summary() if conv.verification else None,
                            "inputs": [t.to_dict() for t in conv.inputs],
                            "outputs": [t.to_dict() for t in conv.outputs]}
    result.notes.append(
        f"converted with {conv.converter} first ({conv.transpose_count} TRANSPOSE ops; float TFLite vs ONNX Runtime: "
        f"{conv.verification.summary() if conv.verification else 'not verified'})")
    if ids:
        result.notes.append(f"input(s) {', '.join(ids)}: float ids cast to integers in the graph are integer inputs "
                            "of the TFLite model (int8 input quantization would change them)")
    result.notes.append("TFLite IO: " + "; ".join(f"{t.onnx_name} -> {t.name} {t.shape} {t.layout}"
                                                  for t in conv.inputs + conv.outputs))
    if report_path is not None:
        write_report(result, report_path)
    return result
