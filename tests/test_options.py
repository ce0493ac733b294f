"""Option vocabularies (edgeml.options) and --print-config."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from edgeml import options
from edgeml.cli import cli


def _param(command: str, name: str) -> click.Parameter:
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, command)
    return next(p for p in cmd.params if p.name == name)


@pytest.mark.parametrize("command, param, vocabulary", [
    ("convert", "to", options.ConvertTo), ("prune", "method", options.PruneMethod),
    ("prune", "scope", options.PruneScope), ("prune", "criterion", options.PruneCriterion),
    ("prune", "schedule", options.PruneSchedule), ("estimate", "precision", options.Precision),
    ("check", "percentile", options.Percentile), ("optimize", "formats", options.ConvertTo),
    ("optimize", "prune_method", options.PruneMethod),
])
def test_cli_choices_come_from_the_vocabulary(command, param, vocabulary):
    assert set(_param(command, param).type.choices) == set(vocabulary.values())


def test_vocabulary_members_compare_equal_to_their_values():
    assert options.PruneMethod.CHANNEL == "channel" and str(options.QuantMode.INT16X8) == "int16x8"
    assert options.Percentile.values() == ("p50", "p90", "p99", "mean", "max")


def test_library_validation_uses_the_vocabulary():
    from edgeml.calibration.spec import DOMAINS, SAMPLING, SPLITS
    from edgeml.check import PERCENTILES
    from edgeml.convert import TARGET_FORMATS
    from edgeml.targets.estimate import PRECISIONS

    assert PERCENTILES == options.Percentile.values() and TARGET_FORMATS == options.ConvertTo.values()
    assert PRECISIONS == options.Precision.values() and SPLITS == options.Split.values()
    assert SAMPLING == options.Sampling.values() and DOMAINS == options.Domain.values()


@pytest.mark.parametrize("args, function, expected", [
    (["convert", "m.onnx", "--to", "onnx", "-o", "x.onnx", "--input-shape", "x=1,3"], "edgeml.convert",
     {"model": "m.onnx", "to": "onnx", "simplify": True, "input_shapes": ["x=1,3"]}),
    (["prune", "m.keras", "-o", "p.keras", "--sparsity", "0.5", "--method", "channel"], "edgeml.prune",
     {"sparsity": 0.5, "method": "channel", "scope": "layer"}),
    (["bench", "a.tflite", "b.onnx", "--target", "rpi4", "--runs", "7"], "edgeml.bench",
     {"models": ["a.tflite", "b.onnx"], "target": "rpi4", "runs": 7, "host": None}),
    (["quantize", "m.onnx", "-o", "q.onnx", "--calib", "c.npz", "--eval", "e.npz", "--max-accuracy-drop", "0.01",
      "--fallback", "int16x8", "--keep-best", "--report", "r.json"], "edgeml.quantize",
     {"model": "m.onnx", "out": "q.onnx", "calib": "c.npz", "eval": "e.npz", "mode": "int8", "method": "minmax",
      "max_accuracy_drop": 0.01, "min_fidelity": None, "fallback": "int16x8", "keep_best": True,
      "report": "r.json", "speed_seconds": 3.0}),
    (["compile", "m.tflite", "--target", "coral-usb", "-o", "out"], "edgeml.targets.edgetpu.compile_edgetpu",
     {"model": "m.tflite", "target": "coral-usb", "out_dir": "out"}),
    (["compile", "m.tflite", "--plan"], "edgeml.targets.edgetpu_plan.plan",
     {"model": "m.tflite", "target": "coral-usb"}),
    (["inspect", "m.onnx", "--input-shape", "x=1,3"], "edgeml.inspect", {"model": "m.onnx", "input_shapes": ["x=1,3"]}),
    (["report", "run", "a.json", "-o", "r.html", "--train-gpu-hours", "2"], "edgeml.report.build_report",
     {"results": ["run", "a.json"], "out": "r.html", "train_gpu_hours": 2.0}),
    (["check", "m.tflite", "--max-size", "300KiB", "--percentile", "p90", "--junit", "c.xml"], "edgeml.check",
     {"junit": "c.xml", "runs": 50}),
    (["check", "--budget", "b.toml"], "edgeml.check", {"budgets": ["b.toml"]}),
    (["data", "inspect", "imgs/", "--model", "m.onnx", "--samples", "5"], "edgeml.calibration.load_dataset",
     {"spec": "imgs/", "model": "m.onnx", "samples": 5}),
    (["estimate", "m.tflite", "--target", "rpi4", "--input-shape", "1,8"], "edgeml.estimate",
     {"model": "m.tflite", "target": "rpi4", "input_shapes": ["1,8"]}),
])
def test_print_config_prints_the_library_call_and_stops(tmp_path, monkeypatch, args, function, expected):
    monkeypatch.chdir(tmp_path)  # none of the files exist: nothing is read or written
    res = CliRunner().invoke(cli, [*args, "--print-config"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "edgeml.config/1" and doc["function"] == function
    assert expected.items() <= doc["options"].items()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("function, options_class", [
    ("edgeml.quantize:quantize", options.QuantizeOptions), ("edgeml.convert:convert", options.ConvertOptions),
    ("edgeml.prune:prune", options.PruneOptions), ("edgeml.api:quantize", options.QuantizeOptions),
    ("edgeml.api:convert", options.ConvertOptions), ("edgeml.api:prune", options.PruneOptions),
])
def test_stage_options_match_the_stage_keyword_arguments(function, options_class):
    import dataclasses
    import importlib
    import inspect

    module, name = function.split(":")
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    library_only = {"debug_samples", "max_evals"} if module == "edgeml.api" else set()  # not in edgeml.quantize
    for f in dataclasses.fields(options_class):
        if f.name in library_only:
            continue
        default = None if f.default is dataclasses.MISSING else f.default
        assert params[f.name].default == default, f.name


def test_stage_options_are_frozen():
    import dataclasses

    o = options.QuantizeOptions(out="q.tflite", mode="float16")
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.mode = "int8"  # type: ignore[misc]
    assert o.to_dict()["mode"] == "float16" and o.to_dict()["out"] == "q.tflite"


def test_quantize_refuses_options_and_keyword_options_together(tmp_path):
    from edgeml.errors import UsageError
    from edgeml.quantize import quantize

    with pytest.raises(UsageError, match="mode"):
        quantize(tmp_path / "m.onnx", options=options.QuantizeOptions(out=tmp_path / "q.onnx"), mode="float16")
    with pytest.raises(UsageError, match="out"):
        quantize(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_convert_refuses_options_and_keyword_options_together(tmp_path):
    from edgeml.convert import convert
    from edgeml.errors import UsageError

    with pytest.raises(UsageError, match="opset"):
        convert(tmp_path / "m.onnx", options=options.ConvertOptions(to="onnx", out=tmp_path / "c.onnx"), opset=13)
    with pytest.raises(UsageError, match="to"):
        convert(tmp_path / "m.onnx", out=tmp_path / "c.onnx")
    assert list(tmp_path.iterdir()) == []


def test_quantize_takes_options(tiny_onnx, tmp_path):
    import edgeml

    out = tmp_path / "q.onnx"
    r = edgeml.quantize(tiny_onnx, options=edgeml.QuantizeOptions(out=out, mode="dynamic", debug_samples=2))
    assert out.exists() and r.mode == "dynamic" and r.format == "onnx"


def test_check_print_config_shows_the_flag_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["check", "m.tflite", "--max-size", "1KiB", "--percentile", "p90", "--print-config"])
    assert res.exit_code == 0, res.output
    (budget,) = json.loads(res.stdout)["options"]["budgets"]
    assert budget["model"] == "m.tflite" and budget["max_size"] == 1024 and budget["percentile"] == "p90"
    assert list(tmp_path.iterdir()) == []


def test_prune_refuses_options_and_keyword_options_together(tmp_path):
    from edgeml.errors import UsageError
    from edgeml.prune import prune

    with pytest.raises(UsageError, match="scope"):
        prune(tmp_path / "m.onnx", options=options.PruneOptions(out=tmp_path / "p.onnx", sparsity=0.5), scope="global")
    with pytest.raises(UsageError, match="sparsity"):
        prune(tmp_path / "m.onnx", out=tmp_path / "p.onnx")
    assert list(tmp_path.iterdir()) == []


def test_prune_takes_options(tiny_onnx, tmp_path):
    import edgeml

    out = tmp_path / "p.onnx"
    r = edgeml.prune(tiny_onnx, options=edgeml.PruneOptions(out=out, sparsity=0.5))
    assert out.exists() and r.sparsity == 0.5
