"""Numeric equivalence of two models on the same samples (every conversion checks itself with this)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from edgeml.formats.common import TensorSpec

NON_BATCH_DYNAMIC = 16  # size a memory bound may assume for a dynamic dim; generated inputs never invent one
_INTEGER = {"int8", "uint8", "int16"}
INT_STEPS, INT_MEAN_STEPS = 4, 0.5
_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


@dataclass
class Verification:
    """How closely ``test`` reproduces ``reference``, compared as real values.

    Both models get the same real-valued samples, each in its own input domain (a model with int8 inputs
    gets them quantized with its own scale/zero-point), and their outputs are dequantized with each
    model's own output quantization before they are compared.

    ``normalized_max_diff`` = max |a - b| / max(1, max |reference|): absolute for outputs in [-1, 1]
    (probabilities, normalised logits), relative for larger outputs. The tolerance applies to it.
    An output that is integer on either side passes when its max abs diff is within ``INT_STEPS``
    quantization steps (the larger output scale) and its mean abs diff within ``INT_MEAN_STEPS`` steps: an
    integer kernel (fixed-point requantization) and its float-emulated QDQ twin (float scale, round half to
    even) may round a value differently at every layer, and those one-step differences add up in deep
    models; a wrong conversion moves the mean, not just a few values.
    ``relative_error`` = ||a - b|| / ||a|| (worst output). ``argmax_agreement`` only covers classifier outputs
    (one non-singleton axis per sample, and a classifier head where the caller knows the graph) whose
    reference top-1 is not tied; it is None otherwise.
    """

    samples: int
    data: str
    max_abs_diff: float
    mean_abs_diff: float
    normalized_max_diff: float
    argmax_agreement: float | None
    cosine: float
    atol: float
    passed: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)
    mse: float = 0.0
    relative_error: float = 0.0
    notes: list[str] = field(default_factory=list)
    quantized_io: list[str] = field(default_factory=list)  # integer IO fed/read through its scale/zero-point
    tolerance_basis: str = ""  # why the tolerance is looser than atol, when not the output quantization steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def degenerate(self) -> bool:
        """Every output of the reference is constant on these samples: cosine and argmax say nothing."""
        return bool(self.outputs) and all(o.get("constant") for o in self.outputs)

    def summary(self) -> str:
        agree = f", argmax agreement {100 * self.argmax_agreement:.1f}%" if self.argmax_agreement is not None else ""
        tol = max((o.get("tolerance", self.atol) for o in self.outputs), default=self.atol)
        steps = (f" = {INT_STEPS} output quantization steps, mean within {INT_MEAN_STEPS} step"
                 if tol > self.atol else "")
        if self.tolerance_basis and tol > self.atol:
            steps = f" = {self.tolerance_basis}"
        real = " as real values (integer IO through each model's scale/zero-point)" if self.quantized_io else ""
        return (f"max abs diff {self.max_abs_diff:.3g} (normalised {self.normalized_max_diff:.3g}, tolerance "
                f"{tol:.3g}{steps}), mean {self.mean_abs_diff:.3g}{agree} on {self.samples} samples ({self.data})"
                f"{real}")


def random_feeds(inputs: list[TensorSpec], n: int, seed: int = 0, *, input_shapes: Any = None,
                 what: str = "generated sample inputs", values: dict[str, int] | None = None
                 ) -> list[dict[str, np.ndarray]]:
    """Seeded inputs in a plausible range: floats in [0, 1); a quantized input uniform over the real range its
    integers represent; integers in [0, 10); booleans False/True;
    ``values`` (``Inspection.input_values``: a sample rate the graph tests for) are fed as they are.

    Shapes come from ``edgeml.formats.shapes.resolve`` (batch 1, symbolic dims resolved by name across
    inputs, ``input_shapes`` for the rest); an unknown dimension is refused, never invented.
    """
    from edgeml._io import check_tensor_memory
    from edgeml.formats.shapes import resolve

    shapes = resolve(inputs, input_shapes).require(what)
    check_tensor_memory([SimpleNamespace(name=t.name, shape=shapes[t.name], dtype=t.dtype) for t in inputs],
                        "random inputs")
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(n):
        sample = {}
        for t in inputs:
            shape = shapes[t.name]
            q = t.quantization
            if values and t.name in values:
                sample[t.name] = np.full(shape, values[t.name], dtype=t.dtype)
            elif q is not None and t.dtype in _RANGES:
                lo, hi = ((v - q.zero_point) * q.scale for v in _RANGES[t.dtype])
                sample[t.name] = (lo + (hi - lo) * rng.random(shape)).astype(np.float32)
            elif t.dtype.startswith("float") or q is not None:
                sample[t.name] = rng.random(shape, dtype=np.float32)
            elif t.dtype == "bool":
                sample[t.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                sample[t.name] = rng.integers(0, 10, shape).astype(t.dtype)
        feeds.append(sample)
    return feeds


def random_feeds_label(inputs: list[TensorSpec], values: dict[str, int] | None = None) -> str:
    """What ``random_feeds`` fed, in words (integer inputs such as a sample rate are named)."""
    values = values or {}
    ints = [t for t in inputs if not (t.dtype.startswith("float") or t.quantization is not None)]
    text = "seeded random inputs in [0, 1)"
    if any(t.quantization is not None and t.dtype in _RANGES for t in inputs):
        text = "seeded random inputs over each quantized input's real range (floats in [0, 1))"

    def one(t: TensorSpec) -> str:
        kind = f"{t.name} ({t.dtype}{' scalar' if not t.shape else ''})"
        if t.name in values:
            return f"{kind} = {values[t.name]}, the value the model tests it for"
        return f"{t.name} (bool) random" if t.dtype == "bool" else f"{kind} random integers in [0, 10)"
    if ints:
        text += "; " + ", ".join(one(t) for t in ints)
    return text


def data_feeds(inputs: list[TensorSpec], spec: Any, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` samples of a data spec as real values for ``inputs`` (the session quantizes if needed): data
    already in a quantized input's integer domain is taken as those integers, never quantized twice."""
    from edgeml.calibration import DataSpec, load_dataset
    from edgeml.calibration.domain import real_valued as float_inputs

    if isinstance(spec, str):
        spec = DataSpec.parse(spec)
    if spec.samples is None or spec.samples > n:
        spec = dataclasses.replace(spec, samples=n)
    ds = load_dataset(spec, inputs=float_inputs(inputs))
    return [s.batch1() for s in ds]


