"""The board-runner protocol, host side: the job folder edgeml writes and the one JSON document the runner
prints back, the same for a local run (``bench.harness.run_local``) and an SSH run (``targets.remote``).

The runner (``device_runner.py``) runs on a board without edgeml, so it cannot import this module: it keeps
its own copies of the constants below, and ``tests/targets/test_protocol.py`` asserts that they agree.

A job folder holds::

    job.json      {"models": [{"name", "file", "format", "threads", "data"?, "feed"?, ...}], "runs", "warmup",
                   "min_time", "reference" (index or null), "data_layout": "full", "max_memory_bytes"}
    m0.tflite ... the models (an ONNX model with external data in a folder of its own, m<k>/)
    data0.npz ... each model's data, arrays in0, in1, ... (+ labels); feed<k>.npz a generated feed

The runner prints progress on stderr and, last on stdout, either the result (``{"models": [...], "runs",
"environment", "peak_rss_mib", ...}``) or ``{"error", "hint", "traceback"?}`` with exit code 3.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgeml.errors import RemoteError

log = logging.getLogger("edgeml")

RUNNER = Path(__file__).with_name("device_runner.py")
RUNNER_FILE = "device_runner.py"  # its name in the remote folder
JOB_DIR = "job"  # the job folder's name in the remote folder
JOB_FILE = "job.json"
DEFAULT_DATA = "data.npz"  # the data file of a model whose entry names none (the --reference comparison)
DATA_LAYOUT_FULL = "full"  # data arrays stack whole batch-of-one inputs (any batch axis, scalars)
INPUT_KEY = "in%d"  # the array of input i in a data/feed file
LABELS_KEY = "labels"
DOCTOR = "--doctor"
ERROR_EXIT = 3  # the runner's exit code with an {"error", ...} document
# the runner's entry point, replaced when its text is piped to a Python on the board for --doctor
MAIN_CALL = b'if __name__ == "__main__":\n    sys.exit(main(sys.argv[1:]))'


def input_key(i: int) -> str:
    """The name of input ``i``'s array in a data or feed file."""
    return INPUT_KEY % i


def write_job(job_dir: Path, *, models: list[dict[str, Any]], runs: int, warmup: int, min_time: float,
              reference: int | None, max_memory_bytes: int | None) -> Path:
    """Write ``job.json`` into ``job_dir`` (the models and data files are already there)."""
    path = job_dir / JOB_FILE
    path.write_text(json.dumps({
        "models": models, "runs": runs, "warmup": warmup, "min_time": min_time, "reference": reference,
        "data_layout": DATA_LAYOUT_FULL,  # every data file stacks whole batch-of-one inputs
        "max_memory_bytes": max_memory_bytes}))
    return path


def doctor_script() -> bytes:
    """The runner's text with its entry point replaced by ``main(["--doctor"])``: piped to a board's Python."""
    return RUNNER.read_bytes().replace(MAIN_CALL, f'sys.exit(main(["{DOCTOR}"]))'.encode())


def read_result(code: int, out: str, stderr: str, where: str) -> dict[str, Any]:
    """The runner's JSON result from its stdout (the last line that is a JSON object); its error document
    (or no document at all) becomes a :class:`RemoteError` naming ``where``."""
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if not lines:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
        if "No such file" in stderr or "not found" in stderr:
            raise RemoteError(f"{where}: Python 3 was not found there ({last})",
                              hint="install python3 on the board, or point `SSHTarget.python` at it")
        raise RemoteError(f"{where}: the device runner failed: {last}", hint="run with -v to see its output")
    try:
        data = json.loads(lines[-1])
    except ValueError as exc:
        raise RemoteError(f"{where}: the device runner printed something that is not its JSON result",
                          hint="run with -v to see its output") from exc
    if not isinstance(data, dict):
        raise RemoteError(f"{where}: the device runner printed something that is not its JSON result")
    if "error" in data:
        if data.get("traceback"):
            log.info("the device runner's traceback:\n%s", data["traceback"].rstrip())
        raise RemoteError(f"{where}: {data['error']}", hint=data.get("hint") or "")
    return data


__all__ = ["DATA_LAYOUT_FULL", "DEFAULT_DATA", "JOB_FILE", "RUNNER", "doctor_script", "input_key", "read_result",
           "write_job"]
