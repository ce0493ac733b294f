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
    ("optimize", "prune_method", options.PruneMethod), ("quantize", "fmt", options.ConvertTo),
    ("quantize", "mode", options.QuantMode), ("quantize", "io", options.QuantIO),
    ("quantize", "fallback", options.QuantFallback),
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
    ("edgeml.bench.harness:bench", options.BenchOptions), ("edgeml.api:bench", options.BenchOptions),
    ("edgeml.targets.estimate:estimate", options.EstimateOptions), ("edgeml.api:estimate", options.EstimateOptions),
    ("edgeml.check:run_check", options.CheckOptions), ("edgeml.api:check", options.CheckOptions),
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


# --- the stages' options objects: built once, read by the stage's work --------------------------------------

STAGE_OPTIONS = [options.QuantizeOptions, options.ConvertOptions, options.PruneOptions, options.BenchOptions,
                 options.EstimateOptions, options.CheckOptions]
REQUIRED = {options.QuantizeOptions: {"out": "q.tflite"}, options.ConvertOptions: {"to": "onnx", "out": "c.onnx"},
            options.PruneOptions: {"out": "p.keras", "sparsity": 0.5}, options.EstimateOptions: {"target": "rpi4"}}


def _stage_calls(tmp_path):
    """(stage function, module, core name, keyword options, the same as an options object), one per stage."""
    import importlib

    # modules from importlib: edgeml.quantize (etc.) on the package is the API function, not the subpackage
    quantize, convert, prune, harness, estimate, check = map(importlib.import_module, (
        "edgeml.quantize", "edgeml.convert", "edgeml.prune", "edgeml.bench.harness", "edgeml.targets.estimate",
        "edgeml.check"))
    m = tmp_path / "m.onnx"
    return [
        (lambda **kw: quantize.quantize(m, **kw), quantize, "_quantize",
         dict(out="q.onnx", mode="dynamic", per_channel=False), options.QuantizeOptions),
        (lambda **kw: convert.convert(m, **kw), convert, "_convert",
         dict(to="onnx", out="c.onnx", opset=13), options.ConvertOptions),
        (lambda **kw: prune.prune(m, **kw), prune, "_prune",
         dict(out="p.onnx", sparsity=0.25, scope="global"), options.PruneOptions),
        (lambda **kw: harness.bench([m], **kw), harness, "_bench",
         dict(runs=7, warmup=0, host="pi@board:2222"), options.BenchOptions),
        (lambda **kw: estimate.estimate(m, **kw), estimate, "_estimate",
         dict(target="rpi4", top=3), options.EstimateOptions),
        (lambda **kw: check.run_check([], **kw), check, "_run_check",
         dict(repeat=1, runs=9), options.CheckOptions),
    ]


@pytest.mark.parametrize("k", range(6))
def test_stage_work_reads_one_options_object_built_from_keywords(tmp_path, monkeypatch, k):
    call, module, core, keywords, cls = _stage_calls(tmp_path)[k]
    seen = []
    monkeypatch.setattr(module, core, lambda *args: seen.append(next(a for a in args if isinstance(a, cls))))
    call(**keywords)
    (o,) = seen
    assert o == cls(**keywords)
    given = cls(**keywords)
    call(options=given)
    assert seen[1] is given  # passed through as it is, never rebuilt


@pytest.mark.parametrize("k", range(6))
def test_stage_refuses_options_and_a_keyword_option_together(tmp_path, monkeypatch, k):
    from edgeml.errors import UsageError

    call, module, core, keywords, cls = _stage_calls(tmp_path)[k]
    monkeypatch.setattr(module, core, lambda *args: pytest.fail("the work ran"))
    name, value = list(keywords.items())[-1]
    with pytest.raises(UsageError, match=f"got options= and {name}"):
        call(options=cls(**keywords), **{name: value})
    assert list(tmp_path.iterdir()) == []


def test_bench_work_gets_the_host_string_parsed(monkeypatch):
    from edgeml.bench import harness
    from edgeml.targets.remote import SSHTarget

    assert harness.ssh_target("pi@board:2222") == SSHTarget(host="board", user="pi", port=2222)
    target = SSHTarget(host="b", identity="key")
    assert harness.ssh_target(target) is target and harness.ssh_target(None) is None


