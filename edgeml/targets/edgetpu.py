"""Edge TPU compilation with Coral's edgetpu_compiler (when installed)."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgeml.artifact import ModelArtifact, ModelFormat
from edgeml.errors import EdgeMLError, MissingDependencyError


def compile_edgetpu(model: str | Path, *, target: str = "coral-usb", out_dir: str | Path | None = None) -> dict:
    from edgeml.targets import load_profile

    profile = load_profile(target)
    if profile.kind != "edgetpu":
        raise EdgeMLError(f"`target` {target} is not an Edge TPU target", hint="use `target` coral-usb or "
                                                                                 "coral-devboard")
    art = ModelArtifact.open(model)
    if art.format is not ModelFormat.TFLITE:
        raise EdgeMLError(f"{art.path}: edgetpu_compiler needs a .tflite",
                          hint=f"quantize first: `edgeml.quantize(..., target={target!r})`")
    info = art.inspect()
    if "float32" in info.weight_dtypes or not any(t.quantization for t in info.inputs):
        raise EdgeMLError(f"{art.path}: not a full-int8 model (float weights or float inputs)",
                          hint=f"`edgeml.quantize(MODEL, calib=SPEC, target={target!r}, out=\"model_int8.tflite\")`")
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        where = ("on this x86-64 Linux machine: add Coral's apt repository and apt install edgetpu-compiler"
                 if platform.system() == "Linux" and platform.machine() == "x86_64"
                 else "it runs on x86-64 Linux only: compile there (or in a Debian x86-64 container)")
        raise MissingDependencyError("edgetpu_compiler is not installed",
                                     hint=where + "; or predict its mapping: "
                                          f"`edgeml.compile({str(art.path)!r}, plan=True)`")
    out = Path(out_dir) if out_dir else art.path.parent
    from edgeml._io import check_outputs

    check_outputs([], inputs=[art.path], folders=[out])
    out.mkdir(parents=True, exist_ok=True)
    check_outputs([out / (art.path.stem + "_edgetpu.tflite"), out / (art.path.stem + "_edgetpu.log")],
                  inputs=[art.path], force=True)
    proc = subprocess.run([compiler, "-s", "-o", str(out), str(art.path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EdgeMLError(f"edgetpu_compiler failed on {art.path}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    on_tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", proc.stdout)
    on_cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", proc.stdout)
    result: dict[str, Any] = {"output": str(out / (art.path.stem + "_edgetpu.tflite")), "log": proc.stdout,
                              "ops_on_edgetpu": int(on_tpu.group(1)) if on_tpu else None,
                              "ops_on_cpu": int(on_cpu.group(1)) if on_cpu else None}
    result["plan_comparison"] = compare_with_plan(art.path, proc.stdout, target)
    return result


def compare_with_plan(model: Path, log_text: str, target: str) -> dict[str, Any]:
    """edgeml's predicted plan against what the compiler printed (its -s log)."""
    from edgeml.targets.edgetpu_log import compare, parse_log
    from edgeml.targets.edgetpu_plan import DEFAULT_COMPILER, plan

    log = parse_log(log_text)
    return compare(plan(model, target=target, compiler=log.get("compiler_major", DEFAULT_COMPILER)).to_dict(), log)
