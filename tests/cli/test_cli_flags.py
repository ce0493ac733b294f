"""Library messages name parameters (`calib`, `input_shapes`); the CLI prints the flags (--calib, --input-shape)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from edgeml._io import check_outputs
from edgeml.bench.harness import check_numbers
from edgeml.cli import cli
from edgeml.cli.flags import PARAM_FLAGS, to_flags
from edgeml.errors import OutputExistsError, ShapeError, UsageError
from edgeml.formats.shapes import parse_input_shapes


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_to_flags_maps_backticked_parameters_only():
    assert to_flags("pass `calib` SPEC, or `input_shapes` x=1,3") == "pass --calib SPEC, or --input-shape x=1,3"
    assert to_flags("choose another `out` path") == "choose another -o path"
    assert to_flags("mode and calib stay, `edgeml search --help` and `not_a_param` too") == \
        "mode and calib stay, `edgeml search --help` and `not_a_param` too"


def test_to_flags_maps_every_parameter_of_the_table():
    for param, flag in PARAM_FLAGS.items():
        assert to_flags(f"a `{param}` b") == f"a {flag} b"


def test_param_flags_are_all_options_of_some_command():
    ctx = click.Context(cli)
    flags = {opt for name in cli.list_commands(ctx) for p in cli.get_command(ctx, name).params
             for opt in getattr(p, "opts", [])}
    assert set(PARAM_FLAGS.values()) <= flags


def test_check_outputs_names_force_parameter_when_output_exists(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError) as exc:
        check_outputs([out], inputs=[], force=False)
    assert exc.value.hint is not None and "`force`" in exc.value.hint and "--force" not in exc.value.hint


def test_parse_input_shapes_names_input_shapes_parameter():
    with pytest.raises(ShapeError) as exc:
        parse_input_shapes(["x=1,a"])
    assert exc.value.message.startswith("`input_shapes` x=") and "--input-shape" not in str(exc.value.hint)


def test_check_numbers_names_runs_parameter():
    with pytest.raises(UsageError, match="^`runs` 0: ") as exc:
        check_numbers(runs=0, warmup=0, min_time=0.0)
    assert exc.value.hint == "use `min_time` SECONDS to time for longer"


def test_cli_quantize_existing_output_prints_force_and_o_flags(tmp_path, tiny_onnx):
    out = tmp_path / "q.onnx"
    out.write_bytes(b"keep me")
    result = invoke("quantize", str(tiny_onnx), "--mode", "dynamic", "-o", str(out))
    assert result.exit_code == 3, result.output
    assert "hint: pass --force to overwrite it, or choose another -o path" in result.output
    assert "`" not in result.output and out.read_bytes() == b"keep me"


def test_cli_inspect_bad_input_shape_prints_flag(tiny_onnx):
    result = invoke("inspect", str(tiny_onnx), "--input-shape", "x=1,a")
    assert result.exit_code == 2
    assert "--input-shape x=1,a: dimensions must be whole numbers" in result.output and "`" not in result.output
