"""Streaming calibration (edgeml.calibration.streaming): equal to ORT's calibrators, bounded, deterministic."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeml.calibration.streaming import calibrate
from edgeml.errors import DataError, EdgeMLError

ROOT = Path(__file__).resolve().parents[2]


def _model(log_first: bool = False, seed: int = 0):
    """x[1,3,8,8] -> (Log ->) Conv -> Relu -> Conv -> Add(skip) -> Sigmoid -> Flatten -> Gemm: eight tensors
    with different distributions (signed, one-sided, bounded)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name, shape, s=0.3):
        return numpy_helper.from_array(rng.normal(0, s, shape).astype(np.float32), name)

    first = "x"
    nodes = []
    if log_first:
        nodes.append(helper.make_node("Log", ["x"], ["logx"], name="log"))
        first = "logx"
    nodes += [helper.make_node("Conv", [first, "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1] * 4),
              helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
              helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1] * 4),
              helper.make_node("Add", ["c2", "c1"], ["a"], name="add"),
              helper.make_node("Sigmoid", ["a"], ["s"], name="sigmoid"),
              helper.make_node("Flatten", ["s"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc")]
    graph = helper.make_graph(
        nodes, "streaming", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        initializer=[init("w1", (4, 3, 3, 3)), init("b1", (4,), 0.1), init("w2", (4, 4, 3, 3)),
                     init("b2", (4,), 0.1), init("fw", (256, 5), 0.1), init("fb", (5,), 0.1)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _data(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)  # heavy tails, so percentile and entropy cut something
    return [rng.standard_t(3, (1, 3, 8, 8)).astype(np.float32) for _ in range(n)]


def _feeds(data: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    return [{"x": x} for x in data]


def _ort_ranges(tmp_path: Path, model, data, method: str, options: dict) -> dict:
    import onnx
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    cal = create_calibrator(path, None, augmented_model_path=str(tmp_path / "aug.onnx"), calibrate_method=cm,
                            extra_options=options)
    feeds = iter([{"x": x} for x in data])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    with contextlib.redirect_stdout(io.StringIO()):
        cal.collect_data(Reader())
        td = cal.compute_data()
    return {k: tuple(np.asarray(v) for v in td[k].range_value) for k in td.keys()}


def test_streaming_minmax_ranges_equal_ort_minmax_calibrator(tmp_path):
    model, data = _model(), _data(20)
    ours = calibrate(model, _feeds(data), method="minmax")
    theirs = _ort_ranges(tmp_path, model, data, "minmax", {})
    assert set(ours.ranges) == set(theirs) and len(theirs) == 8
    for name, (lo, hi) in theirs.items():
        assert ours.ranges[name][0].shape == lo.shape  # same [1]-shaped arrays as ORT's ReduceMin/Reshape
        assert np.array_equal(ours.ranges[name][0], lo) and np.array_equal(ours.ranges[name][1], hi), name


@pytest.mark.parametrize("method,options", [
    ("entropy", {}),
    ("entropy", {"num_bins": 512, "num_quantized_bins": 128}),
    ("percentile", {}),  # ORT's default: symmetric, histogram of |x|
    ("percentile", {"symmetric": False, "percentile": 99.9}),
])
def test_streaming_histogram_thresholds_equal_ort_calibrators(tmp_path, method, options):
    model, data = _model(), _data(25)
    ours = calibrate(model, _feeds(data), method=method, **options)
    theirs = _ort_ranges(tmp_path, model, data, method, options)
    assert set(ours.ranges) == set(theirs)
    assert len(theirs) == 8
    for name, (lo, hi) in theirs.items():
        # same bin edges from the same global range: the summed per-sample histograms equal ORT's all-at-once
        # ones bin for bin, so the thresholds are equal, not just close
        assert float(ours.ranges[name][0]) == float(lo) and float(ours.ranges[name][1]) == float(hi), name


def test_streaming_percentile_cuts_heavy_tails_inside_minmax():
    model, data = _model(), _data(25)
    mm = calibrate(model, _feeds(data), method="minmax").ranges["x"]
    pc = calibrate(model, _feeds(data), method="percentile", percentile=99.0).ranges["x"]
    assert float(pc[1]) < float(mm[1][0]) and float(pc[0]) > float(mm[0][0])


def test_streaming_state_size_is_independent_of_sample_count():
    model = _model()
    for method in ("minmax", "entropy", "percentile"):
        few = calibrate(model, _feeds(_data(3)), method=method)
        many = calibrate(model, _feeds(_data(60)), method=method)
        assert many.samples == 60 and few.samples == 3
        assert many.state_bytes == few.state_bytes > 0
        assert many.max_activation_bytes == few.max_activation_bytes > 0


def test_streaming_progress_reports_every_sample_of_each_pass():
    seen = []
    calibrate(_model(), _feeds(_data(4)), method="entropy", progress=lambda *args: seen.append(args))
    assert seen == [("ranges", i, 4) for i in range(1, 5)] + [("histograms", i, 4) for i in range(1, 5)]


def test_streaming_nan_activation_names_first_tensor():
    data = [np.abs(x) + 0.1 for x in _data(5)]
    data[3] = data[3].copy()
    data[3][0, 1, 2, 2] = -1.0  # Log(-1) = NaN at the Log's output, then everywhere after it
    with pytest.raises(DataError) as exc:
        calibrate(_model(log_first=True), _feeds(data), method="entropy")
    assert "tensor 'logx'" in exc.value.message and "Log node 'log'" in exc.value.message
    assert "sample 4 of 5" in exc.value.message and "NaN" in exc.value.message


def test_streaming_two_pass_refuses_reader_without_rewind():
    feeds = iter([{"x": x} for x in _data(3)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    with pytest.raises(EdgeMLError, match="cannot rewind"):
        calibrate(_model(), Reader(), method="percentile")


def _save(model, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path


def test_quantize_calibration_nan_exits_3_naming_tensor(tmp_path):
    from click.testing import CliRunner

    from edgeml.cli import cli

    src = _save(_model(log_first=True), tmp_path / "log.onnx")
    x = np.stack([d[0] for d in _data(60)])  # negative values: Log -> NaN
    np.savez(tmp_path / "calib.npz", x=x)
    res = CliRunner().invoke(cli, ["quantize", str(src), "--calib", str(tmp_path / "calib.npz"), "-o",
                                    str(tmp_path / "q.onnx"), "--method", "entropy"])
    assert res.exit_code == 3, res.output
    assert "tensor 'logx'" in res.output and not (tmp_path / "q.onnx").exists()


def test_quantize_interrupted_calibration_leaves_nothing_behind(tmp_path, monkeypatch):
    import tempfile

    from edgeml.quantize import quantize

    src = _save(_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.stack([d[0] for d in _data(60)]))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def say(msg):
        if "calibration histograms" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize(src, calib=str(tmp_path / "calib.npz"), out=tmp_path / "q.onnx", method="percentile", progress=say)
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "m.onnx", "tmp"]


def test_quantize_streaming_output_is_byte_identical_across_processes(tmp_path):
    """Same model, data spec and seed: byte-identical QDQ model, in fresh processes with different hash seeds."""
    src = _save(_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.stack([d[0] for d in _data(80)]))
    outs = []
    for k, seed in enumerate(("1", "2")):
        out = tmp_path / f"q{k}.onnx"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "edgeml", "-q", "quantize", str(src), "--calib",
                               f"{tmp_path / 'calib.npz'}?samples=50&sampling=random&seed=7", "-o", str(out),
                               "--method", "entropy", "--json"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_quantize_json_reports_streaming_calibration_memory(tmp_path):
    from edgeml.quantize import quantize

    src = _save(_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.stack([d[0] for d in _data(60)]))
    r = quantize(src, calib=str(tmp_path / "calib.npz"), out=tmp_path / "q.onnx", method="percentile")
    c = r.to_dict()["calibration"]
    assert c["calibrator"] == "edgeml streaming" and c["passes"] == 2 and c["samples"] == 60
    assert c["state_bytes"] > 8 * 2048 * 8 and c["peak_rss_mib"] > 0 and c["max_activation_bytes"] > 0


def test_onnx_layer_errors_stream_a_generator_like_a_list(tmp_path):
    import onnx

    from edgeml.quantize import quantize
    from edgeml.quantize.debug import onnx_layer_errors

    src = _save(_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.stack([d[0] for d in _data(60)]))
    quantize(src, calib=str(tmp_path / "calib.npz"), out=tmp_path / "q.onnx", debug_samples=1)
    feeds = _feeds(_data(6, seed=3))
    listed = onnx_layer_errors(onnx.load(str(src)), tmp_path / "q.onnx", feeds)
    streamed = onnx_layer_errors(onnx.load(str(src)), tmp_path / "q.onnx", (f for f in feeds))
    assert listed and [e.to_dict() for e in listed] == [e.to_dict() for e in streamed]


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_streaming_qdq_model_is_byte_identical_to_ort_calibrators(tmp_path, method):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgeml.calibration.streaming import ort_calibration

    src = _save(_model(), tmp_path / "m.onnx")
    feeds = _feeds(_data(20))

    class Reader:
        def __init__(self):
            self.i = 0

        def get_next(self):
            self.i += 1
            return feeds[self.i - 1] if self.i <= len(feeds) else None

        def rewind(self):
            self.i = 0

    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    opts = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=cm)
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(src), str(tmp_path / "ort.onnx"), Reader(), **opts)
        reader, kwargs, summary = ort_calibration(src, Reader(), method=method, work_dir=tmp_path)
        quantize_static(str(src), str(tmp_path / "edgeml.onnx"), reader, **opts, **kwargs)
    assert summary["calibrator"] == "edgeml streaming"
    assert (tmp_path / "edgeml.onnx").read_bytes() == (tmp_path / "ort.onnx").read_bytes()
