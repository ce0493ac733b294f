"""A real OpenSSH server on 127.0.0.1 with throwaway host and user keys, for the remote-bench tests."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def sshd_binary() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if os.path.exists(p)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackBoard:
    """sshd on 127.0.0.1:port; ``config`` is an ssh client config with the user key and known_hosts."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.user = getpass.getuser()
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run(keygen + ["-f", str(root / "host_key")], check=True)
        subprocess.run(keygen + ["-f", str(root / "user_key")], check=True)
        subprocess.run(keygen + ["-f", str(root / "other_key")], check=True)
        (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
        os.chmod(root / "authorized_keys", 0o600)
        host_pub = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n"
            f"PermitRootLogin prohibit-password\nAllowUsers {self.user}\nLogLevel ERROR\n")
        self.config = root / "ssh_config"
        self.config.write_text(
            f"Host 127.0.0.1\n  User {self.user}\n  IdentityFile {root / 'user_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {root / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            f"  GlobalKnownHostsFile /dev/null\n")
        os.makedirs("/run/sshd", exist_ok=True) if os.geteuid() == 0 else None
        self.proc = subprocess.Popen([sshd_binary(), "-D", "-e", "-f", str(root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "w"))
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("sshd did not start: " + (root / "sshd.log").read_text())
        # "board" Pythons: the full one (numpy + LiteRT + ONNX Runtime), and one with numpy only
        self.python = sys.executable
        lib = root / "numpy_only"
        lib.mkdir()
        import numpy

        site = Path(numpy.__file__).parent.parent
        for name in ("numpy", "numpy.libs"):
            if (site / name).exists():
                (lib / name).symlink_to(site / name)
        self.bare_python = root / "python-numpy-only"
        self.bare_python.write_text(f"#!/bin/sh\nPYTHONPATH={lib} exec {sys.executable} -S \"$@\"\n")
        self.bare_python.chmod(0o755)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
