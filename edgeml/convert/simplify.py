"""ONNX simplification with onnx-simplifier, keeping the original when it fails."""

from __future__ import annotations

import logging
from typing import Any

from edgeml._quiet import all_output_captured

log = logging.getLogger(__name__)


def simplify(model: Any) -> tuple[Any, dict[str, Any]]:
    """Return ``(model, info)``; on failure the input model comes back with ``info['warning']`` set."""
    info: dict[str, Any] = {"applied": False, "nodes_before": len(model.graph.node), "nodes_after": None,
                            "warning": None}
    try:
        import onnxsim

        with all_output_captured():
            simplified, ok = onnxsim.simplify(model, check_n=1)
    except Exception as exc:  # onnxsim raises plain exceptions for unsupported graphs
        info["warning"] = f"onnxsim failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        return model, info
    if not ok:
        info["warning"] = "onnxsim's own check found the simplified model differs"
        return model, info
    info.update(applied=True, nodes_after=len(simplified.graph.node))
    return simplified, info
