"""Keep TensorFlow's and LiteRT's native log lines off the user's terminal.

Native libraries write to file descriptor 2 directly, so ``sys.stderr`` redirection is not enough: we
point fd 2 at a temporary file for the duration of a block and hand the captured text back to the caller,
who can show it when the block failed (so nothing useful is lost).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Capture everything written to fd 2 inside the block; the text is appended to the yielded list."""
    box: list[str] = []
    if os.environ.get("EDGEML_NATIVE_LOGS"):
        yield box
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to silence
        yield box
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", errors="replace"))
