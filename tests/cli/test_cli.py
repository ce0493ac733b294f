"""The CLI shell: help, version, lazy TensorFlow, error rendering and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeml.cli import cli

PROBE = """
import sys
from pathlib import Path
from edgeml.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="edgeml")
except SystemExit as e:
    code = e.code
print("TF_IMPORTED" if "tensorflow" in sys.modules else "TF_NOT_IMPORTED", file=sys.stderr)
"""


def run_probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands_without_importing_tensorflow():
    proc = run_probe("--help")
    assert "inspect" in proc.stdout and "demo" in proc.stdout
    assert "TF_NOT_IMPORTED" in proc.stderr


@pytest.mark.parametrize("fixture", ["tiny_tflite", "tiny_onnx"])
def test_inspect_tflite_and_onnx_do_not_import_tensorflow(fixture, request):
    path = request.getfixturevalue(fixture)
    proc = run_probe("inspect", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["macs"] == 2736
    assert "TF_NOT_IMPORTED" in proc.stderr


def test_version_prints_package_version():
    from edgeml import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "edgeml", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_unknown_option_is_usage_error_exit_2(tiny_onnx):
    result = CliRunner().invoke(cli, ["inspect", str(tiny_onnx), "--bogus"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_unexpected_exception_exits_4_with_debug_hint(monkeypatch, tiny_onnx):
    import edgeml.artifact

    def boom(path):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(edgeml.artifact, "inspect_model", boom)
    result = CliRunner().invoke(cli, ["inspect", str(tiny_onnx)])
    assert result.exit_code == 4
    assert "error: unexpected RuntimeError: kaboom" in result.output
    assert "--debug" in result.output
    assert "Traceback" not in result.output


def test_debug_flag_shows_traceback_for_known_errors(tmp_path):
    missing = tmp_path / "nope.tflite"
    proc = subprocess.run([sys.executable, "-m", "edgeml", "--debug", "inspect", str(missing)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr
    assert f"error: {missing}: no such file or directory" in proc.stderr


def test_json_goes_to_stdout_and_is_strict_json(tiny_onnx):
    proc = subprocess.run([sys.executable, "-m", "edgeml", "inspect", str(tiny_onnx), "--json"],
                          capture_output=True, text=True, timeout=60)
    data = json.loads(proc.stdout)  # nothing but JSON on stdout
    assert data["schema"] == "edgeml.inspect/1"


def test_global_flags_after_the_subcommand_are_hoisted():
    from edgeml.cli import hoist_global_flags

    assert hoist_global_flags(["inspect", "m.onnx", "--debug"]) == ["--debug", "inspect", "m.onnx"]
    assert hoist_global_flags(["-q", "data", "inspect", "d.npz", "-vv"]) == ["-q", "-vv", "data", "inspect", "d.npz"]
    assert hoist_global_flags(["bench", "m.onnx", "--", "--debug"]) == ["bench", "m.onnx", "--", "--debug"]
    assert hoist_global_flags(["--help"]) == ["--help"]


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    missing = tmp_path / "missing.onnx"
    proc = subprocess.run([sys.executable, "-m", "edgeml", "inspect", str(missing), "--debug"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr and "error: " in proc.stderr


def test_version_lists_the_runtimes_without_importing_tensorflow():
    proc = run_probe("--version")
    assert proc.returncode == 0, proc.stderr
    assert "edgeml-toolchain" in proc.stdout and "onnxruntime" in proc.stdout and "numpy" in proc.stdout
    assert "TF_NOT_IMPORTED" in proc.stderr


def test_outputs_follow_the_umask_not_0600(tmp_path):
    from edgeml._io import write_bytes_atomic

    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "out.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o644


def test_install_hints_name_the_distribution_on_the_index():
    """'edgeml' on the package index is another project: hints must say edgeml-toolchain."""
    root = Path(__file__).resolve().parents[2] / "edgeml"
    offenders = [str(p) for p in root.rglob("*.py") if "'edgeml[" in p.read_text()]
    assert not offenders
