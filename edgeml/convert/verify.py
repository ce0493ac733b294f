"""Numeric equivalence of two models on the same samples (every conversion checks itself with this)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgeml.formats.common import TensorSpec

NON_BATCH_DYNAMIC = 16  # a dynamic non-batch dimension (e.g. sequence length) is fed at this size


@dataclass
class Verification:
    """How closely ``test`` reproduces ``reference``.

    ``normalized_max_diff`` = max |a - b| / max(1, max |reference|): absolute for outputs in [-1, 1]
    (probabilities, normalised logits), relative for larger outputs. The tolerance applies to it.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        agree = f", argmax agreement {100 * self.argmax_agreement:.1f}%" if self.argmax_agreement is not None else ""
        return (f"max abs diff {self.max_abs_diff:.3g} (normalised {self.normalized_max_diff:.3g}, tolerance "
                f"{self.atol:g}), mean {self.mean_abs_diff:.3g}{agree} on {self.samples} samples ({self.data})")


def random_feeds(inputs: list[TensorSpec], n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Seeded inputs in a plausible range: floats in [0, 1), integers in [0, 10)."""
    from edgeml._io import check_tensor_memory

    check_tensor_memory(inputs, "random inputs", dynamic=NON_BATCH_DYNAMIC)
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(n):
        sample = {}
        for t in inputs:
            shape = [1] + [NON_BATCH_DYNAMIC if d is None else d for d in t.shape[1:]]
            if t.dtype.startswith("float") or t.quantization is not None:
                sample[t.name] = rng.random(shape, dtype=np.float32)
            else:
                sample[t.name] = rng.integers(0, 10, shape).astype(t.dtype)
        feeds.append(sample)
    return feeds


def data_feeds(inputs: list[TensorSpec], spec: Any, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` samples of a data spec, shaped for ``inputs`` (float: the session quantizes if needed)."""
    from edgeml.calibration import DataSpec, load_dataset

    float_inputs = [TensorSpec(t.name, t.shape, "float32" if t.quantization else t.dtype) for t in inputs]
    if isinstance(spec, str):
        spec = DataSpec.parse(spec)
    if spec.samples is None or spec.samples > n:
        spec = dataclasses.replace(spec, samples=n)
    ds = load_dataset(spec, inputs=float_inputs)
    return [{k: v[None] for k, v in s.feeds.items()} for s in ds]


def _output_order(names: list[str]) -> list[str]:
    m = [re.fullmatch(r"output_(\d+)", n) for n in names]
    if all(m):
        return [n for _, n in sorted(zip([int(x.group(1)) for x in m], names))]
    return list(names)


def match_outputs(ref_names: list[str], test_names: list[str]) -> list[tuple[str, str]]:
    """Pair outputs by name when both sides use the same names, else by (signature) order."""
    if set(ref_names) == set(test_names):
        return [(n, n) for n in ref_names]
    return list(zip(_output_order(ref_names), _output_order(test_names)))


def compare(reference: Any, test: Any, feeds: list[dict[str, np.ndarray]], *, atol: float, data: str,
            ref_input_map: dict[str, str] | None = None) -> Verification:
    """Run both sessions on ``feeds`` and measure output differences."""
    pairs = match_outputs([t.name for t in reference.outputs], [t.name for t in test.outputs])
    test_in = [t.name for t in test.inputs]
    ref_in = [t.name for t in reference.inputs]
    rename = dict(zip(ref_in, test_in)) if set(ref_in) != set(test_in) else {n: n for n in ref_in}
    refs: dict[str, list] = {r: [] for r, _ in pairs}
    tests: dict[str, list] = {r: [] for r, _ in pairs}
    for f in feeds:
        ref_out = reference.run(f)
        test_out = test.run({rename[k]: v for k, v in f.items()})
        for r, t in pairs:
            a = np.asarray(ref_out[r], np.float64)
            b = np.asarray(test_out[t], np.float64).reshape(a.shape)
            refs[r].append(a)
            tests[r].append(b)
    per_output = []
    max_abs = mean_num = mean_den = norm = sq_num = 0.0
    agree_n = agree_d = 0
    cos_vals = []
    for r, t in pairs:
        a, b = np.concatenate(refs[r]), np.concatenate(tests[r])
        d = np.abs(a - b)
        o_max = float(d.max()) if d.size else 0.0
        o_norm = o_max / max(1.0, float(np.abs(a).max()) if a.size else 1.0)
        cos = float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
        entry: dict[str, Any] = {"reference": r, "test": t, "max_abs_diff": o_max, "mean_abs_diff": float(d.mean()),
                                 "mse": float((d * d).mean()),
                                 "normalized_max_diff": o_norm, "cosine": cos}
        if a.ndim >= 2 and a.shape[-1] > 1:
            agree = (a.argmax(-1) == b.argmax(-1)).ravel()
            entry["argmax_agreement"] = float(agree.mean())
            agree_n += int(agree.sum())
            agree_d += agree.size
        per_output.append(entry)
        max_abs, norm = max(max_abs, o_max), max(norm, o_norm)
        mean_num += float(d.sum())
        sq_num += float((d * d).sum())
        mean_den += d.size
        cos_vals.append(cos)
    return Verification(
        samples=len(feeds), data=data, max_abs_diff=max_abs, mean_abs_diff=mean_num / max(mean_den, 1),
        normalized_max_diff=norm, argmax_agreement=(agree_n / agree_d) if agree_d else None,
        cosine=min(cos_vals) if cos_vals else 1.0, atol=atol, passed=norm <= atol, outputs=per_output,
        mse=sq_num / max(mean_den, 1))
