"""Hardening (issue 17): outputs, inputs, memory ceilings, remote timeouts, runner errors, signals, options."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import helpers
from edgeml._io import atomic_path, check_output, write_bytes_atomic
from edgeml.cli import cli
from edgeml.errors import DataError, EdgeMLError, ModelLoadError, OutputExistsError

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture
def small_npz(tmp_path) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, image=np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32), labels=np.arange(4))
    return path


def _onnx(path: Path, shape, *, in_name="x", out_name="y", op="Relu") -> Path:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node(op, [in_name], [out_name])], "g",
                          [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _external_onnx(folder: Path, name: str = "ext.onnx", seed: int = 0) -> Path:
    """tiny_onnx with its weights in an external 'weights.bin' beside it."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    helpers.onnx_cnn(folder / "inline.onnx", seed=seed)
    model = onnx.load(str(folder / "inline.onnx"))
    onnx.save(model, str(folder / name), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    (folder / "inline.onnx").unlink()
    return folder / name


# -- 1. outputs only replace regular files ------------------------------------------------------------------
def test_check_output_refuses_fifo_folder_and_device_even_with_force(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, kind in ((fifo, "FIFO"), (tmp_path, "folder"), (Path("/dev/null"), "character device")):
        with pytest.raises(OutputExistsError, match=kind):
            check_output(target, force=True)
    assert fifo.is_fifo()


def test_atomic_write_refuses_a_fifo_that_appears_after_the_check(tmp_path):
    out = tmp_path / "r.json"
    check_output(out)
    os.mkfifo(out)  # appeared between the check and the write
    with pytest.raises(OutputExistsError, match="FIFO"):
        write_bytes_atomic(out, b"{}")
    assert out.is_fifo() and not list(tmp_path.glob(".r.json.*.tmp"))
    with pytest.raises(OutputExistsError):
        with atomic_path(tmp_path) as tmp:
            tmp.write_bytes(b"x")
    assert tmp_path.is_dir()


def test_output_replaces_a_regular_file_with_force(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old")
    assert check_output(out, force=True) == out
    write_bytes_atomic(out, b"new")
    assert out.read_text() == "new"


def test_convert_to_an_existing_folder_fails_before_any_work(tiny_onnx, tmp_path):
    res = _run("convert", tiny_onnx, "--to", "onnx", "-o", tmp_path, "--force")
    assert res.exit_code == 3, res.output
    assert "is a folder" in res.output and "verifying" not in res.output and "Traceback" not in res.output
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*.tmp"))


def test_bench_out_to_a_fifo_is_refused_and_the_fifo_kept(tiny_onnx, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    res = _run("bench", tiny_onnx, "--runs", "2", "--out", fifo, "--force")
    assert res.exit_code == 3, res.output
    assert "FIFO" in res.output and "measuring" not in res.output
    assert fifo.is_fifo()


def test_output_folders_that_are_files_are_refused_before_any_work(tmp_path, tiny_onnx, small_npz):
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = _run("demo", "-o", afile)
    assert res.exit_code == 3 and "not a folder" in res.output and afile.read_text() == "x"
    res = _run("optimize", tiny_onnx, "--calib", small_npz, "-o", small_npz)
    assert res.exit_code == 3 and "input" in res.output


# -- 2. no output is an input -------------------------------------------------------------------------------
def test_bench_out_never_overwrites_its_data_even_with_force(tiny_onnx, small_npz):
    before = small_npz.read_bytes()
    res = _run("bench", tiny_onnx, "--data", small_npz, "--out", small_npz, "--force")
    assert res.exit_code == 3, res.output
    assert "input" in res.output and small_npz.read_bytes() == before


def test_outputs_that_are_inputs_by_hard_link_symlink_or_spec_are_refused(tmp_path, small_npz):
    from edgeml._io import check_outputs

    (tmp_path / "hard.npz").hardlink_to(small_npz)
    (tmp_path / "sym.json").symlink_to(small_npz)
    spec = tmp_path / "data.toml"
    spec.write_text('[data]\nsource = "d.npz"\n')
    cases = [(tmp_path / "hard.npz", [str(small_npz)]), (tmp_path / "sym.json", [str(small_npz)]),
             (small_npz, [f"{small_npz}?samples=2"]), (small_npz, [str(spec)]), (spec, [str(spec)])]
    for out, inputs in cases:
        with pytest.raises(OutputExistsError, match="input"):
            check_output(out, inputs=inputs, force=True)
    with pytest.raises(OutputExistsError, match="two different outputs"):
        check_outputs([tmp_path / "a.md", tmp_path / "a.md"], force=True)
    with pytest.raises(OutputExistsError, match="input"):  # inside an input folder (a SavedModel, images)
        check_output(tmp_path / "x.json", inputs=[tmp_path], force=True)


def test_quantize_report_over_its_calibration_data_is_refused(tiny_onnx, small_npz, tmp_path):
    before = small_npz.read_bytes()
    res = _run("quantize", tiny_onnx, "--format", "onnx", "--calib", small_npz, "-o", tmp_path / "q.onnx",
               "--report", small_npz, "--force")
    assert res.exit_code == 3, res.output
    assert "input" in res.output and small_npz.read_bytes() == before and not (tmp_path / "q.onnx").exists()


def test_check_junit_over_the_budget_file_is_refused(tiny_onnx, tmp_path):
    budget = tmp_path / "budget.toml"
    budget.write_text(f'[[budget]]\nmodel = "{tiny_onnx}"\nmax_size = "1MB"\n')
    text = budget.read_text()
    res = _run("check", "--budget", budget, "--junit", budget)
    assert res.exit_code == 3, res.output
    assert budget.read_text() == text


def test_report_output_over_a_result_is_refused(tmp_path):
    result = tmp_path / "r.json"
    result.write_text("{}")
    res = _run("report", result, "-o", result, "--force")
    assert res.exit_code == 3 and "input" in res.output and result.read_text() == "{}"


# -- 3. remote runs have a timeout --------------------------------------------------------------------------
def _hanging_python(tmp_path: Path) -> tuple[Path, Path]:
    """A 'board Python' that records its pid and hangs (a board that accepts the job and never answers)."""
    pidfile = tmp_path / "hang.pid"
    script = tmp_path / "hanging-python"
    where = tmp_path / "hang.where"  # its working folder and arguments: which remote job folder is its own
    script.write_text(f"#!/bin/sh\necho \"$(pwd) $*\" > {where}\necho $$ > {pidfile}\n"
                      f"exec {sys.executable} -c 'import time; time.sleep(600)'\n")
    script.chmod(0o755)
    return script, pidfile


def test_remote_bench_times_out_kills_and_cleans_up(board, tiny_onnx, tmp_path):
    script, pidfile = _hanging_python(tmp_path)
    t0 = time.monotonic()
    res = _run("bench", tiny_onnx, "--host", board.host, "--ssh-config", board.config, "--remote-python", script,
               "--runs", "2", "--timeout", "12")  # long enough for ssh + the copy on a loaded 2-core CI machine
    assert res.exit_code == 3, res.output
    assert time.monotonic() - t0 < 90
    assert "did not finish within 12 s" in res.output and "--timeout" in res.output
    assert "Traceback" not in res.output
    # the job's own remote folder was removed (other runs may be using /tmp/edgeml-run.* at the same time)
    words = (tmp_path / "hang.where").read_text().split()
    folders = {Path(m.group(0)) for w in words for m in [re.search(r"/tmp/edgeml-run\.[^/\s]+", w)] if m}
    assert folders and not any(f.exists() for f in folders), folders
    assert helpers.process_gone(int(pidfile.read_text()))  # and the hung runner stopped


def test_doctor_over_ssh_times_out(board, tmp_path):
    script, pidfile = _hanging_python(tmp_path)
    res = _run("doctor", "--host", board.host, "--ssh-config", board.config, "--remote-python", script,
               "--timeout", "3")
    assert res.exit_code == 3, res.output
    assert "no answer within 3 s" in res.output


def test_remote_bench_default_timeout_is_sized_to_the_run():
    from edgeml.bench.harness import default_timeout

    assert default_timeout(1, 50, 5, 0.0, 16) < default_timeout(2, 5000, 5, 60.0, 1000)
    assert default_timeout(1, 50, 5, 0.0, 16) >= 300


# -- 4. declared shapes are checked against a memory ceiling before allocating --------------------------------
def test_bench_refuses_a_huge_declared_input_naming_it(tmp_path, monkeypatch):
    model = _onnx(tmp_path / "big.onnx", [1, 12000, 12000, 4], op="Identity")
    monkeypatch.setenv("EDGEML_MAX_MEMORY", "1GiB")
    res = _run("bench", model, "--runs", "2")
    assert res.exit_code == 3, res.output
    assert "tensor 'x' [1, 12000, 12000, 4]" in res.output and "EDGEML_MAX_MEMORY" in res.output
    assert "measuring" not in res.output


def test_runner_checks_declared_shapes_itself():
    from edgeml.targets import device_runner

    with pytest.raises(device_runner.RunnerError, match="input 0"):
        device_runner.check_shapes(np, "big.onnx", [([1, 12000, 12000, 4], "float32", None)], 2 ** 30)
    device_runner.check_shapes(np, "ok.onnx", [([1, 3, 224, 224], "float32", None)], 2 ** 30)


def test_data_inspect_refuses_a_huge_resize(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    res = _run("data", "inspect", f"{tmp_path / 'imgs'}?size=40000x40000")
    assert res.exit_code == 3, res.output
    assert "40000x40000" in res.output and "memory ceiling" in res.output


def _npz_declaring(path: Path, shape) -> Path:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue() + b"\0" * 64)
    return path


def test_npz_declaring_trillions_of_floats_is_refused_from_its_header(tmp_path):
    from edgeml.calibration.sources import NpzSource

    path = _npz_declaring(tmp_path / "huge.npz", (6400000, 1000, 1000))
    with pytest.raises(DataError, match=r"array 'x' \[6400000, 1000, 1000\]"):
        NpzSource(path)
    res = _run("data", "inspect", path)
    assert res.exit_code == 3 and "memory ceiling" in res.output


def _external_length(folder: Path, length: int) -> Path:
    import onnx

    model = _external_onnx(folder)
    proto = onnx.load(str(model), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "length":
                e.value = str(length)
    onnx.save(proto, str(model))
    return model


def test_external_data_length_past_the_file_is_a_clean_error(tmp_path):
    model = _external_length(tmp_path / "m", 2 ** 40)
    res = _run("inspect", model)
    assert res.exit_code == 3, res.output
    assert "runs past the end of 'weights.bin'" in res.output
    res = _run("bench", model, "--runs", "2")
    assert res.exit_code == 3, res.output


def test_memory_ceiling_env_is_validated(monkeypatch):
    from edgeml._io import memory_ceiling

    monkeypatch.setenv("EDGEML_MAX_MEMORY", "2GiB")
    assert memory_ceiling() == 2 * 1024 ** 3
    monkeypatch.setenv("EDGEML_MAX_MEMORY", "0.5")
    assert 0 < memory_ceiling()
    monkeypatch.setenv("EDGEML_MAX_MEMORY", "lots")
    with pytest.raises(EdgeMLError, match="EDGEML_MAX_MEMORY"):
        memory_ceiling()


# -- 5. runner failures in one line; non-UTF-8 tensor names ---------------------------------------------------
def test_runner_exception_is_one_line_and_the_traceback_only_with_verbose(tmp_path, monkeypatch):
    from edgeml.targets import device_runner

    job = tmp_path / "job"
    job.mkdir()
    (job / "job.json").write_text(json.dumps({"models": [{"name": "x", "file": "x.onnx", "format": "onnx"}]}))
    (job / "x.onnx").write_bytes(b"")
    monkeypatch.setattr(device_runner, "measure", lambda d: {}["boom"])
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert device_runner.main([str(job)]) == 3
    data = json.loads(out.getvalue())
    assert data["error"] == "the device runner failed: KeyError: 'boom'" and "Traceback" in data["traceback"]


def test_runner_crash_output_is_summarised_not_echoed(tmp_path):
    from edgeml.bench.harness import run_local

    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'loading m' >&2\necho 'Traceback (most recent call last):' >&2\n"
                    "echo '  File \"x.py\", line 1' >&2\necho 'ValueError: bad thing' >&2\nexit 1\n")
    fake.chmod(0o755)
    lines: list[str] = []
    with pytest.raises(EdgeMLError, match="the device runner failed: ValueError: bad thing") as exc:
        run_local(tmp_path, progress=lines.append, python=str(fake))
    assert lines == ["  loading m"] and "\n" not in exc.value.message


def test_reference_with_other_inputs_is_refused_before_running(tiny_onnx, tmp_path):
    other = _onnx(tmp_path / "other.onnx", [1, 3])
    res = _run("bench", tiny_onnx, "--reference", other, "--runs", "2")
    assert res.exit_code == 3, res.output
    assert "do not match" in res.output and "Traceback" not in res.output


def test_tensor_names_that_are_not_utf8_are_refused_cleanly(tmp_path):
    model = _onnx(tmp_path / "ok.onnx", [1, 3], in_name="inpX")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model.read_bytes().replace(b"inpX", b"in\xff\xfe"))
    res = _run("bench", bad, "--runs", "2")
    assert res.exit_code == 3, res.output
    assert "not valid UTF-8" in res.output and "Traceback" not in res.output


def test_onnx_dim_names_that_are_not_utf8_do_not_crash_inspect(tmp_path):
    model = _onnx(tmp_path / "ok.onnx", ["batchX", 3])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model.read_bytes().replace(b"batchX", b"bat\xff\xfeX"))
    res = _run("inspect", bad)
    assert res.exit_code in (0, 3), res.output  # found by tests/fuzz_loaders.py: TypeError (exit 4) before


def test_tflite_tensor_names_that_are_not_utf8_are_named_as_such(tiny_tflite, tmp_path):
    bad = tmp_path / "bad.tflite"
    data = tiny_tflite.read_bytes()
    assert data.count(b"image") >= 1
    bad.write_bytes(data.replace(b"image", b"im\xff\xfeg"))
    res = _run("inspect", bad)
    assert res.exit_code == 3, res.output
    assert "not valid UTF-8" in res.output


# -- 6. bad input is exit 3, not 4 ----------------------------------------------------------------------------
def test_truncated_npz_is_exit_3(tmp_path, small_npz):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(small_npz.read_bytes()[: small_npz.stat().st_size // 2])
    res = _run("data", "inspect", cut)
    assert res.exit_code == 3, res.output
    assert "cannot read .npz" in res.output


def test_report_on_a_result_missing_fields_is_exit_3(tmp_path):
    r = tmp_path / "bench.json"
    r.write_text(json.dumps({"schema": "edgeml.bench/1", "models": [{"name": "m.tflite"}]}))
    res = _run("report", r)
    assert res.exit_code == 3, res.output
    assert "missing field" in res.output and "bug" not in res.output


# -- 7. SIGTERM cleans up like Ctrl-C -------------------------------------------------------------------------
def _start(args: list[str], tmpdir: Path, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "edgeml", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(cond, proc: subprocess.Popen, limit: float = 180.0) -> None:
    end = time.monotonic() + limit
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"finished before the signal: {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("never reached the point to signal")
        time.sleep(0.02)


def test_sigterm_during_bench_leaves_no_job_folder_and_no_runner(tiny_onnx, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = _start(["bench", str(tiny_onnx), "--runs", "100000", "--min-time", "300"], tmpdir, tmp_path)
    _wait_for(lambda: list(tmpdir.glob("edgeml-bench-*/job/job.json")), proc)
    time.sleep(1.0)  # the runner is measuring
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 143, err
    assert "error: terminated" in err and "Traceback" not in err
    assert not [p for p in tmpdir.iterdir() if p.name.startswith("edgeml")]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmpdir) not in ps  # the runner child was stopped too


def test_sigterm_during_convert_leaves_no_hidden_temp_file(tiny_keras, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = _start(["convert", str(tiny_keras), "--to", "onnx", "-o", str(out_dir / "m.onnx")], tmpdir, tmp_path)
    _wait_for(lambda: list(out_dir.glob(".m.onnx.*.tmp")), proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 143, proc.stderr.read()
    assert list(out_dir.iterdir()) == []
    assert not [p for p in tmpdir.iterdir() if p.name.startswith("edgeml")]


# -- 8. ONNX external data travels with the model to the job folder ------------------------------------------
def test_bench_onnx_with_external_data_locally(tmp_path):
    a = _external_onnx(tmp_path / "a", seed=0)
    b = _external_onnx(tmp_path / "b", seed=1)  # same data file name, other weights: no collision
    res = _run("bench", a, b, "--runs", "3", "--data", "builtin:digits?split=test&samples=20&size=8", "--json")
    assert res.exit_code == 0, res.output
    models = json.loads(res.stdout)["models"]
    assert [m["name"] for m in models] == ["ext.onnx", "ext.onnx"] and all(m["latency_ms"]["n"] == 3 for m in models)


def test_size_of_an_onnx_model_includes_its_external_data(tmp_path):
    model = _external_onnx(tmp_path / "a")
    total = model.stat().st_size + (model.parent / "weights.bin").stat().st_size
    res = _run("check", model, "--max-size", str(model.stat().st_size + 1), "--json")
    assert res.exit_code == 1, res.output  # the .onnx alone would fit; with its weights it does not
    assert json.loads(res.stdout)["items"][0]["measured"] == total
    res = _run("bench", model, "--runs", "2", "--json")
    assert json.loads(res.stdout)["models"][0]["size_bytes"] == total


def test_bench_onnx_with_external_data_over_ssh(board, tmp_path):
    model = _external_onnx(tmp_path / "a")
    res = _run("bench", model, "--host", board.host, "--ssh-config", board.config, "--remote-python", board.python,
               "--runs", "2", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["models"][0]["latency_ms"]["n"] == 2


def test_external_data_outside_the_model_folder_is_still_refused(tmp_path):
    import onnx

    model = _external_onnx(tmp_path / "m")
    proto = onnx.load(str(model), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../../etc/passwd"
    onnx.save(proto, str(model))
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        from edgeml.bench.harness import bench

        bench([model], runs=2)


# -- 9. smaller -----------------------------------------------------------------------------------------------
def test_check_refuses_a_file_that_is_not_a_model(tmp_path):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    res = _run("check", text, "--max-size", "1MB")
    assert res.exit_code == 3, res.output
    assert "not a valid ONNX file" in res.output and "max_size" not in res.output


def test_check_with_a_malformed_pyproject_is_an_error_not_no_budgets(tmp_path, tiny_onnx, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("pyproject.toml").write_text(f'[tool.edgeml\n[[tool.edgeml.budget]]\nmodel = "{tiny_onnx}"\n')
    res = _run("check")
    assert res.exit_code == 2 and "not valid TOML" in res.output
    Path("budget.toml").write_text('[[budget]\nmodel = "m.onnx"\n')
    res = _run("check", "--budget", "budget.toml")
    assert res.exit_code == 2 and "not valid TOML" in res.output
    Path("pyproject.toml").write_text(f'[tool]\nedgeml.budget = [{{model = "{tiny_onnx}", max_size = "1MB"}}]\n')
    res = _run("check")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args, message", [
    (["--runs", "1000000000"], "1<=x<=100000"), (["--min-time", "nan"], "not a finite number"),
    (["--min-time", "inf"], "0<=x<=86400"), (["--timeout", "0"], "--timeout")])
def test_bench_numeric_options_are_validated(tiny_onnx, args, message):
    res = _run("bench", tiny_onnx, *args)
    assert res.exit_code == 2 and message in res.output


def test_bench_library_refuses_out_of_range_numbers(tiny_onnx):
    from edgeml.bench.harness import bench

    for kw in ({"runs": 10 ** 21}, {"min_time": float("nan")}, {"runs": 0}):
        with pytest.raises(EdgeMLError):
            bench([tiny_onnx], **kw)


def test_ssh_hint_never_pastes_a_hostile_host_as_a_command():
    from edgeml.targets.remote import SSHTarget, ssh_failure, ssh_hint

    evil = SSHTarget.parse("pi@board;reboot")
    hint = ssh_failure(evil, "ssh: connect to host board;reboot port 22: Connection refused").hint
    assert "ssh pi@board;reboot" not in hint and "try:" not in hint
    ok = SSHTarget.parse("pi@raspberrypi.local:2222")
    assert ssh_hint(ok) == "ssh -p 2222 pi@raspberrypi.local"
    assert "try: ssh -p 2222 pi@raspberrypi.local" in ssh_failure(ok, "Connection refused").hint
