"""Fleet (issue 23): inventories, and a fleet of two loopback boards (real sshd on 127.0.0.1, two ports), one of
which drops its connection mid-run like a rebooting board; an unreachable third board; resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import helpers
from edgeml.cli import cli
from edgeml.errors import EdgeMLError, InventoryError
from edgeml.fleet import bench_fleet, load_inventory


def _write(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- inventories ------------------------------------------------------------------------------------------
def test_inventory_toml_reads_boards_defaults_and_options(tmp_path):
    f = load_inventory(_write(tmp_path, '[defaults]\npython = "/usr/bin/python3"\n\n[[board]]\nname = "pi-1"\n'
                                       'host = "pi@10.0.0.2:2222"\ntarget = "rpi4"\nconcurrency = 2\n'
                                       'ssh_options = ["ServerAliveInterval=5"]\n\n[[board]]\nhost = "jet"\n'
                                       'target = "jetson-orin-nano"\n'))
    a, b = f.boards
    assert (a.name, a.target, a.concurrency, a.python) == ("pi-1", "rpi4", 2, "/usr/bin/python3")
    t = a.ssh_target()
    assert (t.user, t.host, t.port) == ("pi", "10.0.0.2", 2222)
    assert t.ssh_args()[-4:] == ["-o", "ServerAliveInterval=5", "--", "10.0.0.2"] and "BatchMode=yes" in t.ssh_args()
    assert b.name == "jet" and f.select(targets=["rpi4"]).boards == [a]
    f = load_inventory(_write(tmp_path, '[[board]]\nhost = "a"\ntarget = "rpi4"\nidentity = "keys/pi"\n'))
    assert f.boards[0].identity == str(tmp_path / "keys" / "pi")  # relative to the inventory


@pytest.mark.parametrize("text, line, what", [
    ('[[board]]\nhost = "a"\ntarget = "rpi4"\n\n[[board]]\nname = "b"\nhost = "b"\n', 5, "has no target"),
    ('[[board]]\nhost = "a"\ntarget = "rpi4"\n\n[[board]]\nhost = "b"\ntarget = "rpi9"\n', 5, "unknown target profile"),
    ('[[board]]\nhost = "a"\ntarget = "rpi4"\nconcurency = 2\n', 4, "unknown key 'concurency'"),
    ('[[board]]\nhost = "a"\ntarget = "rpi4"\nport = 0\n', 4, "port = 0"),
    ('[[board]]\nhost = "a"\ntarget = "rpi4"\nssh_options = ["StrictHostKeyChecking=no"]\n', 4, "not allowed"),
    ('[[board]]\nhost = "a"\ntarget = "rpi4"\n[[board]]\nhost = "a"\ntarget = "rpi5"\n', 4, "already used"),
    ('[[board]]\nhost = "a"\ntarget = rpi4\n', 3, "not valid TOML"),
    ('[[board]]\nname = ".."\nhost = "a"\ntarget = "rpi4"\n', 2, "board name '..'"),
])
def test_inventory_errors_name_the_line(tmp_path, text, line, what):
    p = _write(tmp_path, text)
    with pytest.raises(InventoryError, match=what) as err:
        load_inventory(p)
    assert f"{p}:{line}" in err.value.message or f"line {line}" in err.value.message
    assert err.value.exit_code == 2


def test_inventory_ansible_ini_with_group_vars_and_children(tmp_path):
    p = _write(tmp_path, "# boards\n[pis]\npi-1 ansible_host=10.0.0.2 ansible_user=pi\npi-2 ansible_host=10.0.0.3 "
                         "ansible_port=2222 edgeml_concurrency=2\n\n[corals]\ncoral-1 edgeml_target=coral-usb\n\n"
                         "[pis:vars]\nedgeml_target=rpi4\nansible_python_interpreter=/usr/bin/python3\n\n"
                         "[lab:children]\npis\ncorals\n\n[lab:vars]\nansible_connection=ssh\n", "hosts")
    f = load_inventory(p)
    assert [(b.name, b.target, b.python) for b in f.boards] == [("pi-1", "rpi4", "/usr/bin/python3"),
                                                                ("pi-2", "rpi4", "/usr/bin/python3"),
                                                                ("coral-1", "coral-usb", "python3")]
    assert f.boards[1].ssh_target().port == 2222 and f.boards[1].concurrency == 2
    assert f.boards[0].ssh_target().label == "pi@10.0.0.2"
    p.write_text("[pis]\npi-1 edgeml_target=rpi4 ansible_python_interpreter=auto_silent\n")
    assert load_inventory(p).boards[0].python == "python3"  # Ansible's interpreter discovery: plain python3


def test_inventory_ini_board_without_target_names_its_line(tmp_path):
    p = _write(tmp_path, "[pis]\npi-1 ansible_host=10.0.0.2\n", "hosts")
    with pytest.raises(InventoryError, match=rf"{p}:2: board pi-1 has no edgeml_target"):
        load_inventory(p)


def test_model_a_board_target_cannot_run_is_refused_before_any_connection(tmp_path):
    model = helpers.onnx_cnn(tmp_path / "m.onnx")
    inv = _write(tmp_path, '[[board]]\nname = "coral"\nhost = "127.0.0.1:1"\ntarget = "coral-usb"\n')
    with pytest.raises(EdgeMLError, match=r"board coral \(coral-usb.*does not run onnx"):
        bench_fleet([model], load_inventory(inv), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- two loopback boards ----------------------------------------------------------------------------------
REBOOT = """#!/bin/sh
# a board Python that "reboots" (drops the whole ssh connection) on its Nth benchmark job, once
case "$*" in *device_runner.py*)
  n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}
  if [ "$n" = "{nth}" ]; then
    p=$$
    while [ "$p" -gt 1 ]; do
      case "$(cat /proc/$p/comm)" in sshd*) kill -9 "$p"; sleep 5; exit 1;; esac
      p=$(cut -d' ' -f4 /proc/$p/stat)
    done
  fi;;
