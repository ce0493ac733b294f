"""The board-runner protocol (edgeml.targets.protocol): the host's constants agree with the runner's own copies,
the job file and the result/error documents round-trip."""

import json
from pathlib import Path

import pytest

from edgeml.errors import RemoteError
from edgeml.targets import device_runner, protocol


@pytest.mark.parametrize("name", ["JOB_FILE", "DEFAULT_DATA", "DATA_LAYOUT_FULL", "INPUT_KEY", "LABELS_KEY", "DOCTOR",
                                  "ERROR_EXIT"])
def test_protocol_constants_equal_the_runners_copies(name):
    assert getattr(device_runner, name) == getattr(protocol, name)


def test_protocol_runner_file_is_the_runner_module():
    assert protocol.RUNNER.name == protocol.RUNNER_FILE
    assert protocol.RUNNER.resolve() == Path(device_runner.__file__).resolve()


def test_protocol_doctor_script_calls_the_doctor_instead_of_main():
    script = protocol.doctor_script()
    assert protocol.MAIN_CALL in protocol.RUNNER.read_bytes()
    assert protocol.MAIN_CALL not in script and b'sys.exit(main(["--doctor"]))' in script


def test_protocol_write_job_is_what_the_runner_reads(tmp_path):
    path = protocol.write_job(tmp_path, models=[{"name": "m.tflite", "file": "m0.tflite", "format": "tflite"}],
                              runs=7, warmup=2, min_time=0.5, reference=None, max_memory_bytes=123)
    job = json.loads(path.read_text())
    assert path.name == device_runner.JOB_FILE
    assert job["data_layout"] == device_runner.DATA_LAYOUT_FULL
    assert (job["runs"], job["warmup"], job["min_time"], job["reference"]) == (7, 2, 0.5, None)
    assert job["max_memory_bytes"] == 123
    assert protocol.input_key(3) == device_runner.INPUT_KEY % 3 == "in3"


def test_protocol_read_result_takes_the_last_json_line():
    out = 'some board noise\n{"models": [], "runs": 1}\n'
    assert protocol.read_result(0, out, "", "pi") == {"models": [], "runs": 1}


def test_protocol_read_result_raises_remote_error_with_the_runners_hint():
    doc = json.dumps({"error": "no TFLite runtime", "hint": "pip install ai-edge-litert"})
    with pytest.raises(RemoteError, match="pi: no TFLite runtime") as err:
        protocol.read_result(protocol.ERROR_EXIT, doc + "\n", "", "pi")
    assert err.value.hint == "pip install ai-edge-litert"


def test_protocol_read_result_names_a_missing_python_when_nothing_is_printed():
    with pytest.raises(RemoteError, match="Python 3 was not found"):
        protocol.read_result(127, "", "sh: python3: not found\n", "pi")


def test_protocol_runner_error_document_round_trips(capsys):
    code = device_runner.main(["a", "b"])  # a usage error: the runner's own error document
    out = capsys.readouterr().out
    assert code == protocol.ERROR_EXIT
    with pytest.raises(RemoteError, match="usage: device_runner.py"):
        protocol.read_result(code, out, "", "this machine")
