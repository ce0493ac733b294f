"""The README's CLI tour runs verbatim: every `$ edgeml ...` line, in order, in the folder `make demo` made.

A command whose shown output starts with `error:` must fail with that first line; every other command must
exit 0. Board commands (which need a real board) are written without the `$ ` prompt and are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)


def readme_commands(text: str) -> list[tuple[str, str | None]]:
    """(command, expected first error line or None) for each `$ edgeml` line of the README's code blocks."""
    found = []
    for block in FENCE.findall(text):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.startswith("$ edgeml"):
                continue
            cmd = line[2:]
            while cmd.endswith("\\") and i < len(lines):
                cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
                i += 1
            shown = next((ln for ln in lines[i:] if ln.strip()), "")
            found.append((cmd, shown.strip() if shown.startswith("error:") else None))
    return found


def test_readme_commands_parse_continuations_and_expected_errors():
    text = "```\n$ edgeml a --x 1 \\\n    --y 2\nok\n$ edgeml b\nerror: b: no\nhint: h\n```\n```\npi@x$ edgeml c\n```\n"
    assert readme_commands(text) == [("edgeml a --x 1 --y 2", None), ("edgeml b", "error: b: no")]


def test_readme_tour_runs_verbatim_after_make_demo(tmp_path):
    commands = readme_commands(README.read_text())
    assert commands and commands[0][0] == "edgeml demo -o edgeml-demo", "the tour starts with make demo's command"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("EDGEML_DEBUG", None)
    cwd = tmp_path
    for cmd, error in commands:
        proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if error is None:
            assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stderr[-2000:]}"
        else:
            assert proc.returncode != 0, f"README command should fail: {cmd}"
            first = next(ln for ln in proc.stderr.splitlines() if ln.startswith("error:"))
            assert first == error, f"{cmd}: README shows {error!r}, edgeml says {first!r}"
        if cmd == "edgeml demo -o edgeml-demo":
            cwd = tmp_path / "edgeml-demo"  # the README: "cd edgeml-demo" once, after make demo


def readme_python_sessions(text: str) -> list[str]:
    """The README's ```python blocks written as interactive sessions (`>>>`), to run as doctests."""
    return [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M) if ">>> " in m.group(1)]


def test_readme_python_session_runs_as_shown_after_the_tour(tmp_path):
    sessions = readme_python_sessions(README.read_text())
    assert sessions, "the README shows a Python API session"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run([sys.executable, "-m", "edgeml", "demo", "-o", "edgeml-demo"], cwd=tmp_path, env=env,
                   capture_output=True, text=True, timeout=900, check=True)
    for i, session in enumerate(sessions):
        doc = tmp_path / f"session_{i}.txt"
        doc.write_text(session)
        proc = subprocess.run([sys.executable, "-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE",
                               str(doc)], cwd=tmp_path / "edgeml-demo", env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, f"README Python session {i} differs from what edgeml does:\n{proc.stdout[-3000:]}"
