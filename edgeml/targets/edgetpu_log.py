"""Read edgetpu_compiler's printed log (``edgetpu_compiler -s``) and compare it with edgeml's plan.

The format parsed is the one the compiler prints (versions 2.x-16), e.g. google-coral/edgetpu#147, #342,
#433, #512: summary lines ("On-chip memory used for caching model parameters: 21.75KiB", "Number of
operations that will run on Edge TPU: 6") and the per-operator table ("Operator  Count  Status").
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

MAPPED = "Mapped to Edge TPU"
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
_SUMMARY = {
    "compiler_version": r"Edge TPU Compiler version\s+([\d.]+)",
    "ops_on_edgetpu": r"Number of operations that will run on Edge TPU:\s*(\d+)",
    "ops_on_cpu": r"Number of operations that will run on CPU:\s*(\d+)",
    "total_ops": r"Total number of operations:\s*(\d+)",
    "subgraphs": r"Number of Edge TPU subgraphs:\s*(\d+)",
    "on_chip_used": r"On-chip memory used for caching model parameters:\s*([\d.]+\s*[KMG]?i?B)",
    "on_chip_remaining": r"On-chip memory remaining for caching model parameters:\s*([\d.]+\s*[KMG]?i?B)",
    "off_chip_streamed": r"Off-chip memory used for streaming uncached model parameters:\s*([\d.]+\s*[KMG]?i?B)",
}
_ROW = re.compile(r"^\s*([A-Z][A-Z0-9_]+|edgetpu-custom-op)\s+(\d+)\s+(\S.*?)\s*$")


def _bytes(text: str) -> int:
    m = re.match(r"([\d.]+)\s*([KMG]?i?B)", text.strip())
    if not m:
        raise ValueError(text)
    return int(round(float(m.group(1)) * _UNITS.get(m.group(2), 1)))


def parse_log(text: str) -> dict[str, Any]:
    """Summary numbers and the per-operator rows [(op, count, status)] of a compiler log."""
    out: dict[str, Any] = {}
    for key, pat in _SUMMARY.items():
        m = re.search(pat, text)
        if m:
            out[key] = m.group(1) if key == "compiler_version" else (
                _bytes(m.group(1)) if key.startswith(("on_chip", "off_chip")) else int(m.group(1)))
    rows = []
    in_table = False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status", line):
            in_table = True
            continue
        if in_table:
            m = _ROW.match(line)
            if m:
                rows.append((m.group(1), int(m.group(2)), m.group(3)))
    out["rows"] = rows
    if "compiler_version" in out:
        out["compiler_major"] = int(out["compiler_version"].split(".")[0])
    return out


def compare(plan_dict: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
    """Disagreements between a plan (Plan.to_dict()) and a parsed compiler log, per op type."""
    predicted: Counter = Counter()
    for o in plan_dict["ops"]:
        predicted[(o["op"], o["where"] == "edgetpu")] += 1
    actual: Counter = Counter()
    statuses: dict[str, set[str]] = {}
    for op, count, status in log.get("rows", []):
        actual[(op, status == MAPPED)] += count
        if status != MAPPED:
            statuses.setdefault(op, set()).add(status)
    diffs = []
    for op in sorted({k[0] for k in predicted} | {k[0] for k in actual}):
        p_tpu, p_cpu = predicted[(op, True)], predicted[(op, False)]
        a_tpu, a_cpu = actual[(op, True)], actual[(op, False)]
        if log.get("rows") and (p_tpu, p_cpu) != (a_tpu, a_cpu):
            diffs.append({"op": op, "predicted_edgetpu": p_tpu, "predicted_cpu": p_cpu, "compiler_edgetpu": a_tpu,
                          "compiler_cpu": a_cpu, "compiler_status": sorted(statuses.get(op, set()))})
    totals = {"predicted_edgetpu": plan_dict["ops_on_edgetpu"], "predicted_cpu": plan_dict["ops_on_cpu"],
              "compiler_edgetpu": log.get("ops_on_edgetpu"), "compiler_cpu": log.get("ops_on_cpu")}
    streamed = log.get("off_chip_streamed")
    return {"agree": not diffs and totals["predicted_edgetpu"] == totals["compiler_edgetpu"], "totals": totals,
            "by_op": diffs, "predicted_streamed_bytes": plan_dict["streamed_weight_bytes"],
            "compiler_streamed_bytes": streamed, "compiler_on_chip_bytes": log.get("on_chip_used")}


__all__ = ["MAPPED", "compare", "parse_log"]