def _output_order(names: list[str]) -> list[str]:
    m = [re.fullmatch(r"output_(\d+)", n) for n in names]
    if all(m):
        return [n for _, n in sorted(zip([int(x.group(1)) for x in m if x], names))]
    return list(names)


def match_outputs(ref_names: list[str], test_names: list[str]) -> list[tuple[str, str]]:
    """Pair outputs by name when both sides use the same names, else by (signature) order."""
    if set(ref_names) == set(test_names):
        return [(n, n) for n in ref_names]
    return list(zip(_output_order(ref_names), _output_order(test_names)))


def _classifier_like(a: np.ndarray) -> bool:
    """One non-singleton axis per sample (``[N, C]``, ``[N, 1, 1, C]``): argmax is a class."""
    return a.ndim >= 2 and sum(1 for d in a.shape[1:] if d > 1) == 1


def _top_tied(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(a.shape[0], -1)
    if flat.shape[1] < 2:
        return np.zeros(flat.shape[0], bool)
    top2 = -np.sort(-flat, axis=1)[:, :2]
    return top2[:, 0] <= top2[:, 1]


def to_domain(x: np.ndarray, spec: TensorSpec, q: Any, side: str) -> np.ndarray:
    """A real-valued sample as ``spec`` takes it: quantized with the model's own scale/zero-point."""
    from edgeml.formats.common import quantize

    x = np.asarray(x)
    if spec.dtype in _INTEGER and x.dtype.kind == "f":
        if q is None:
            from edgeml.errors import EdgeMLError

            raise EdgeMLError(f"the {side} model's input {spec.name!r} is {spec.dtype} with no known scale/zero-point: "
                              "the two models cannot be fed the same real-valued data",
                              hint="pass `verify=0` to skip the check, or re-create the model with edgeml so its "
                                   "IO quantization is recorded")
        return quantize(x, spec.dtype, q)
    return x


def to_real(y: np.ndarray, q: Any) -> np.ndarray:
    from edgeml.formats.common import dequantize

    y = np.asarray(y)
    return np.asarray(dequantize(y, q) if q is not None else y, np.float64)


def compare(reference: Any, test: Any, feeds: list[dict[str, np.ndarray]], *, atol: float, data: str,
            ref_input_map: dict[str, str] | None = None, classifiers: set[str] | None = None) -> Verification:
    """Run both sessions on ``feeds`` (real-valued samples) and measure output differences as real values.

    ``classifiers``: the reference outputs that are class scores (argmax agreement is computed for those
    only); None: every classifier-shaped output."""
    from edgeml.convert.ioquant import session_io

    pairs = match_outputs([t.name for t in reference.outputs], [t.name for t in test.outputs])
    test_in = [t.name for t in test.inputs]
    ref_in = [t.name for t in reference.inputs]
    rename = dict(zip(ref_in, test_in)) if set(ref_in) != set(test_in) else {n: n for n in ref_in}
    ref_iq, ref_oq = session_io(reference)
    test_iq, test_oq = session_io(test)
    ref_specs = {t.name: t for t in reference.inputs}
    test_specs = {t.name: t for t in test.inputs}
    notes: list[str] = []
    quantized_io = sorted(set(ref_iq) | set(ref_oq) | set(test_iq) | set(test_oq))
    refs: dict[str, list] = {r: [] for r, _ in pairs}
    tests: dict[str, list] = {r: [] for r, _ in pairs}
    for f in feeds:
        ref_feed = {k: to_domain(v, ref_specs[k], ref_iq.get(k), "reference") if k in ref_specs else v
                    for k, v in f.items()}
        test_feed = {}
        for k, v in f.items():
            name = rename.get(k, k)
            test_feed[name] = to_domain(v, test_specs[name], test_iq.get(name), "converted") \
                if name in test_specs else v
        ref_out = reference.run(ref_feed, raw=True)
        test_out = test.run(test_feed, raw=True)
        for r, t in pairs:
            a = to_real(ref_out[r], ref_oq.get(r))
            b = to_real(test_out[t], test_oq.get(t)).reshape(a.shape)
            refs[r].append(a)
            tests[r].append(b)
    per_output = []
    max_abs = mean_num = mean_den = norm = sq_num = 0.0
    agree_n = agree_d = 0
    cos_vals, rel_vals = [], []
    for r, t in pairs:
        a, b = np.concatenate(refs[r]), np.concatenate(tests[r])
        d = np.abs(a - b)
        o_max = float(d.max()) if d.size else 0.0
        o_norm = o_max / max(1.0, float(np.abs(a).max()) if a.size else 1.0)
        na, nb, nd = float(np.linalg.norm(a)), float(np.linalg.norm(b)), float(np.linalg.norm(a - b))
        if na == 0 and nb == 0:
            cos, rel = 1.0, 0.0
        elif na == 0 or nb == 0:
            cos, rel = 0.0, (nd / na if na else math.inf)
        else:
            cos, rel = float(np.dot(a.ravel(), b.ravel()) / (na * nb)), nd / na
        constant = bool(a.size) and float(a.max()) == float(a.min())
        steps = [q.scale for q in (ref_oq.get(r), test_oq.get(t)) if q is not None]
        tol, ok_mean = atol, True
        if steps:
            tol = max(atol, INT_STEPS * max(steps) / max(1.0, float(np.abs(a).max()) if a.size else 1.0))
            ok_mean = float(d.mean()) <= INT_MEAN_STEPS * max(steps) if d.size else True
        entry: dict[str, Any] = {"reference": r, "test": t, "max_abs_diff": o_max, "mean_abs_diff": float(d.mean()),
                                 "mse": float((d * d).mean()), "normalized_max_diff": o_norm, "cosine": cos,
                                 "relative_error": rel, "constant": constant, "tolerance": tol,
                                 "passed": o_norm <= tol and ok_mean}
        if constant:
            notes.append(f"output {r!r} of the reference is constant ({float(a.flat[0]):.6g}) on every sample: "
                         "cosine and argmax say nothing about it (placeholder weights, or inputs it ignores?)")
        elif _classifier_like(a) and (classifiers is None or r in classifiers):
            tied = _top_tied(a)
            if tied.mean() > 0.5:
                notes.append(f"output {r!r}: the reference's top-1 is tied on {int(tied.sum())}/{len(tied)} "
                             "samples, so argmax agreement is not meaningful")
            else:
                # a tied top-1 in the test output (e.g. all zeros) is no agreement, whatever index argmax picks
                same = a.reshape(len(a), -1).argmax(-1) == b.reshape(len(b), -1).argmax(-1)
                agree = (same & ~_top_tied(b))[~tied]
                entry["argmax_agreement"] = float(agree.mean())
                agree_n += int(agree.sum())
                agree_d += agree.size
        per_output.append(entry)
        max_abs, norm = max(max_abs, o_max), max(norm, o_norm)
        mean_num += float(d.sum())
        sq_num += float((d * d).sum())
        mean_den += d.size
        cos_vals.append(cos)
        rel_vals.append(rel)
    return Verification(
        samples=len(feeds), data=data, max_abs_diff=max_abs, mean_abs_diff=mean_num / max(mean_den, 1),
        normalized_max_diff=norm, argmax_agreement=(agree_n / agree_d) if agree_d else None,
        cosine=min(cos_vals) if cos_vals else 1.0, atol=atol, passed=all(o["passed"] for o in per_output),
        outputs=per_output,
        mse=sq_num / max(mean_den, 1), relative_error=max(rel_vals) if rel_vals else 0.0, notes=notes,
        quantized_io=quantized_io)
