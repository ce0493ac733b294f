"""An emulated Raspberry Pi software stack as a board (issue 23 item 3): Debian bookworm arm64, Python 3.11,
numpy 1.24 and the aarch64 ai-edge-litert wheel under qemu-aarch64-static, reached over a loopback sshd.

Built once by ``tests/pi_board/build.sh`` (``make board-test`` builds it and runs this file); skipped until it
is built. Latency there is the emulator's: it is labelled emulated and never checked against a Pi budget."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeml.cli import cli

CACHE = Path(os.environ.get("EDGEML_PI_CACHE", Path.home() / ".cache" / "edgeml-pi-board"))
PI_PYTHON = CACHE / "python"
TEST = "builtin:digits?split=test&samples=60"

pytestmark = pytest.mark.skipif(not (CACHE / ".built").is_file() or not PI_PYTHON.is_file(),
                                reason=f"emulated Pi not built at {CACHE} (make board-test builds it)")


@pytest.fixture(scope="module")
def int8_digits(tmp_path_factory, digits_keras):
    from edgeml.quantize import quantize

    out = tmp_path_factory.mktemp("pi") / "digits_int8.tflite"
    quantize(digits_keras, calib="builtin:digits?split=train", out=out, calib_samples=100, debug_samples=1)
    return out


def test_doctor_on_the_emulated_pi_finds_arm64_numpy_and_litert(board):
    res = CliRunner().invoke(cli, ["doctor", "--host", board.host, "--ssh-config", str(board.config),
                                   "--remote-python", str(PI_PYTHON), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["environment"]["arch"] == "aarch64" and d["environment"]["emulated"]
    assert d["modules"]["numpy"] and d["modules"]["ai_edge_litert"] and not d["modules"]["onnxruntime"]


def test_int8_model_on_the_emulated_pi_matches_x86_accuracy_and_is_labelled_emulated(board, int8_digits, tmp_path):
    from edgeml.bench.harness import bench

    local = bench([int8_digits], runs=3, data=TEST, threads=1).to_dict()
    inv = tmp_path / "fleet.toml"
    inv.write_text(f'[[board]]\nname = "pi-emu"\nhost = "{board.host}"\ntarget = "rpi4"\n'
                   f'ssh_config = "{board.config}"\npython = "{PI_PYTHON}"\n')
    out = tmp_path / "results"
    res = CliRunner().invoke(cli, ["bench", str(int8_digits), "--fleet", str(inv), "--results", str(out), "--runs", "3",
                                   "--threads", "1", "--data", TEST])
    assert res.exit_code == 0, res.output
    assert "EMULATED" in res.output
    rec = json.loads((out / "pi-emu.json").read_text())
    assert rec["kind"] == "emulated" and rec["environment"]["arch"] == "aarch64"
    m = rec["models"][0]
    assert m["runtime"] == "ai_edge_litert" and m["accuracy"] == local["models"][0]["accuracy"]
    budget = tmp_path / "b.toml"
    budget.write_text(f'[[budget]]\nmodel = "{int8_digits}"\ntarget = "rpi4"\nmax_latency_ms = 1000\n')
    chk = CliRunner().invoke(cli, ["check", "--budget", str(budget), "--results", str(out)])
    assert chk.exit_code == 3 and "emulated" in chk.output  # an emulator's latency is never a Pi's
