"""One multiplexed OpenSSH connection per board (ControlMaster), shared by every job on that board.

The master is started explicitly (``-N -f``, BatchMode, the user's host-key checking) so that an unreachable
board fails fast with ssh's own message; jobs then use ``ControlMaster=no`` with the same ControlPath: when the
master is gone (the board rebooted), ssh falls back to a fresh connection, and :meth:`ensure` restarts it.
The socket lives in a private ``mkdtemp`` folder; the master is closed at the end (``-O exit``) and, should
edgeml be killed outright, exits by itself after 5 idle minutes (ControlPersist=300).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from edgeml.fleet.inventory import Board


class Connection:
    def __init__(self, board: Board, sockets: Path, index: int):
        self.board = board
        self.path = str(sockets / str(index))  # short: a unix socket path is at most ~104 bytes
        self.lock = threading.Lock()

    def target(self) -> Any:
        """An SSHTarget whose calls go through this board's master connection (when it is up)."""
        return self.board.ssh_target(["-o", f"ControlPath={self.path}", "-o", "ControlMaster=no"])

    def _ctl(self, op: str) -> int:
        t = self.board.ssh_target(["-o", f"ControlPath={self.path}", "-O", op])
        return subprocess.run(t.ssh_args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, check=False).returncode

    def alive(self) -> bool:
        return Path(self.path).exists() and self._ctl("check") == 0

    def ensure(self) -> None:
        """Start the master connection unless it is up; raises SSHConnectionError with ssh's message."""
        from edgeml.targets.remote import ssh_failure

        with self.lock:
            if self.alive():
                return
            t = self.board.ssh_target(["-o", f"ControlPath={self.path}", "-o", "ControlMaster=yes",
                                       "-o", "ControlPersist=300", "-N", "-f"])
            with tempfile.TemporaryFile() as err:  # the backgrounded master keeps its stderr: never a pipe
                try:
                    code = subprocess.run(t.ssh_args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=err, timeout=t.connect_timeout + 30, check=False).returncode
                except subprocess.TimeoutExpired:
                    code, text = 255, f"ssh: connect to host {t.host}: Connection timed out"
                else:
                    err.seek(0)
                    text = err.read().decode("utf-8", "replace")
            if code != 0:
                raise ssh_failure(t, text)

    def close(self) -> None:
        try:
            if Path(self.path).exists():
                self._ctl("exit")
        except (OSError, subprocess.SubprocessError):
            pass
