"""ONNX -> TFLite, step 2: onnx2tf (an optional, separately installed tool) run on the prepared graph.

``run_onnx2tf`` runs it in a private temporary folder that is removed even on SIGINT/SIGTERM
(``private_dir``), never lets it download its sample images (it fetches them from GitHub for any 4-D
3-channel input otherwise) and turns its failure log into one line (``explain_failure``).
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
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.convert.onnx_tflite_prepare import channel_last_inputs, keep_onnx_hint
from edgeml.errors import MissingDependencyError, OnnxToTFLiteError

ONNX2TF_VERSION = "1.29.24"
INSTALL_COMMAND = "make onnx2tf"
# Installed with --no-deps: onnx2tf 1.29.x pins numpy 1.26 / TF 2.19 / onnx 1.19 / onnxruntime 1.23 exactly,
# which would downgrade the whole stack; these are the packages it actually needs beside ours.
INSTALL_PIP = (f"pip install --no-deps onnx2tf=={ONNX2TF_VERSION} tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 "
               "sng4onnx==2.0.1 psutil")
_SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf would download
_BOILERPLATE = ("The trace log", "input_onnx_file_path", "onnx_op_name", "Read this", "Alternatively",
                "If the input OP", "Also, for models")


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


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
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


def explain_failure(model_path: Path, log: str, exc: BaseException | None, proto: Any = None) -> OnnxToTFLiteError:
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
    return OnnxToTFLiteError(f"{model_path}: onnx2tf failed{where}: {detail}", hint=keep_onnx_hint(model_path))


def run_onnx2tf(proto: Any, model_path: Path) -> tuple[bytes, dict[str, bool]]:
    """Convert a prepared ModelProto; return (float32 .tflite bytes, {onnx output: is channel-last})."""
    import onnx

    from edgeml._quiet import all_output_captured

    module = require_onnx2tf()
    with private_dir() as tmp:
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
            raise explain_failure(model_path, "".join(box), exc, proto)
        return produced.read_bytes(), layouts


__all__ = ["INSTALL_COMMAND", "INSTALL_PIP", "ONNX2TF_VERSION", "explain_failure", "private_dir", "require_onnx2tf",
           "run_onnx2tf"]
