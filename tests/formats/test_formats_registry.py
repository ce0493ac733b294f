"""The format registry (edgeml.formats.registry), detection by content, and the session openers."""

from __future__ import annotations

import pytest

from edgeml.errors import ShapeError
from edgeml.formats.detect import ModelFormat, detect_format
from edgeml.formats.registry import HANDLERS, handler


def test_every_format_has_a_handler_whose_reader_exists():
    import importlib

    assert set(HANDLERS) == set(ModelFormat)
    for fmt, h in HANDLERS.items():
        assert h.format is fmt
        assert callable(importlib.import_module(f"edgeml.formats.{h.reader}").inspect)


def test_handlers_say_which_formats_need_tensorflow():
    assert [f.value for f, h in HANDLERS.items() if h.needs_tensorflow] == ["keras", "h5", "savedmodel"]
    assert not handler(ModelFormat.ONNX).needs_tensorflow


def test_savedmodel_refuses_input_shapes_before_loading(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert detect_format(tmp_path) is ModelFormat.SAVEDMODEL
    with pytest.raises(ShapeError, match="`input_shapes` is not supported for SavedModel directories"):
        handler(ModelFormat.SAVEDMODEL).inspect(tmp_path, input_shapes={"x": (1, 3)})


def test_inspect_goes_through_the_handler(tiny_onnx):
    from edgeml.artifact import ModelArtifact

    art = ModelArtifact.open(tiny_onnx)
    assert art.inspect() == handler(ModelFormat.ONNX).inspect(tiny_onnx)


def test_every_format_has_a_session_opener():
    from edgeml.runtimes.session import OPENERS

    assert set(OPENERS) == {f.value for f in ModelFormat}


def test_open_session_takes_a_path_or_an_artifact(tiny_onnx):
    from edgeml.artifact import ModelArtifact
    from edgeml.runtimes.session import open_session

    a, b = open_session(tiny_onnx), open_session(ModelArtifact.open(tiny_onnx))
    assert type(a).__name__ == type(b).__name__ == "OrtSession" and a.inputs == b.inputs


@pytest.mark.parametrize("cls, code", [("UsageError", 2), ("BudgetError", 2), ("CheckFailed", 1), ("DataError", 3),
                                       ("ShapeError", 3), ("ConversionError", 3), ("VerificationError", 3)])
def test_error_catalogue_exit_codes(cls, code):
    import edgeml.errors as errors

    exc = getattr(errors, cls)("m", hint="h")
    assert isinstance(exc, errors.EdgeMLError) and exc.exit_code == code and exc.hint == "h"


def test_cli_usage_error_from_the_library_exits_2(tmp_path, tiny_onnx):
    from click.testing import CliRunner

    from edgeml.cli import cli

    res = CliRunner().invoke(cli, ["prune", str(tiny_onnx), "-o", str(tmp_path / "p.onnx"), "--sparsity", "0.5",
                                   "--exclude", "("])
    assert res.exit_code == 2 and "not a valid regular expression" in res.output and "Traceback" not in res.output


def test_registry_conversions_name_routes_that_convert_runs():
    from edgeml.convert.routes import ROUTES

    for h in HANDLERS.values():
        for to, name in h.converts_to.items():
            assert name in ROUTES and ROUTES[name].to == to, (h.format, to, name)
        assert not set(h.converts_to) & set(h.refusals)


def test_registry_conversion_refuses_tflite_to_tflite_with_its_hint(tmp_path):
    from edgeml.errors import EdgeMLError

    with pytest.raises(EdgeMLError, match="already TFLite") as err:
        handler(ModelFormat.TFLITE).conversion("tflite", tmp_path / "m.tflite")
    assert "`edgeml.quantize(MODEL)`" in (err.value.hint or "")
    from edgeml.cli.flags import to_flags

    assert to_flags(err.value.hint or "") == "use --to onnx, or edgeml quantize MODEL for int8"
