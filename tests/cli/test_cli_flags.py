"""Library messages name parameters (`calib`, `input_shapes`); the CLI prints the flags (--calib, --input-shape)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import edgeml
from edgeml._io import check_outputs
from edgeml.bench.harness import check_numbers
from edgeml.cli import cli
from edgeml.cli.flags import BOOL_FLAGS, PARAM_FLAGS, PHRASES, to_flags
from edgeml.errors import EdgeMLError, OutputExistsError, ShapeError, UsageError
from edgeml.formats.shapes import parse_input_shapes
from edgeml.targets.remote import SSHTarget


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
    flags = _cli_flags()
    assert set(PARAM_FLAGS.values()) - {"-o"} <= flags
    assert set(BOOL_FLAGS.values()) <= flags
    assert {f for v in PHRASES.values() for f in _FLAG.findall(v)} <= flags
    assert any("-o" in p.opts for name in cli.list_commands(ctx) for p in cli.get_command(ctx, name).params)


def test_to_flags_renders_values_and_booleans():
    assert to_flags('pass `calib=SPEC` or `mode="dynamic"`') == "pass --calib SPEC or --mode dynamic"
    assert to_flags("`simplify=False`, `per_channel=False`, `strict=True`") == "--no-simplify, --per-tensor, --strict"
    assert to_flags("`per_channel=True`") == "--per-channel"
    assert to_flags("the result as JSON (`to_dict()`), its traceback (`traceback.print_exc()`)") == \
        "the result as JSON (--json), its traceback (--debug)"
    assert to_flags("`not_a_param=1` and `strict=False`") == "`not_a_param=1` and `strict=False`"


def test_to_flags_renders_a_suggested_call_as_a_command_line():
    assert to_flags('convert first: `edgeml.convert(MODEL, to="tflite", out="model.tflite")`') == \
        "convert first: edgeml convert MODEL --to tflite -o model.tflite"
    assert to_flags("`edgeml.convert('my dir/m.onnx', simplify=False)`") == \
        "edgeml convert 'my dir/m.onnx' --no-simplify"
    assert to_flags('`edgeml.bench(MODEL, target=["host", "rpi4"], host="H")`') == \
        "edgeml bench MODEL --target host --target rpi4 --host H"
    assert to_flags("`edgeml.compile(MODEL, plan=True)` and `edgeml.run_pipeline(...)`") == \
        "edgeml compile MODEL --plan and edgeml run ..."
    assert to_flags("`edgeml.convert(MODEL, nonsense=1)` `edgeml.convert(`") == \
        "`edgeml.convert(MODEL, nonsense=1)` `edgeml.convert(`"


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


# --- guard: library text names parameters, never CLI flags ---------------------------------------------------

_NOT_LIBRARY_TEXT = ("cli/", "targets/device_runner.py")  # the CLI may name flags; the board runner is standalone
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _cli_flags() -> set[str]:
    ctx = click.Context(cli)
    params = list(cli.params) + [p for name in cli.list_commands(ctx) for p in cli.get_command(ctx, name).params]
    group = cli.get_command(ctx, "data")
    params += [p for sub in getattr(group, "commands", {}).values() for p in sub.params]
    return {"--help"} | {o for p in params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
                         if o.startswith("--")}


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def test_library_strings_name_no_cli_flags():
    flags = _cli_flags()
    found = [f"{rel}:{line}: {text!r}" for rel, line, text in _library_texts()
             if any(f in flags for f in _FLAG.findall(text))]
    assert not found, "library text names CLI flags (write `param`, `param=value` or `edgeml.stage(...)`):\n" + \
        "\n".join(found)


def _library_texts():
    """Every string literal of the library (docstrings left out), each f-string field written as the name ``X``."""
    root = Path(edgeml.__file__).parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(_NOT_LIBRARY_TEXT):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                yield rel, node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                yield rel, node.lineno, node.value


def test_library_markup_all_renders_to_flags():
    """A `name=value` or `edgeml.stage(...)` the CLI cannot map would reach the shell user as Python."""
    from edgeml.cli.flags import _ASSIGN, _CALL, _MARKUP, render

    bad = [f"{rel}:{line}: `{m}`" for rel, line, text in _library_texts() for m in _MARKUP.findall(text)
           if (_CALL.fullmatch(m) or _ASSIGN.fullmatch(m)) and render(m) is None]
    assert not bad, "\n".join(bad)


# --- the same failure, through the library (parameters) and through the CLI (flags) ---------------------------

def test_bench_hint_suggests_a_convert_call_and_the_cli_a_command_line(keras2_h5):
    with pytest.raises(EdgeMLError) as exc:
        edgeml.bench([keras2_h5], target="host")
    assert f"`edgeml.convert({str(keras2_h5)!r}, to='tflite', out=\"model.tflite\")`" in str(exc.value.hint)
    assert "--" not in str(exc.value.hint)
    result = invoke("bench", str(keras2_h5))
    assert result.exit_code == 3
    assert f"hint: convert first: edgeml convert {keras2_h5} --to tflite -o model.tflite" in result.output


def test_bench_estimate_note_names_host_parameter_and_the_cli_prints_the_flag(tiny_onnx):
    lines: list[str] = []
    r = edgeml.bench([tiny_onnx], target="rpi4", progress=lines.append)
    assert r.notes == ['no board measured: estimated for rpi4 (add `host="USER@BOARD"` to measure)']
    assert lines[0] == "no `host` given: estimating for rpi4 (no board measured)"
    result = invoke("bench", str(tiny_onnx), "--target", "rpi4")
    assert result.exit_code == 0, result.output
    assert "no --host given: estimating for rpi4 (no board measured)" in result.output and "`" not in result.output


def test_prune_onnx_warning_names_train_parameter_and_the_cli_the_flag(tiny_onnx, tmp_path):
    r = edgeml.prune(tiny_onnx, sparsity=0.5, out=tmp_path / "p.onnx")
    assert r.warnings == ["ONNX models are pruned one-shot (no fine-tuning); accuracy may drop: prune the Keras "
                          "model with `train` to fine-tune"]
    result = invoke("prune", str(tiny_onnx), "--sparsity", "0.5", "-o", str(tmp_path / "p2.onnx"))
    assert result.exit_code == 0, result.output
    assert "warning: ONNX models are pruned one-shot (no fine-tuning); accuracy may drop: prune the Keras model " \
        "with --train to fine-tune" in result.output


def test_bad_host_names_the_host_parameter_and_the_cli_the_flag(tiny_onnx):
    with pytest.raises(EdgeMLError) as exc:
        SSHTarget.parse("pi@a b")
    assert (exc.value.message, exc.value.hint) == ("`host` pi@a b: expected [USER@]HOST[:PORT]",
                                                   'e.g. `host="pi@192.168.1.20:22"`')
    result = invoke("bench", str(tiny_onnx), "--host", "pi@a b")
    assert result.exit_code == 3
    assert "error: --host pi@a b: expected [USER@]HOST[:PORT]\nhint: e.g. --host pi@192.168.1.20:22" in result.output


def test_onnx_to_tflite_without_calib_names_parameters_and_the_cli_flags(tiny_onnx, tmp_path):
    with pytest.raises(EdgeMLError) as exc:
        edgeml.quantize(tiny_onnx, mode="int8", format="tflite", out=tmp_path / "q.tflite")
    assert exc.value.message.startswith("`mode` int8 from an ONNX source") and exc.value.hint == "pass `calib=SPEC`"
    result = invoke("quantize", str(tiny_onnx), "--format", "tflite", "-o", str(tmp_path / "q.tflite"))
    assert result.exit_code == 3
    assert "error: --mode int8 from an ONNX source" in result.output and "hint: pass --calib SPEC" in result.output


def test_per_tensor_refusal_names_the_boolean_and_the_cli_its_flag(tiny_tflite, tmp_path):
    with pytest.raises(EdgeMLError) as exc:
        edgeml.quantize(tiny_tflite, mode="float16", per_channel=False, out=tmp_path / "q.tflite")
    assert exc.value.message.startswith("`per_channel=False` is not available") and "--" not in exc.value.hint
    result = invoke("quantize", str(tiny_tflite), "--mode", "float16", "--per-tensor", "-o", str(tmp_path / "q.tflite"))
    assert result.exit_code == 3
    assert "error: --per-tensor is not available for this mode from a .tflite\nhint: drop --per-tensor" in result.output