esac
exec {python} "$@"
"""


@pytest.fixture(scope="module")
def two_boards(board, tmp_path_factory):
    import sshd

    root = tmp_path_factory.mktemp("fleet")
    other = sshd.LoopbackBoard(root)
    models = [helpers.onnx_cnn(root / f"m{k}.onnx", seed=k) for k in range(3)]
    rng = np.random.default_rng(0)
    data = root / "d.npz"
    np.savez(data, image=rng.random((24, 1, 8, 8), dtype=np.float32), labels=rng.integers(0, 10, 24))
    yield board, other, models, data, root
    other.stop()


def _inventory(path: Path, boards: list[tuple[str, object, str]], concurrency: dict[str, int] | None = None) -> Path:
    text = ""
    for name, b, python in boards:
        text += (f'[[board]]\nname = "{name}"\nhost = "{b.host}"\ntarget = "host"\nssh_config = "{b.config}"\n'
                 f'python = "{python}"\nconnect_timeout = 5\nconcurrency = {(concurrency or {}).get(name, 1)}\n\n')
    path.write_text(text)
    return path


def test_fleet_survives_a_reboot_and_an_unreachable_board_then_resumes_only_what_is_missing(two_boards, tmp_path):
    import subprocess
    import threading
    import time

    import sshd

    a, b, models, data, _ = two_boards
    count = tmp_path / "b.count"
    rebooting = tmp_path / "rebooting-python"  # board b goes down whole (sshd too) and is back 3 s later
    rebooting.write_text(REBOOT.format(count=count, nth=2, python=sys.executable).replace(
        'kill -9 "$p"', f'kill -9 {b.proc.pid} "$p"'))
    rebooting.chmod(0o755)
    down = b.proc

    def power_back() -> None:
        down.wait()
        time.sleep(3)
        b.proc = subprocess.Popen([sshd.sshd_binary(), "-D", "-e", "-f", str(b.root / "sshd_config")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    booting = threading.Thread(target=power_back, daemon=True)
    booting.start()

    class Closed:  # a board nobody answers for
        host, config = f"127.0.0.1:{sshd.free_port()}", a.config

    boards = [("a", a, a.python), ("b", b, str(rebooting)), ("gone", Closed, "python3")]
    inv = _inventory(tmp_path / "fleet.toml", boards, concurrency={"a": 2})  # a: 2 jobs at once on one connection
    out = tmp_path / "results"
    args = ["bench", *map(str, models), "--fleet", str(inv), "--results", str(out), "--runs", "3", "--data", str(data)]
    res = CliRunner().invoke(cli, args)
    booting.join(30)
    assert b.proc is not down and "[b] connection lost: waiting for b to come back" in res.output
    assert "[b] back" in res.output
    assert res.exit_code == 3, res.output
    assert "2 of 9 fleet measurement(s) missing" in res.output or "3 of 9" in res.output, res.output
    assert "re-run the same command" in res.output
    d = json.loads((out / "fleet.json").read_text())
    status = {x["name"]: x["status"] for x in d["boards"]}
    assert status == {"a": "ok", "b": "ok", "gone": "failed"}  # b came back after its "reboot"
    assert count.read_text().strip() == "4"  # 3 jobs + the one that dropped the connection, retried once
    gone = [f for f in d["failures"] if f["board"] == "gone"]
    assert gone and gone[0]["kind"] == "unreachable" and gone[0]["attempts"] == 2  # retried once
    assert {r["board"] for r in d["records"]} == {"a", "b"} and d["by_target"] == {"host": ["a", "b"]}
    for r in d["records"]:
        assert r["schema"] == "edgeml.bench/1" and [m["name"] for m in r["models"]] == ["m0.onnx", "m1.onnx", "m2.onnx"]
        assert json.loads((out / f"{r['board']}.json").read_text())["board"] == r["board"]
    # results identical to single-board runs: same accuracy, model by model
    from edgeml.bench.harness import bench

    single = bench(models, host=load_inventory(inv).boards[0].ssh_target(), runs=3, data=str(data)).to_dict()
    for r in d["records"]:
        assert [m["accuracy"] for m in r["models"]] == [m["accuracy"] for m in single["models"]]
    # the unreachable board is fixed: the re-run measures its 3 jobs only
    _inventory(inv, [("a", a, a.python), ("b", b, str(rebooting)), ("gone", a, a.python)], concurrency={"a": 2})
    res = CliRunner().invoke(cli, args + ["--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["jobs"] == {"total": 9, "resumed": 6, "ran": 3, "failed": 0} and d["complete"]
    assert count.read_text().strip() == "4"  # board b was not measured again
    # report and check read the fleet results (budgets per target, one item per board)
    rep = CliRunner().invoke(cli, ["report", str(out), "--json"])
    assert rep.exit_code == 0, rep.output
    assert any("host (a)" in t for t in json.loads(rep.stdout)["targets"])
    budget = tmp_path / "budgets.toml"
    budget.write_text(f'[[budget]]\nmodel = "{models[0]}"\ntarget = "host"\nmax_latency_ms = 10000\n')
    chk = CliRunner().invoke(cli, ["check", "--budget", str(budget), "--results", str(out), "--json"])
    assert chk.exit_code == 0, chk.output
    items = json.loads(chk.stdout)["items"]
    assert sorted(i["budget"].split(", ")[-1].rstrip(")") for i in items) == ["a", "b", "gone"]
    budget.write_text(f'[[budget]]\nmodel = "{models[0]}"\ntarget = "host"\nmax_latency_ms = 0.000001\n')
    assert CliRunner().invoke(cli, ["check", "--budget", str(budget), "--results", str(out)]).exit_code == 1


def test_board_without_the_runtime_is_refused_before_any_measurement(two_boards, tmp_path):
    a, b, models, _, _ = two_boards
    inv = _inventory(tmp_path / "fleet.toml", [("a", a, a.python), ("bare", b, str(b.bare_python))])
    with pytest.raises(EdgeMLError, match=r"bare .* lacks a onnx runtime \(pip3 install onnxruntime\)") as err:
        bench_fleet(models[:1], load_inventory(inv), out_dir=tmp_path / "out", runs=2)
    assert "nothing was measured" in err.value.hint
    assert not list((tmp_path / "out").rglob("*.json"))


def test_doctor_fleet_checks_every_board(two_boards, tmp_path):
    import sshd

    a, b, *_ = two_boards

    class Closed:
        host, config = f"127.0.0.1:{sshd.free_port()}", a.config

    inv = _inventory(tmp_path / "fleet.toml", [("a", a, a.python), ("b", b, str(b.bare_python)), ("gone", Closed, "x")])
    res = CliRunner().invoke(cli, ["doctor", "--fleet", str(inv), "--json"])
    assert res.exit_code == 1, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)["boards"]}
    assert rows["a"]["ok"] and set(rows["a"]["formats"]) == {"tflite", "onnx"}
    assert not rows["b"]["ok"] and "no runtime" in rows["b"]["problems"][0]
    assert rows["gone"]["problems"] == ["unreachable"] and "reachable" in rows["gone"]["hint"]


def test_interrupted_fleet_run_stops_the_runners_and_cleans_the_boards(two_boards, tmp_path):
    import os
    import signal
    import subprocess
    import time

    a, _, models, _, _ = two_boards
    pid_file = tmp_path / "hang.pid"
    hang = tmp_path / "hanging-python"
    hang.write_text(f'#!/bin/sh\ncase "$*" in *device_runner.py*) echo $$ > {pid_file}; exec {sys.executable} -c '
                    f'"import time; time.sleep(600)";; esac\nexec {sys.executable} "$@"\n')
    hang.chmod(0o755)
    inv = _inventory(tmp_path / "fleet.toml", [("a", a, str(hang))])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "edgeml", "bench", str(models[0]), "--fleet", str(inv), "--results",
                             str(tmp_path / "out"), "--runs", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not pid_file.is_file() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        assert pid_file.is_file(), proc.stderr.read() if proc.poll() is not None else "the runner never started"
        time.sleep(0.5)
        pid = int(pid_file.read_text())
        folder = next(p for p in Path("/tmp").glob("edgeml-run.*") if (p / "pid").is_file() and
                      (p / "pid").read_text().strip() == str(pid))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()

    assert helpers.process_gone(pid) and not folder.exists()


def test_faults_are_classified_retryable_or_not():
    from edgeml.errors import RemoteTimeout
    from edgeml.fleet.jobs import classify as _classify
    from edgeml.fleet.jobs import fault_message as _message
    from edgeml.targets.remote import RemoteError, SSHConnectionError

    assert _classify(RemoteTimeout("x")) == "timeout"
    assert _classify(SSHConnectionError("ssh pi failed: ssh: connect to host pi port 22: Connection refused")) == \
        "unreachable"
    dropped = SSHConnectionError("ssh pi failed: no message")
    assert _classify(dropped) == "connection lost" and "rebooted" in _message(dropped, "connection lost", "pi")
    assert _classify(RemoteError("pi: the device runner failed: bad model")) is None  # retrying cannot help


def test_board_that_does_not_come_back_after_a_dropped_connection_is_reported(two_boards, tmp_path):
    import sshd

    _, _, models, _, _ = two_boards
    (tmp_path / "c").mkdir()
    c = sshd.LoopbackBoard(tmp_path / "c")
    try:
        dying = tmp_path / "dying-python"  # the board goes down for good on its first job
        dying.write_text(REBOOT.format(count=tmp_path / "n", nth=1, python=sys.executable).replace(
            'kill -9 "$p"', f'kill -9 {c.proc.pid} "$p"'))
        dying.chmod(0o755)
        inv = _inventory(tmp_path / "fleet.toml", [("c", c, str(dying))])
        r = bench_fleet(models[:2], load_inventory(inv), runs=2, retry_delay=0.5, reconnect_wait=2,
                        out_dir=tmp_path / "out")
    finally:
        if c.proc.poll() is None:
            c.stop()
    assert not r.records and [f.model for f in r.failures] == ["m0.onnx", "m1.onnx"]
    assert {f.kind for f in r.failures} == {"connection lost"}
    assert all("did not come back within 2 s" in f.error for f in r.failures)
