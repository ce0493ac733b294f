"""Keep TensorFlow's and LiteRT's native log lines off the user's terminal.

Native libraries write to file descriptor 2 directly, so ``sys.stderr`` redirection is not enough: we
point fd 2 at a temporary file for the duration of a block and hand the captured text back to the caller,
who can show it when the block failed (so nothing useful is lost).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_captured(fds: tuple[int, ...] = (2,)) -> Iterator[list[str]]:
    """Capture everything written to ``fds`` inside the block; the text is appended to the yielded list."""
    box: list[str] = []
    if os.environ.get("EDGEML_NATIVE_LOGS"):
        yield box
        return
    streams = {1: sys.stdout, 2: sys.stderr}
    saved: dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryFile())
        for fd in fds:
            streams[fd].flush()
            try:
                saved[fd] = os.dup(fd)
            except OSError:  # no such fd (embedded interpreters): nothing to silence
                continue
            os.dup2(tmp.fileno(), fd)
        # Python-level writers (print) go through sys.stdout/sys.stderr objects, which pytest or click
        # may have replaced: redirect those too.
        py_out = io.StringIO()
        if 1 in fds:
            stack.enter_context(contextlib.redirect_stdout(py_out))
        if 2 in fds:
            stack.enter_context(contextlib.redirect_stderr(py_out))
        try:
            yield box
        finally:
            for fd, dup in saved.items():
                streams[fd].flush()
                os.dup2(dup, fd)
                os.close(dup)
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", errors="replace") + py_out.getvalue())


def all_output_captured() -> contextlib.AbstractContextManager[list[str]]:
    """Capture fds 1 and 2: for third-party tools that print progress to stdout (onnxsim, tf2onnx)."""
    return native_stderr_captured((1, 2))
