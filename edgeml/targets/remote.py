"""Run the device runner on a board over the system OpenSSH client.

Every ssh call is an argument list with ``BatchMode=yes`` (never a password prompt) and the user's own
``~/.ssh/config`` and known_hosts (host-key checking is never switched off). Files travel as one tar
stream on ssh's stdin; the remote folder is made with ``mktemp -d`` and removed afterwards. Remote
command words are shell-quoted, because sshd hands them to the user's shell.
"""

from __future__ import annotations

import io
import logging
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError, RemoteError, RemoteTimeout, SSHConnectionError
from edgeml.targets.protocol import JOB_DIR, RUNNER, RUNNER_FILE, doctor_script, read_result

log = logging.getLogger("edgeml")


@dataclass
class SSHTarget:
    """``[USER@]HOST[:PORT]`` (HOST may be an alias from ~/.ssh/config) plus client options."""

    host: str
    user: str | None = None
    port: int | None = None
    config: str | None = None
    identity: str | None = None
    python: str = "python3"
    connect_timeout: int = 10
    extra: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> SSHTarget:
        m = re.fullmatch(r"(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?", text.strip())
        if not m or text.startswith("-"):
            raise EdgeMLError(f"`host` {text}: expected [USER@]HOST[:PORT]", hint="e.g. `host=\"pi@192.168.1.20:22\"`")
        user, host, port = m.groups()
        return cls(host=host.strip("[]"), user=user, port=int(port) if port else None, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}{':' + str(self.port) if self.port else ''}"

    def ssh_args(self) -> list[str]:
        ssh = shutil.which("ssh")
        if ssh is None:
            raise RemoteError("the OpenSSH client (ssh) is not installed here",
                              hint="install openssh-client (apt install openssh-client)")
        args = [ssh, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.config:
            args += ["-F", self.config]
        if self.identity:
            args += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.port:
            args += ["-p", str(self.port)]
        if self.user:
            args += ["-l", self.user]
        return args + list(self.extra) + ["--", self.host]


def ssh_hint(target: SSHTarget) -> str:
    """A plain ssh command for the user to try, every word shell-quoted (a host is never pasted raw)."""
    words = ["ssh"] + (["-F", target.config] if target.config else [])
    words += ["-p", str(target.port)] if target.port else []
    words.append(f"{target.user}@{target.host}" if target.user else target.host)
    if not re.fullmatch(r"[A-Za-z0-9_.:%\[\]-]+", target.host) or (target.user and not re.fullmatch(r"[A-Za-z0-9_.-]+",
                                                                                                   target.user)):
        return "the host name has characters a host name cannot have; check `host`"
    return shlex.join(words)


def ssh_failure(target: SSHTarget, stderr: str) -> SSHConnectionError:
    text = " ".join(stderr.split())
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    cmd = ssh_hint(target)
    try_it = f"'{cmd}'" if cmd.startswith("ssh") else None
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        hint = ("the board's host key is unknown or changed; " +
                (f"connect once with {try_it} and check it" if try_it else cmd))
    elif "Permission denied" in text:
        hint = "the board refused the key: add your public key to its ~/.ssh/authorized_keys (ssh-copy-id), " \
               "or pass `SSHTarget.identity`"
    elif any(s in text for s in ("Connection refused", "timed out", "No route to host", "Could not resolve",
                                 "Name or service not known", "Network is unreachable")):
        hint = "check the board is on, reachable and runs sshd" + (f" (try: {cmd})" if try_it else f"; {cmd}")
    else:
        hint = "try the same with plain ssh to see the full message"
    return SSHConnectionError(f"ssh {target.label} failed: {last}", hint=hint)


def progress_filter(progress: Callable[[str], None] | None, prefix: str) -> Callable[[str], None]:
    """Echo a runner's progress lines; a Python traceback (or runtime log spam) goes to the log (-v) only."""
    state = {"traceback": False}

    def show(line: str) -> None:
        if line.startswith("Traceback (most recent call last)"):
            state["traceback"] = True
        if state["traceback"] or line.startswith(("INFO:", "WARNING:")):
            log.info("%s%s", prefix, line)
        elif progress and line.strip():
            progress(f"{prefix}{line}")

    return show


def run_ssh(target: SSHTarget, words: list[str], *, stdin: bytes | None = None, timeout: float | None = None,
            progress: Callable[[str], None] | None = None) -> tuple[int, str, str]:
    """Run ``words`` on the board (each word shell-quoted); returns (exit code, stdout, stderr).

    ``timeout`` bounds the whole call: past it the ssh process is killed and :class:`RemoteTimeout` raised.
    """
    cmd = target.ssh_args() + [" ".join(shlex.quote(w) for w in words)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err_lines: list[str] = []
    out_chunks: list[bytes] = []
    show = progress_filter(progress, f"  [{target.host}] ")

    def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin or b"")
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def read_err() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:  # stream the runner's progress as it happens
            line = raw.decode("utf-8", "replace").rstrip()
            err_lines.append(line)
            show(line)

    def read_out() -> None:
        assert proc.stdout is not None
        out_chunks.append(proc.stdout.read())

    threads = [threading.Thread(target=f, daemon=True) for f in ((feed,) if stdin is not None else ()) +
               (read_err, read_out)]
    for t in threads:
        t.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RemoteTimeout(f"{target.label}: no answer within {timeout:.0f} s; stopped waiting",
                            hint="the board may be hung or overloaded: check it with plain ssh, or give it longer "
                                 "with `timeout=SECONDS`") from None
    finally:  # timed out or interrupted: the ssh process does not outlive the call
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=5)
    stderr = "\n".join(err_lines)
    if code == 255:
        raise ssh_failure(target, stderr)
    return code, b"".join(out_chunks).decode("utf-8", "replace"), stderr


