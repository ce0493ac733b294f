"""The optimize pipeline's choices that need no model: which variant is best, and committable recipes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edgeml._compat import tomllib
from edgeml.cli import cli
from edgeml.cli.optimize_cmd import render_ranking
from edgeml.pipeline import Recipe, load_recipe
from edgeml.report import Cost, Report, Training, Variant
from edgeml.report.rank import RULE, rank_variants


def _v(name: str, ms: float, size: int, acc: float | None = 0.95, ci: float | None = None,
       target: str = "host") -> Variant:
    cost = Cost(target, "measured", ms, stats={"p50": ms, "p90": ms * 1.1}, ci95=[ms - ci, ms + ci] if ci else None)
    return Variant(name, size_bytes=size, accuracy=acc, costs={target: cost})


def _report(*variants: Variant) -> Report:
    return Report(variants=list(variants), targets=["host"], training=Training(), deploy=variants[-1].name,
                  sources=[])


def test_rank_best_is_the_fastest_not_the_last_benched():
    rep = _report(_v("int8.tflite", 0.010, 20_000), _v("fp32.onnx", 0.030, 60_000), _v("int8.onnx", 0.025, 25_000))
    ranking = rank_variants(rep)
    assert ranking.best == "int8.tflite" and [r.name for r in ranking.rows][1:] == ["int8.onnx", "fp32.onnx"]


def test_rank_budgets_come_before_latency():
    rep = _report(_v("fp32.tflite", 0.010, 60_000), _v("int8.tflite", 0.020, 20_000))
    assert rank_variants(rep, {"max_size": "30KB"}).best == "int8.tflite"
    assert rank_variants(rep, {"max_size": "100KB"}).best == "fp32.tflite"
    assert rank_variants(rep, {"min_accuracy": 0.99}).best == "fp32.tflite"  # nothing meets it: fastest of the rest


def test_rank_overlapping_confidence_intervals_are_a_tie_won_by_the_smaller_file():
    rep = _report(_v("fp32.tflite", 0.0100, 60_000, ci=0.001), _v("int8.tflite", 0.0105, 20_000, ci=0.001))
    assert rank_variants(rep).best == "int8.tflite"
    rep = _report(_v("fp32.tflite", 0.0100, 60_000, ci=0.0001), _v("int8.tflite", 0.0200, 20_000, ci=0.0001))
    assert rank_variants(rep).best == "fp32.tflite"


def test_rank_accuracy_drop_is_against_the_same_format_fp32():
    rep = _report(_v("fp32.tflite", 0.02, 60_000, acc=0.97), _v("int8.tflite", 0.01, 20_000, acc=0.90),
                  _v("pruned_int8.tflite", 0.015, 15_000, acc=0.965))
    ranking = rank_variants(rep, {"max_accuracy_drop": 0.01})
    assert ranking.best == "pruned_int8.tflite"
    assert ranking.rows[-1].name == "int8.tflite" and ranking.rows[-1].budgets == {"max_accuracy_drop": False}


def test_rank_unknown_latency_is_never_best():
    rep = _report(_v("int8.tflite", 0.01, 20_000), Variant("int8.onnx", size_bytes=10_000, accuracy=0.99))
    ranking = rank_variants(rep)
    assert ranking.best == "int8.tflite" and ranking.rows[-1].latency_ms is None


def test_optimize_prints_variants_table_best_first_with_the_rule():
    rep = _report(_v("int8.tflite", 0.00487, 20_000), _v("pruned_int8.onnx", 0.030, 15_000))
    text = render_ranking(rank_variants(rep, {"max_latency_ms": 0.02}))
    lines = text.strip().splitlines()
    assert lines[1].split()[:5] == ["model", "size", "top-1", "latency", "(host)"]
    assert lines[3].startswith("* int8.tflite") and "4.87 µs" in lines[3] and lines[3].endswith("ok")
    assert lines[4].strip().startswith("pruned_int8.onnx") and lines[4].endswith("FAIL")
    assert f"best: int8.tflite: {RULE}" in text


def test_dry_run_recipe_has_paths_relative_to_its_folder(tmp_path, monkeypatch, tiny_tflite):
    proj = tmp_path / "proj"
    (proj / "models").mkdir(parents=True)
    (proj / "models" / "m.tflite").write_bytes(Path(tiny_tflite).read_bytes())
    (proj / "calib.npz").write_bytes(b"")
    monkeypatch.chdir(proj)
    res = CliRunner().invoke(cli, ["optimize", "models/m.tflite", "--calib", "calib.npz?samples=50",
                                   "--eval", "builtin:digits?split=test", "-o", "runs/r1", "--dry-run"])
    assert res.exit_code == 0, res.output
    data = tomllib.loads(res.stdout)
    assert data["model"] == "models/m.tflite" and data["out"] == "runs/r1" and str(tmp_path) not in res.stdout
    assert data["calib"] == "calib.npz?samples=50" and data["eval"] == "builtin:digits?split=test"
    (proj / "recipe.toml").write_text(res.stdout)
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the recipe's paths still resolve against its folder
    r = load_recipe(proj / "recipe.toml")
    assert Path(r.model).resolve() == (proj / "models" / "m.tflite").resolve()
    assert Path(r.out).resolve() == (proj / "runs" / "r1").resolve()
    assert r.calib == str(proj / "calib.npz") + "?samples=50" and r.eval == "builtin:digits?split=test"


def test_recipe_to_toml_rebases_relative_paths_and_keeps_absolute_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    r = Recipe(model="models/m.keras", out="/abs/run", calib="data/c.npz", training="train.json")
    data = tomllib.loads(r.to_toml(base=tmp_path / "cfg"))
    assert data["model"] == "../models/m.keras" and data["out"] == "/abs/run"
    assert data["calib"] == "../data/c.npz" and data["training"] == "../train.json"
    back = load_recipe(_write(tmp_path / "cfg" / "r.toml", r.to_toml(base=tmp_path / "cfg")))
    assert Path(back.model).resolve() == (tmp_path / "models" / "m.keras").resolve()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_report_of_a_run_folder_headlines_the_runs_best_variant(tmp_path):
    import json

    from edgeml.report import build_report

    models = [{"name": n, "path": str(tmp_path / n), "size_bytes": s, "latency_ms": {"p50": ms, "p90": ms}}
              for n, s, ms in (("int8.tflite", 20_000, 0.01), ("int8.onnx", 25_000, 0.03))]
    (tmp_path / "bench_host.json").write_text(json.dumps({"schema": "edgeml.bench/1", "target": "host",
                                                          "models": models}))
    run = {"schema": "edgeml.run/1", "stages": {"bench": {"results": ["bench_host.json"]}}}
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert build_report([tmp_path]).deploy == "int8.onnx"  # no ranking recorded: the last benched
    (tmp_path / "run.json").write_text(json.dumps(run | {"best": {"best": "int8.tflite"}}))
    assert build_report([tmp_path]).deploy == "int8.tflite"


def test_recipe_keys_the_chosen_stages_would_not_read_are_refused(tmp_path, tiny_tflite):
    import pytest

    from edgeml.errors import EdgeMLError

    base = dict(model=str(tiny_tflite), out=str(tmp_path / "r"), calib="builtin:digits?split=train")
    Recipe(**base).validate()
    with pytest.raises(EdgeMLError, match=r"`prune_method`, `epochs`: used by pruning only, and `prune` is 0"):
        Recipe(**base, prune_method="magnitude", epochs=2).validate()
    with pytest.raises(EdgeMLError, match=r"`train`: used by pruning only"):
        Recipe(**base, train="builtin:digits?split=train").validate()
    with pytest.raises(EdgeMLError, match=r"`host` pi@board: no board target"):
        Recipe(**base, host="pi@board").validate()
    # the check stage's budget is checked before any work, not after the whole run
    with pytest.raises(EdgeMLError, match=r"recipe \[budget\]: unknown key 'max_sise'") as exc:
        Recipe(**base, budget={"max_sise": "1MiB"}).validate()
    assert "did you mean 'max_size'?" in (exc.value.hint or "")
    with pytest.raises(EdgeMLError, match=r"percentile applies to max_latency_ms"):
        Recipe(**base, budget={"max_size": "1MiB", "percentile": "p90"}).validate()
    f = tmp_path / "recipe.toml"
    f.write_text(f'model = "{tiny_tflite}"\nout = "r"\ncalib = "builtin:digits"\ntarget = "rpi4"\n')
    with pytest.raises(EdgeMLError, match="unknown key 'target'") as exc:
        load_recipe(f)
    assert "did you mean 'targets'?" in (exc.value.hint or "")
