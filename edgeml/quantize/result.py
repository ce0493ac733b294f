"""quantize()'s result: the ``QuantizeResult`` record, the fidelity error for a broken one, and its summary
lines / JSON / Markdown report (the CLI and the report file share ``summary_lines``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeml.errors import EdgeMLError
from edgeml.quantize.budget_steps import budget_lines, budget_markdown
from edgeml.quantize.debug import LayerError

if TYPE_CHECKING:
    from edgeml.convert.verify import Verification


@dataclass
class QuantizeResult:
    source: str
    source_format: str
    output: str
    format: str
    mode: str
    io: str
    per_channel: bool
    method: str
    target: str
    recipe: dict[str, Any]
    source_size_bytes: int
    size_before_bytes: int
    size_after_bytes: int
    calibration: dict[str, Any] | None
    float_ops: list[str]
    metrics: Verification | None
    layers: list[LayerError]
    accuracy: dict[str, Any] | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fidelity: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] | None = None  # the accuracy budget's search (edgeml.quantize.budget)
    speed: dict[str, Any] | None = None  # float vs quantized latency on this host (edgeml.quantize.speed)
    training: dict[str, Any] | None = None  # --method qat: the fine-tuning record (edgeml.quantize.qat)

    @property
    def size_ratio(self) -> float:
        return self.size_after_bytes / self.size_before_bytes if self.size_before_bytes else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("metrics", "layers")}
        d["size_ratio"] = round(self.size_ratio, 4)
        d["metrics"] = self.metrics.to_dict() if self.metrics is not None else None
        d["layers"] = [layer.to_dict() for layer in self.layers]
        return {"schema": "edgeml.quantize/1", **d}



def fidelity_error(path: Path, fid: dict[str, Any], metrics: Any, layers: list, fmt: str, mode: str, per_channel: bool,
            method: str, *, written: bool) -> EdgeMLError:
    from edgeml.errors import FidelityError
    from edgeml.quantize.fidelity import hint

    why = []
    if fid["broken"]:
        worst = f"; worst layer {layers[0].name.split(';')[0]!r} ({layers[0].op}, SQNR {layers[0].sqnr_db:.1f} dB)" \
            if layers else ""
        why.append(f"{'; '.join(fid['broken'])} on {metrics.data}{worst}")
    if fid.get("size_growth"):
        why.append(fid["size_growth"])
    where = "kept at the output (`keep_degraded`)" if written else "nothing was written"
    why += [f"({c})" for c in fid.get("caveats", [])]
    advice = hint(fmt=fmt, mode=mode, per_channel=per_channel, method=method) if fid["broken"] else \
        "`keep_degraded=True` writes it anyway (still exit 1)"
    if fid.get("size_growth"):
        advice = "export the model with its trained weights stored as initializers (the source computes them at " \
                 f"run time); {advice}"
    return FidelityError(f"{path}: the quantized model fails its fidelity check: {'; '.join(why)}; {where}",
                         hint=advice)


def broken_error(r: QuantizeResult) -> EdgeMLError | None:
    """The FidelityError for a result kept with ``keep_degraded`` whose check failed, else None."""
    if r.fidelity.get("status") != "broken":
        return None
    return fidelity_error(Path(r.source), r.fidelity, r.metrics, r.layers, r.format, r.mode, r.per_channel, r.method,
                   written=True)


def write_report(result: QuantizeResult, path: Path) -> None:
    from edgeml._io import json_text, write_bytes_atomic

    if path.suffix.lower() == ".md":
        text = render_markdown(result)
    else:
        text = json_text(result.to_dict()) + "\n"
    write_bytes_atomic(path, text.encode())


def summary_lines(r: QuantizeResult) -> list[str]:
    """The headline facts of a quantization, one per line (CLI and Markdown share them)."""
    from edgeml.formats.common import human_bytes

    src = r.source_size_bytes
    source = f"; source file {human_bytes(src)}" if src and abs(src - r.size_before_bytes) > 0.1 * src else ""
    lines = [f"size      {human_bytes(r.size_before_bytes)} float -> {human_bytes(r.size_after_bytes)} "
             f"({100 * r.size_ratio:.1f}%{source})"]
    if r.calibration:
        c = r.calibration
        lines.append(f"calibrate {c['samples']} samples from {c['data']}, {c['seconds']:.1f} s")
    rec = r.recipe
    if r.format == "onnx" and "activation_type" in rec:
        lines.append(f"recipe    QDQ activations {rec['activation_type']}"
                     f"{' symmetric' if rec['activation_symmetric'] else ''}, weights {rec['weight_type']}, "
                     f"{rec['method']} - {rec['basis']}")
    if r.metrics is not None:
        m = r.metrics
        agree = f", argmax agreement {100 * m.argmax_agreement:.1f}%" if m.argmax_agreement is not None else ""
        if m.degenerate:
            lines.append(f"outputs   constant in the float model on every sample: cosine and argmax say nothing; "
                         f"max abs diff {m.max_abs_diff:.3g}, relative error {m.relative_error:.3g} vs float "
                         f"({m.data})")
        else:
            lines.append(f"outputs   MSE {m.mse:.3g}, cosine {m.cosine:.5f}, relative error "
                         f"{m.relative_error:.3g}{agree} vs float ({m.data})")
    if r.fidelity:
        f = r.fidelity
        why = "; ".join(f["broken"] + [f["size_growth"]] * bool(f.get("size_growth")) if f["status"] == "broken"
                        else f["degraded"])
        lines.append(f"fidelity  {f['status'].upper() if f['status'] != 'ok' else 'ok'}" + (f": {why}" if why else ""))
    lines += budget_lines(r)
    if r.training:
        t = r.training
        cmp = (f"; top-1 float {100 * t['float_top1']:.2f}%, PTQ {100 * t['ptq_top1']:.2f}%, QAT "
               f"{100 * t['qat_top1']:.2f}% -> wrote {t['written'].upper()}" if "qat_top1" in t else "")
        lines.append(f"qat       {t['epochs']} epoch(s) on {t['samples']} samples, {t['wall_s']:.1f} s, "
                     f"{len(t['fake_quantized_layers'])} layer(s) fake-quantized{cmp}")
    if r.accuracy:
        a = r.accuracy
        lines.append(f"top-1     float {100 * a['float_top1']:.2f}%  quantized {100 * a['quantized_top1']:.2f}%  "
                     f"drop {100 * a['drop']:+.2f} pt ({a['samples']} samples)")
    return lines


def render_markdown(r: QuantizeResult) -> str:
    lines = [f"# Quantization report: {Path(r.source).name} -> {Path(r.output).name}", "",
             f"- mode {r.mode}, io {r.io}, {'per-channel' if r.per_channel else 'per-tensor'}, method {r.method}, "
             f"target {r.target}"]
    lines += [f"- {line}" for line in summary_lines(r)]
    lines += budget_markdown(r.budget)
    lines += ["", "| layer (worst first) | op | SQNR dB | MSE |", "|---|---|---:|---:|"]
    lines += [f"| `{e.name}` | {e.op} | {e.sqnr_db:.1f} | {e.mse:.3g} |" for e in r.layers]
    return "\n".join(lines) + "\n"
