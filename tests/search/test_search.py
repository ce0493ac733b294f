"""edgeml search: the space, bad input refused before any work, a small search on local Ray, the
sequential fallback, and resuming from the content-hash cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import helpers
from edgeml.cli import cli
from edgeml.errors import EdgeMLError
from edgeml.search.space import Space, Trial, expand, load_space

ONNX_SPACE = """
[prune]
methods = ["none", "magnitude"]
sparsity = [0.5]
[quantize]
modes = ["fp32", "int8"]
[format]
formats = ["onnx"]
"""


@pytest.fixture(scope="module")
def onnx_case(tmp_path_factory):
    """The tiny seeded ONNX CNN, labelled data it scores 100 % on (its own argmax), and a 4-trial space: ONNX
    prune, quantize and top-1 need no TensorFlow, so trials take a second each."""
    import onnxruntime as ort

    d = tmp_path_factory.mktemp("search")
    model = helpers.onnx_cnn(d / "tiny.onnx")
    x = np.random.default_rng(0).normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    y = ort.InferenceSession(str(model)).run(None, {"image": x})[0].argmax(1)
    np.savez(d / "data.npz", image=x, y=y)
    (d / "space.toml").write_text(ONNX_SPACE)
    return model, f"{d / 'data.npz'}", d / "space.toml"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _args(case, out, *extra):
    model, data, space = case
    return ["search", str(model), "--target", "host", "--target", "rpi4", "--calib", data, "--eval", data,
            "--space", str(space), "--runs", "3", "-o", str(out), *extra]


# --- the space ----------------------------------------------------------------------------------------------

def test_search_space_expand_drops_combinations_that_cannot_be_built():
    space = Space(prune_methods=["none", "channel"], sparsity=[0.5], modes=["fp32", "int8", "float16"],
                  calib_methods=["minmax", "entropy"], formats=["tflite", "onnx"])
    trials, dropped = expand(space, "onnx")
    names = [t.name for t in trials]
    assert names == ["fp32.onnx", "int8.onnx", "int8-entropy.onnx"]
    assert dropped["an ONNX source is pruned by magnitude only"] > 0
    assert any("float16" in why for why in dropped)


def test_search_trial_names_are_unique_per_variant():
    a = Trial("magnitude", 0.5, "int8", False, "entropy", "onnx")
    assert a.name == "mag50-int8-pt-entropy.onnx"
    assert Trial("none", 0.0, "fp32", True, "minmax", "tflite").name == "fp32.tflite"


def test_search_load_space_names_the_unknown_key(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text("[quantize]\nmode = [\"int8\"]\n")
    with pytest.raises(EdgeMLError, match="unknown key 'mode'"):
        load_space(p)
    p.write_text("[prune]\nmethods = [\"magnitude\"]\nsparsity = [1.5]\n")
    with pytest.raises(EdgeMLError, match="sparsity 1.5"):
        load_space(p)


def test_search_space_round_trips_through_its_toml(tmp_path):
    space = Space(prune_methods=["none", "magnitude"], sparsity=[0.25], modes=["fp32", "int8"],
                  per_channel=[True, False], calib_methods=["minmax"], max_float_ops=0, formats=["onnx"])
    (tmp_path / "s.toml").write_text(space.to_toml())
    back = load_space(tmp_path / "s.toml")
    assert {k: v for k, v in back.to_dict().items() if k != "origin"} == \
        {k: v for k, v in space.to_dict().items() if k != "origin"}


# --- bad input: refused before any work ------------------------------------------------------------------------

def test_search_refuses_an_unknown_target_before_any_work(onnx_case, tmp_path):
    res = invoke(*_args(onnx_case, tmp_path / "out", "--target", "rpi9"))
    assert res.exit_code == 3 and "--target rpi9: unknown target" in res.output
    assert not (tmp_path / "out").exists()


def test_search_refuses_a_space_with_no_valid_variant(onnx_case, tmp_path):
    model, data, _ = onnx_case
    space = tmp_path / "s.toml"
    space.write_text("[quantize]\nmodes = [\"float16\"]\n[format]\nformats = [\"onnx\"]\n")
    res = invoke("search", str(model), "--calib", data, "--eval", data, "--space", str(space),
                 "-o", str(tmp_path / "o"))
    assert res.exit_code == 3 and "produces no valid variant" in res.output and "ONNX has no float16" in res.output
    assert not (tmp_path / "o").exists()


def test_search_refuses_a_space_a_target_cannot_run(onnx_case, tmp_path):
    res = invoke(*_args(onnx_case, tmp_path / "o", "--target", "coral-usb"))
    assert res.exit_code == 3 and "--target coral-usb can run" in res.output and "runs tflite models" in res.output


def test_search_dry_run_lists_the_trials_and_the_space(onnx_case, tmp_path):
    res = invoke(*_args(onnx_case, tmp_path / "o", "--dry-run"))
    assert res.exit_code == 0, res.output
    for name in ("fp32.onnx", "int8.onnx", "mag50-fp32.onnx", "mag50-int8.onnx"):
        assert name in res.output
    assert "[quantize]" in res.output and not (tmp_path / "o").exists()


# --- running ----------------------------------------------------------------------------------------------------

def test_search_on_local_ray_returns_the_front_per_target_and_the_best(onnx_case, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra edgeml-toolchain[ray]")
    out = tmp_path / "ray"
    res = invoke(*_args(onnx_case, out, "--num-cpus", "2", "--min-accuracy", "0.9", "--json"))
    assert res.exit_code == 0, res.output
    m = json.loads(res.output[res.output.index("{"):])
    assert m["executor"]["kind"] == "ray" and "local Ray (2 CPUs" in m["executor"]["describe"]
    assert m["counts"]["built"] == 4 and m["counts"]["failed"] == 0
    assert set(m["fronts"]) == {"host", "rpi4"}
    for target, front in m["fronts"].items():
        assert front, target
        kinds = {p["kind"] for p in front}
        assert kinds == ({"measured"} if target == "host" else {k for k in kinds if k.startswith("estimated")})
        names = [p["name"] for p in front]
        assert m["best"][target] in names  # the best within the budgets is on the front
        best = next(p for p in front if p["name"] == m["best"][target])
        assert best["accuracy"] >= 0.9
    fp32 = json.loads((out / "trials" / "fp32-onnx" / "trial.json").read_text())
    assert fp32["accuracy"] == 1.0  # the labels are its own argmax
    html = (out / "report.html").read_text()
    assert html.count("Accuracy vs latency on") == 2 or "plots need matplotlib" in html


def test_search_runs_sequentially_and_says_so_when_ray_is_missing(onnx_case, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    from edgeml.search.runner import SearchConfig, search

    model, data, space = onnx_case
    said: list[str] = []
    cfg = SearchConfig(model=str(model), out=str(tmp_path / "seq"), targets=["host"], calib=data, eval=data,
                       space=str(space), runs=3)
    res = search(cfg, progress=said.append)
    assert any("Ray is not installed" in s and "one after another" in s for s in said)
    assert res.manifest["executor"]["kind"] == "sequential" and res.counts["built"] == 4
    with pytest.raises(EdgeMLError, match="Ray is not installed"):
        search(SearchConfig(**{**cfg.__dict__, "executor": "ray"}))


def test_search_resumes_from_the_cache_after_an_interruption(onnx_case, tmp_path, monkeypatch):
    from edgeml.search import trial as trial_mod
    from edgeml.search.runner import SearchConfig, search

    model, data, space = onnx_case
    cfg = SearchConfig(model=str(model), out=str(tmp_path / "r"), targets=["host", "rpi4"], calib=data, eval=data,
                       space=str(space), runs=3, executor="sequential")
    real = trial_mod.build_task
    calls: list[str] = []

    def interrupted(trial, name, src, ctx):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third build
        calls.append(name)
        return real(trial, name, src, ctx)

    monkeypatch.setattr(trial_mod, "build_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(cfg)
    monkeypatch.setattr(trial_mod, "build_task", real)
    res = search(cfg)
    assert res.counts == dict(res.counts, built=2, cached=2, pruned=0, prune_cached=1)
    assert calls == ["fp32.onnx", "int8.onnx"] and res.manifest["build_order"] == ["mag50-fp32.onnx", "mag50-int8.onnx"]
    again = search(cfg)
    assert again.counts["built"] == 0 and again.counts["cached"] == 4 and again.fronts == res.fronts
    # an edited artifact is not trusted: that trial alone is rebuilt
    victim = Path(cfg.out) / "trials" / "int8-onnx" / "int8.onnx"
    victim.write_bytes(victim.read_bytes() + b"\0")
    third = search(cfg)
    assert third.counts["built"] == 1 and third.manifest["build_order"] == ["int8.onnx"]


def test_search_exits_1_when_no_variant_meets_the_budgets(onnx_case, tmp_path):
    res = invoke(*_args(onnx_case, tmp_path / "b", "--executor", "sequential", "--max-size", "10B"))
    assert res.exit_code == 1, res.output
    assert "no variant meets the budgets on host" in res.output and "closest:" in res.output


def test_search_measures_a_board_target_on_the_fleet(onnx_case, board, tmp_path):
    pytest.importorskip("edgeml.fleet", reason="the board fleet (edgeml.fleet, issue 23 item 1) is not in this tree")
    inv = tmp_path / "fleet.toml"  # the loopback board stands in for a Pi: its numbers are x86, in a test only
    inv.write_text(f'[[board]]\nname = "pi-a"\nhost = "{board.host}"\ntarget = "rpi4"\nssh_config = "{board.config}"\n'
                   f'python = "{board.python}"\nconnect_timeout = 5\n')
    out = tmp_path / "f"
    res = invoke(*_args(onnx_case, out, "--executor", "sequential", "--fleet", str(inv), "--json"))
    assert res.exit_code == 0, res.output
    m = json.loads(res.output[res.output.index("{"):])
    assert m["plan"]["boards"] == {"rpi4": ["pi-a"]}
    assert {p["kind"] for p in m["fronts"]["rpi4"]} == {"measured"}
    rec = json.loads((out / "trials" / "int8-onnx" / "trial.json").read_text())
    assert rec["stages"]["cost:rpi4"]["board"] == "pi-a"
    again = invoke(*_args(onnx_case, out, "--executor", "sequential", "--fleet", str(inv), "--json"))
    assert json.loads(again.output[again.output.index("{"):])["fronts"] == m["fronts"]  # cached, not re-measured


def test_search_refuses_missing_data_before_any_work(onnx_case, tmp_path):
    model, data, space = onnx_case
    res = invoke("search", str(model), "--calib", data, "--eval", str(tmp_path / "nope.npz"), "--space", str(space),
                 "-o", str(tmp_path / "o"))
    assert res.exit_code == 3 and "--eval" in res.output and "not found" in res.output
    assert not (tmp_path / "o").exists()


def test_search_build_refuses_a_variant_over_the_float_fallback_budget(tmp_path, monkeypatch):
    """A quantized variant that leaves more ops in float than [quantize] max_float_ops is a failed trial,
    with the ops named (the quantizer is replaced: only the budget logic is under test)."""
    import importlib

    from edgeml.search.trial import build_task

    quantize_pkg = importlib.import_module("edgeml.quantize")  # the package (edgeml.quantize is the API function)

    class Fake:
        float_ops = ["SIN", "COS"]

        def to_dict(self):
            return {"float_ops": self.float_ops}

    def fake_quantize(path, *, options, **kw):  # the search passes a QuantizeOptions
        Path(options.out).write_bytes(b"model")
        return Fake()

    monkeypatch.setattr(quantize_pkg, "quantize", fake_quantize)
    trial = {"mode": "int8", "format": "tflite", "per_channel": True, "calib_method": "minmax"}
    src = {"name": "m.keras", "data": b"x"}
    res = build_task(trial, "int8.tflite", src, {"calib": "c.npz", "max_float_ops": 1})
    assert res["known"] and "2 op(s) stay in float (SIN, COS)" in res["error"] and "max_float_ops = 1" in res["error"]
    ok = build_task(trial, "int8.tflite", src, {"calib": "c.npz", "max_float_ops": 2})
    assert "error" not in ok and ok["files"] == {"int8.tflite": b"model"}


def test_search_space_refuses_keys_its_choices_never_read(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text('[prune]\nmethods = ["none"]\nsparsity = [0.5]\n')
    with pytest.raises(EdgeMLError, match=r"sparsity \[0.5\] applies to pruning methods"):
        load_space(p)
    p.write_text('[quantize]\nmodes = ["fp32", "float16"]\nper_channel = [false]\n')
    with pytest.raises(EdgeMLError, match="per_channel apply to int8 and int16x8 modes"):
        load_space(p)
    p.write_text('[quantize]\nmode = ["int8"]\n')
    with pytest.raises(EdgeMLError) as exc:
        load_space(p)
    assert "did you mean 'modes'?" in (exc.value.hint or "")
    for space in (Space(), Space(modes=["fp32", "float16"])):  # what --dry-run writes loads back
        p.write_text(space.to_toml())
        back = load_space(p)
        assert back.prune_methods == space.prune_methods and back.modes == space.modes


def test_search_refuses_fine_tuning_options_when_no_variant_is_pruned(onnx_case, tmp_path):
    model, data, _ = onnx_case
    space = tmp_path / "s.toml"
    space.write_text('[prune]\nmethods = ["none"]\n[format]\nformats = ["onnx"]\n')
    res = invoke("search", str(model), "--calib", data, "--eval", data, "--space", str(space), "--train", data,
                 "--epochs", "2", "-o", str(tmp_path / "o"), "--dry-run")
    assert res.exit_code == 2 and "--train and --epochs: used to fine-tune pruned variants" in res.output
    res = invoke("search", str(model), "--calib", data, "--eval", data, "--space", str(space),
                 "-o", str(tmp_path / "o"), "--dry-run")
    assert res.exit_code == 0, res.output