@pytest.mark.parametrize("cls, bad, message", [
    (options.QuantizeOptions, {"mode": "int9"}, "`mode` int9: unknown"),
    (options.QuantizeOptions, {"fallback": "float"}, "`fallback` applies to a budget"),
    (options.ConvertOptions, {"to": "tf"}, "`to` tf: unknown target format"),
    (options.PruneOptions, {"sparsity": 1.5}, "`sparsity` 1.5: must be between 0 and 1"),
    (options.PruneOptions, {"exclude": "conv["}, "`exclude` 'conv\\[': not a valid regular expression"),
    (options.BenchOptions, {"runs": 0}, "`runs` 0: must be a whole number"),
    (options.BenchOptions, {"timeout": float("inf")}, "`timeout` inf"),
    (options.EstimateOptions, {"precision": "fp8"}, "`precision` fp8: unknown"),
    (options.CheckOptions, {"repeat": 0}, "`repeat` 0"),
    (options.CheckOptions, {"runs": 0}, "`runs` 0"),
])
def test_stage_options_check_their_values_when_made(cls, bad, message):
    import dataclasses

    from edgeml.errors import EdgeMLError

    good = cls(**REQUIRED.get(cls, {}))
    with pytest.raises(EdgeMLError, match=message):
        cls(**{**REQUIRED.get(cls, {}), **bad})
    with pytest.raises(EdgeMLError, match=message):
        dataclasses.replace(good, **bad)


@pytest.mark.parametrize("cls", STAGE_OPTIONS)
def test_stage_options_are_frozen_and_replaceable(cls):
    import dataclasses

    enabling = {options.QuantizeOptions: {"calib": "c.npz"}, options.PruneOptions: {"train": "t.npz"}}  # so the
    o = cls(**REQUIRED.get(cls, {}), **enabling.get(cls, {}))  # int field below is one the stage reads (not refused)
    name = "epochs" if cls is options.PruneOptions else next(f.name for f in dataclasses.fields(cls)
                                                             if f.type in ("int", "int | None"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(o, name, 2)
    changed = dataclasses.replace(o, **{name: 2})
    assert getattr(changed, name) == 2 and changed != o and o.to_dict()[name] != 2


@pytest.mark.parametrize("cls", STAGE_OPTIONS)
def test_stage_options_have_no_any_in_their_types(cls):
    import typing

    from edgeml.calibration.spec import DataSpec
    from edgeml.targets.remote import SSHTarget

    hints = typing.get_type_hints(cls, localns={"DataSpec": DataSpec, "SSHTarget": SSHTarget})
    assert set(hints) == {f.name for f in __import__("dataclasses").fields(cls)}
    assert all("Any" not in str(h) for h in hints.values()), hints


def test_stage_options_are_exported_from_edgeml():
    import edgeml

    for cls in STAGE_OPTIONS:
        assert getattr(edgeml, cls.__name__) is cls


def test_bench_print_config_shows_the_ssh_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["bench", "a.tflite", "--target", "rpi4", "--host", "pi@board:2222",
                                   "--identity", "id_key", "--print-config"])
    assert res.exit_code == 0, res.output
    host = json.loads(res.stdout)["options"]["host"]
    assert (host["host"], host["user"], host["port"], host["identity"]) == ("board", "pi", 2222, "id_key")
    assert list(tmp_path.iterdir()) == []


def test_bench_estimate_and_check_take_their_options(tiny_onnx):
    import edgeml

    b = edgeml.bench([tiny_onnx], options=edgeml.BenchOptions(runs=3, warmup=1))
    assert b.measured and b.settings["runs"] == 3 and b.settings["warmup"] == 1
    e = edgeml.estimate(tiny_onnx, options=edgeml.EstimateOptions(target="rpi4", threads=1))
    assert e.target == "rpi4" and e.threads == 1
    budget = edgeml.Budget(model=str(tiny_onnx), max_latency_ms=10_000.0)
    c = edgeml.check([budget], options=edgeml.CheckOptions(repeat=1, runs=3))
    (item,) = c.items
    assert c.passed and "median of 1 runs x 3" in item.detail


@pytest.mark.parametrize("function, options_class", [
    ("edgeml.quantize:quantize", options.QuantizeOptions), ("edgeml.convert:convert", options.ConvertOptions),
    ("edgeml.prune:prune", options.PruneOptions), ("edgeml.bench.harness:bench", options.BenchOptions),
    ("edgeml.targets.estimate:estimate", options.EstimateOptions), ("edgeml.check:run_check", options.CheckOptions),
])
def test_every_stage_keyword_is_an_options_field(function, options_class):
    """StageOptions.build keeps only the dataclass's fields: a keyword added to a stage but not to its options
    class would be dropped without a word."""
    import dataclasses
    import importlib
    import inspect

    module, name = function.split(":")
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    context = {"model", "models", "budgets", "progress", "options", "keras_model", "results"}  # not options
    fields = {f.name for f in dataclasses.fields(options_class)}
    assert set(params) - context - fields == set()
