"""edgeml bench: local and over SSH (a real sshd on loopback), statistics, pre-flight, runtimes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import helpers
from edgeml.bench.harness import bench
from edgeml.cli import cli
from edgeml.errors import EdgeMLError
from edgeml.targets import device_runner
from edgeml.targets.remote import RemoteError, SSHTarget

TEST = "builtin:digits?split=test&samples=120"


@pytest.fixture(scope="module")
def digits_pair(tmp_path_factory, digits_keras):
    """The trained digits CNN as float .tflite and int8 .tflite."""
    from edgeml.convert import convert
    from edgeml.quantize import quantize

    d = tmp_path_factory.mktemp("pair")
    convert(digits_keras, to="tflite", out=d / "fp32.tflite", verify=0)
    quantize(digits_keras, calib="builtin:digits?split=train", out=d / "int8.tflite", calib_samples=100,
             debug_samples=1)
    return d / "fp32.tflite", d / "int8.tflite"


def _ssh(board, **kw) -> SSHTarget:
    return SSHTarget.parse(board.host, config=str(board.config), python=kw.pop("python", board.python), **kw)


def test_stats_are_ordered_and_ci_holds_the_median():
    ms = [float(x) for x in np.random.default_rng(0).gamma(4, 1, 501)]
    s = device_runner.stats(ms)
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["median_ci95"][0] <= s["p50"] <= s["median_ci95"][1]
    assert s["p50"] == pytest.approx(float(np.median(ms)))
    assert s["n"] == 501 and s["throughput_per_s"] == pytest.approx(1000 / np.mean(ms))


def test_local_bench_interleaves_models_and_measures_accuracy(digits_pair):
    from edgeml.bench.accuracy import evaluate, float_inputs
    from edgeml.calibration import load_dataset
    from edgeml.runtimes.session import open_session

    fp32, int8 = digits_pair
    r = bench([fp32, int8], runs=20, data=TEST, threads=1).to_dict()
    assert r["schema"] == "edgeml.bench/1" and r["measured"] and r["kind"] == "measured"
    a, b = r["models"]
    assert a["ratio_to_first"] == 1.0 and b["ratio_to_first"] == pytest.approx(b["latency_ms"]["p50"] /
                                                                                a["latency_ms"]["p50"])
    assert a["latency_ms"]["n"] == b["latency_ms"]["n"] == 20
    assert a["cold_start"]["load_ms"] > 0 and r["settings"]["threads"] == 1
    assert r["environment"]["cores"] >= 1 and r["environment"]["python"]
    session = open_session(int8)  # the library's own evaluation agrees with the runner's
    expected = evaluate(session, load_dataset(TEST, inputs=float_inputs(session.inputs)))["top1"]
    assert b["accuracy"]["top1"] == pytest.approx(expected) and b["accuracy"]["samples"] == 120
    assert "top5" in b["accuracy"]


def test_reference_gives_fidelity(digits_pair):
    fp32, int8 = digits_pair
    r = bench([int8], reference=fp32, runs=5, data=TEST).to_dict()
    fid = r["models"][0]["fidelity"]
    assert fid["argmax_agreement"] >= 0.95 and fid["cosine"] > 0.99 and fid["max_abs_error"] > 0
    assert r["models"][1]["role"] == "reference" and "latency_ms" not in r["models"][1]


def test_remote_bench_over_real_ssh_matches_local_exactly(board, digits_pair):
    fp32, int8 = digits_pair
    local = bench([fp32, int8], runs=5, data=TEST, threads=1).to_dict()
    lines = []
    remote = bench([fp32, int8], runs=5, data=TEST, threads=1, host=_ssh(board), progress=lines.append).to_dict()
    assert remote["where"] == board.host and remote["measured"]
    for lm, rm in zip(local["models"], remote["models"]):
        assert rm["accuracy"] == lm["accuracy"]
    assert any("[127.0.0.1]" in line and "timing" in line for line in lines)  # progress streamed from the board
    assert any("copying" in line for line in lines)


def test_remote_board_without_runtime_says_what_to_install(board, digits_pair):
    with pytest.raises(RemoteError, match="no TFLite runtime") as err:
        bench([digits_pair[0]], runs=2, host=_ssh(board, python=str(board.bare_python)))
    assert "pip3 install ai-edge-litert" in err.value.hint


def test_unreachable_host_and_refused_key(board, digits_pair, tmp_path):
    import sshd

    closed = sshd.free_port()
    with pytest.raises(RemoteError, match="failed") as err:
        bench([digits_pair[0]], runs=2, host=SSHTarget.parse(f"127.0.0.1:{closed}", config=str(board.config)))
    assert "reachable" in err.value.hint
    cfg = tmp_path / "cfg"
    cfg.write_text(board.config.read_text().replace("user_key", "other_key"))
    with pytest.raises(RemoteError, match="Permission denied") as err:
        bench([digits_pair[0]], runs=2, host=SSHTarget.parse(board.host, config=str(cfg)))
    assert "authorized_keys" in err.value.hint


def test_jetson_providers_fall_back_and_say_so(board, tmp_path):
    model = helpers.onnx_cnn(tmp_path / "m.onnx")
    r = bench([model], target="jetson-orin-nano", host=_ssh(board), runs=3)
    m = r.models[0]
    assert m["providers"] == ["CPUExecutionProvider"]
    assert "TensorrtExecutionProvider" in m["missing_providers"] and r.notes
    assert r.settings["threads"] == 6  # the board's cores by default


def test_doctor_over_ssh(board):
    res = CliRunner().invoke(cli, ["doctor", "--host", board.host, "--ssh-config", str(board.config), "--json",
                                   "--remote-python", board.python])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["modules"]["numpy"] and d["modules"]["ai_edge_litert"] and "CPUExecutionProvider" in \
        d["onnxruntime_providers"]


def test_edgetpu_delegate_missing_is_explained(tmp_path, tiny_tflite):
    with pytest.raises(device_runner.RunnerError, match="edgetpu delegate") as err:
        device_runner.TFLiteModel({"path": str(tiny_tflite), "name": "m", "delegate": "edgetpu"})
    assert "libedgetpu" in err.value.hint


def test_preflight_errors(tmp_path, tiny_keras, tiny_tflite):
    with pytest.raises(EdgeMLError, match="deployable models") as err:
        bench([tiny_keras])
    assert "`edgeml.convert(" in err.value.hint
    with pytest.raises(EdgeMLError, match="not compiled for the Edge TPU") as err:
        bench([tiny_tflite], target="coral-usb", host=SSHTarget.parse("127.0.0.1:1"))
    assert "`edgeml.compile(" in err.value.hint
    compiled = helpers.edit_tflite(tiny_tflite, tmp_path / "m_edgetpu.tflite", helpers.make_custom_op)
    with pytest.raises(EdgeMLError, match="needs one"):
        bench([compiled])
    with pytest.raises(EdgeMLError, match="does not run onnx"):
        bench([helpers.onnx_cnn(tmp_path / "m.onnx")], target="coral-usb", host=SSHTarget.parse("127.0.0.1:1"))


@pytest.mark.parametrize("text", ["pi@", "-oProxyCommand=x", "a b", "host:port"])
def test_host_syntax_is_checked(text):
    with pytest.raises(EdgeMLError, match="expected"):
        SSHTarget.parse(text)


def test_ssh_arguments_are_a_list_with_batchmode_and_no_hostkey_override():
    t = SSHTarget.parse("pi@10.0.0.2:2222", config="/x/cfg", identity="/x/key")
    args = t.ssh_args()
    assert args[args.index("-p") + 1] == "2222" and args[args.index("-l") + 1] == "pi"
    assert "BatchMode=yes" in args and args[-2:] == ["--", "10.0.0.2"]
    assert not any("StrictHostKeyChecking" in a for a in args)


def test_cli_bench_table_and_json(digits_pair, tmp_path):
    fp32, int8 = digits_pair
    runner = CliRunner()
    res = runner.invoke(cli, ["bench", str(fp32), str(int8), "--runs", "5", "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "p50 95% CI" in res.stdout and "vs first" in res.stdout and "1.00x" in res.stdout
    assert json.loads((tmp_path / "r.json").read_text())["schema"] == "edgeml.bench/1"
    res = runner.invoke(cli, ["bench", str(int8), "--runs", "3", "--json"])
    assert json.loads(res.stdout)["models"][0]["latency_ms"]["n"] == 3


# --- data reaches each model as it was trained (issue 24) ------------------------------------------------

@pytest.fixture(scope="module")
def int_io(tmp_path_factory):
    """An int8-IO feature classifier with its features as int8 and float .npz; quantized image models."""
    d = tmp_path_factory.mktemp("intio")
    model, x, y = helpers.int8_feature_classifier(d / "kws_int8.tflite")
    from edgeml.runtimes.session import open_session

    q = open_session(model).inputs[0].quantization
    np.savez(d / "int8.npz", features=np.clip(np.round(x / q.scale + q.zero_point), -128, 127).astype(np.int8), y=y)
    np.savez(d / "float.npz", features=x, y=y)
    np.savez(d / "bad_labels.npz", features=x, y=np.where(np.arange(len(y)) == 7, 12, y))
    helpers.brightness_images(d / "images")
    return {"kws": model, "dir": d, "u8": helpers.brightness_classifier(d / "u8.tflite"),
            "i8": helpers.brightness_classifier(d / "i8.tflite", io="int8", trained_on="0..1"),
            "u8_16": helpers.brightness_classifier(d / "u8_16.tflite", hw=16),
            "f32": helpers.brightness_classifier(d / "f32.tflite", io="float32"),
            "det": helpers.onnx_detector(d / "det.onnx")}


def _direct_top1(model, data) -> float:
    """Top-1 feeding the stored arrays straight to the interpreter (no edgeml data path)."""
    from edgeml.runtimes.litert import load_interpreter

    it = load_interpreter(model)
    d = np.load(data)
    hits = 0
    for x, label in zip(d["features"], d["y"]):
        it.set_tensor(it.get_input_details()[0]["index"], x[None])
        it.invoke()
        hits += int(it.get_tensor(it.get_output_details()[0]["index"]).argmax() == label)
    return hits / len(d["y"])


def test_int8_data_on_an_int8_model_is_not_quantized_twice(int_io):
    from edgeml.bench.accuracy import top1

    model, d = int_io["kws"], int_io["dir"]
    truth = _direct_top1(model, d / "int8.npz")
    assert truth > 0.9
    r = bench([model], runs=2, data=str(d / "int8.npz")).to_dict()
    assert r["models"][0]["accuracy"]["top1"] == pytest.approx(truth)  # quantized twice: ~25 %
    assert top1(model, str(d / "int8.npz")) == pytest.approx(truth)  # check --min-accuracy's number
    assert bench([model], runs=2, data=str(d / "float.npz")).to_dict()["models"][0]["accuracy"]["top1"] > 0.9


def test_check_min_accuracy_passes_a_correct_int8_model_on_int8_data(int_io, tmp_path):
    res = CliRunner().invoke(cli, ["check", str(int_io["kws"]), "--min-accuracy", "0.9", "--data",
                                   str(int_io["dir"] / "int8.npz")])
    assert res.exit_code == 0, res.output


def test_uint8_image_model_scaled_1_128_gets_raw_pixels(int_io):
    images = str(int_io["dir"] / "images")
    for model in (int_io["u8"], int_io["i8"]):
        for spec in (images, images + "?raw_pixels=true"):
            acc = bench([model], runs=2, data=spec).to_dict()["models"][0]["accuracy"]
            assert acc["top1"] == 1.0 and acc["samples"] == 6, (model, spec)


def test_image_models_of_two_sizes_and_a_detector_in_one_bench(int_io):
    r = bench([int_io["u8"], int_io["u8_16"], int_io["det"]], runs=2, data=str(int_io["dir"] / "images")).to_dict()
    a, b, det = r["models"]
    assert a["accuracy"]["top1"] == b["accuracy"]["top1"] == 1.0
    assert "top1" not in det["accuracy"] and "[1, 4, 6]" in det["accuracy"]["not_applicable"]
    assert any(n.startswith("det.onnx: no top-1") for n in r["notes"])
    from edgeml.cli.bench_cmd import render

    text = render(r)
    assert "n/a" in text and " 0.00%" not in text


def test_accuracy_of_a_detector_is_refused_not_zero(int_io):
    from edgeml.bench.accuracy import top1

    with pytest.raises(EdgeMLError, match="accuracy does not apply.*not one score per class"):
        top1(int_io["det"], "builtin:digits?samples=5")


def test_labels_outside_the_class_range_are_an_error(int_io):
    from edgeml.bench.accuracy import top1
    from edgeml.errors import DataError

    data = str(int_io["dir"] / "bad_labels.npz")
    for run in (lambda: bench([int_io["kws"]], runs=2, data=data), lambda: top1(int_io["kws"], data)):
        with pytest.raises(DataError, match=r"bad_labels.npz.*label 12 .*bad_labels.npz\[7\].*4 classes.*0..12"):
            run()


def test_runner_feeds_data_by_the_same_rule():
    to = device_runner._to_dtype
    q = (0.5, 10)
    x8 = np.asarray([-3, 0, 5], np.int8)
    assert to(np, x8, "int8", q) is x8  # in the model's domain: unchanged
    assert to(np, np.asarray([1.26], np.float32), "int8", q).tolist() == [13]
    assert to(np, np.asarray([0, 200], np.uint8), "int8", q).tolist() == [-128, 72]
    with pytest.raises(device_runner.RunnerError, match="does not fit"):
        to(np, np.asarray([300], np.int64), "int8", q)
    assert device_runner.classes([(1, 4, 6)])[0] is None and device_runner.classes([(1, 10)]) == (10, None)


def test_float_reference_reads_the_real_values_the_quantized_model_reads(int_io):
    images = str(int_io["dir"] / "images")
    r = bench([int_io["u8"]], reference=int_io["f32"], runs=2, data=images).to_dict()
    m, ref = r["models"]
    assert m["accuracy"]["top1"] == ref["accuracy"]["top1"] == 1.0  # the reference got (p - 128) / 128
    assert m["fidelity"]["argmax_agreement"] == 1.0


def test_one_hot_labels_score_like_class_indices(int_io, tmp_path):
    from edgeml.bench.accuracy import top1

    d = np.load(int_io["dir"] / "int8.npz")
    np.savez(tmp_path / "onehot.npz", features=d["features"], y=np.eye(4, dtype=np.float32)[d["y"]])
    assert top1(int_io["kws"], str(tmp_path / "onehot.npz")) == top1(int_io["kws"], str(int_io["dir"] / "int8.npz"))
    r = bench([int_io["kws"]], runs=2, data=str(tmp_path / "onehot.npz")).to_dict()
    assert r["models"][0]["accuracy"]["top1"] > 0.9


def test_provider_problem_names_the_missing_library_when_a_listed_provider_cannot_load(tmp_path):
    """onnxruntime-gpu lists TensorRT even without libnvinfer (seen on a GPU machine): the runner must say so,
    not report the fallback as if TensorRT ran."""
    import types

    from edgeml.targets import device_runner

    capi = tmp_path / "fakeort" / "capi"
    capi.mkdir(parents=True)
    (capi / "libonnxruntime_providers_tensorrt.so").write_bytes(b"not an ELF file")
    fake = types.SimpleNamespace(__file__=str(tmp_path / "fakeort" / "__init__.py"))
    why = device_runner.provider_problem(fake, "TensorrtExecutionProvider")
    assert why and "libonnxruntime_providers_tensorrt.so" in why
    assert device_runner.provider_problem(fake, "CUDAExecutionProvider") is None  # not shipped: nothing to load
    assert device_runner.provider_problem(fake, "CPUExecutionProvider") is None


def test_bench_refuses_remote_only_options_without_a_board(tiny_onnx):
    with pytest.raises(EdgeMLError, match=r"`timeout` 30: bounds a run on a board over SSH"):
        bench([tiny_onnx], timeout=30)
    for extra, message in ((["--identity", "k"], "--identity set how to reach a board"),
                           (["--remote-python", "python3.11"], "--remote-python set how to reach a board"),
                           (["--results", "elsewhere"], "--results needs --fleet INVENTORY")):
        res = CliRunner().invoke(cli, ["bench", str(tiny_onnx), *extra])
        assert res.exit_code == 2 and message in res.output, res.output
