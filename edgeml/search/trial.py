"""The work of one search trial, as plain functions that run anywhere (this process or a Ray worker):

* :func:`prune_task` prunes the source once per (method, sparsity) -- shared by the trials built on it;
* :func:`build_task` builds one variant (convert for fp32, else quantize) and scores its top-1 on the eval
  data (accuracy does not depend on what else runs on the machine; latency does, and is measured later,
  one variant at a time, by the caller).

Inputs travel as bytes (``{"name", "data"}``) or, for a SavedModel folder, as a path (which a Ray cluster's
nodes must then see); outputs come back as bytes, and the caller writes them. A known failure
(``EdgeMLError``: a fidelity check, an op a runtime lacks) comes back as ``{"error", "hint", "known": True}``
and is cached like a result; anything else is ``known: False`` and is retried by the next run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any


def _materialise(src: dict[str, Any], folder: Path) -> Path:
    if "path" in src:
        return Path(src["path"])
    p = folder / src["name"]
    p.write_bytes(src["data"])
    return p


def failure(exc: BaseException) -> dict[str, Any]:
    from edgeml.errors import EdgeMLError

    if isinstance(exc, EdgeMLError):
        return {"error": exc.message, "hint": exc.hint, "known": True}
    return {"error": f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            "hint": "this is a bug in edgeml; the trial is retried by the next run",
            "traceback": traceback.format_exc()[-4000:], "known": False}


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def prune_task(src: dict[str, Any], opts: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Prune ``src`` with ``opts`` (method, sparsity); fine-tunes when ``ctx['train']`` is given."""
    _quiet()
    from edgeml.options import PruneOptions
    from edgeml.prune import prune

    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="edgeml-search-") as tmp:
            path = _materialise(src, Path(tmp))
            suffix = ".onnx" if path.suffix == ".onnx" else ".keras"
            out = Path(tmp) / ("pruned" + suffix)
            res = prune(path, options=PruneOptions(out=out, sparsity=opts["sparsity"], method=opts["method"],
                                                   train=ctx.get("train"), val=ctx.get("eval"),
                                                   epochs=ctx.get("epochs", 5), force=True))
            return {"files": {out.name: out.read_bytes()}, "result": res.to_dict(),
                    "seconds": round(time.perf_counter() - t0, 2), "pid": os.getpid()}
    except Exception as exc:  # noqa: BLE001 -- recorded with the trial, never lost
        return failure(exc) | {"seconds": round(time.perf_counter() - t0, 2)}


def build_task(trial: dict[str, Any], name: str, src: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Build variant ``name`` from ``src`` (the source or a pruned model) as ``trial`` says; score it."""
    _quiet()
    t0 = time.perf_counter()
    if "error" in src:  # the prune it builds on failed
        return {"error": f"pruning failed: {src['error']}", "hint": src.get("hint"), "known": src.get("known", False),
                "seconds": 0.0}
    if "files" in src:  # a prune_task result (Ray hands the finished prune over directly)
        (fname, data), = src["files"].items()
        src = {"name": fname, "data": data}
    try:
        with tempfile.TemporaryDirectory(prefix="edgeml-search-") as tmp:
            path = _materialise(src, Path(tmp))
            out = Path(tmp) / "out" / name
            out.parent.mkdir()
            quant = None
            if trial["mode"] == "fp32":
                if path.suffix == f".{trial['format']}":
                    shutil.copyfile(path, out)
                else:
                    from edgeml.convert import convert
                    from edgeml.options import ConvertOptions

                    convert(path, options=ConvertOptions(to=trial["format"], out=out, force=True,
                                                         input_shapes=ctx.get("input_shapes")))
            else:
                from edgeml.options import QuantizeOptions
                from edgeml.quantize import quantize

                q = quantize(path, options=QuantizeOptions(
                    out=out, calib=ctx["calib"], format=trial["format"], mode=trial["mode"],
                    per_channel=trial["per_channel"], method=trial["calib_method"],
                    calib_samples=ctx.get("calib_samples"), target=trial.get("quantize_target"), force=True,
                    input_shapes=ctx.get("input_shapes")))
                quant = q.to_dict()
                limit = ctx.get("max_float_ops")
                if limit is not None and len(q.float_ops) > limit:
                    from edgeml.errors import EdgeMLError

                    raise EdgeMLError(f"{name}: {len(q.float_ops)} op(s) stay in float ({', '.join(q.float_ops[:6])}), "
                                      f"over the space's max_float_ops = {limit}",
                                      hint="raise [quantize] max_float_ops, or drop this scheme")
            accuracy = None
            if ctx.get("eval"):
                from edgeml.bench.accuracy import top1

                accuracy = top1(out, ctx["eval"])
            return {"files": {name: out.read_bytes()}, "quantize": quant, "accuracy": accuracy,
                    "seconds": round(time.perf_counter() - t0, 2), "pid": os.getpid()}
    except Exception as exc:  # noqa: BLE001
        return failure(exc) | {"seconds": round(time.perf_counter() - t0, 2)}