def _tar(files: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in files.items():
            tar.add(str(path), arcname=name, recursive=True)
    return buf.getvalue()


RUN = f'echo $$ > "$1/pid" && exec "$2" "$1/{RUNNER_FILE}" "$1/{JOB_DIR}"'
CLEANUP = 'if [ -f "$1/pid" ]; then kill "$(cat "$1/pid")" 2>/dev/null; fi; rm -rf "$1"'


def run_job(target: SSHTarget, job_dir: Path, *, progress: Callable[[str], None] | None = None,
            timeout: float | None = None) -> dict[str, Any]:
    """Copy ``job_dir`` and the runner to a fresh remote folder, run, fetch JSON, clean up.

    ``timeout`` bounds the whole job (copy and run). On expiry the ssh process is killed, the remote runner
    and folder are removed (one try) and :class:`RemoteTimeout` is raised.
    """
    say = progress or (lambda msg: None)
    deadline = time.monotonic() + timeout if timeout else None

    def left() -> float | None:
        return max(1.0, deadline - time.monotonic()) if deadline else None

    code, out, err = run_ssh(target, ["mktemp", "-d", "/tmp/edgeml-run.XXXXXX"], timeout=left())
    remote = out.strip()
    if code != 0 or not remote.startswith("/tmp/edgeml-run."):
        raise RemoteError(f"{target.label}: could not make a temporary folder ({err.strip() or out.strip()})",
                          hint="check /tmp is writable on the board")
    try:
        files = {RUNNER_FILE: RUNNER, JOB_DIR: job_dir}
        size = sum(p.stat().st_size for p in job_dir.rglob("*") if p.is_file())
        say(f"copying {size / 1e6:.1f} MB to {target.label}:{remote}")
        code, out, err = run_ssh(target, ["tar", "-x", "-C", remote], stdin=_tar(files), timeout=left())
        if code != 0:
            raise RemoteError(f"{target.label}: copying files failed: {err.strip()}", hint="check free space in /tmp")
        say(f"running on {target.label}")
        code, out, err = run_ssh(target, ["sh", "-c", RUN, "edgeml-run", remote, target.python],
                                 progress=progress, timeout=left())
        return read_result(code, out, err, target.label)
    except RemoteTimeout as exc:
        raise RemoteTimeout(f"{target.label}: the run did not finish within {timeout:.0f} s (`timeout`); stopped it "
                            f"and removed {remote} there", hint=exc.hint) from None
    finally:
        try:
            run_ssh(target, ["sh", "-c", CLEANUP, "edgeml-clean", remote], timeout=target.connect_timeout + 20)
        except EdgeMLError:
            pass


def doctor(target: SSHTarget, *, timeout: float = 120.0) -> dict[str, Any]:
    code, out, err = run_ssh(target, [target.python, "-"], timeout=timeout, stdin=doctor_script())
    return read_result(code, out, err, target.label)

