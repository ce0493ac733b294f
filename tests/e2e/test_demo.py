"""edgeml demo / optimize / run: the whole pipeline end to end (short training), its manifest and re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeml.cli import cli
from edgeml.errors import EdgeMLError
from edgeml.pipeline import load_recipe, run_pipeline

TARGETS = ["host", "rpi4", "coral-usb", "jetson-orin-nano"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--epochs", "4", "--prune-epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_demo_runs_every_stage_and_labels_estimates(demo):
    out, s = demo
    t = s["training"]
    assert t["flops"] == 3 * 2 * t["forward_macs"] * t["samples"] * 4
    names = set(s["variants"])
    assert {f"{v}.{f}" for v in ("fp32", "pruned", "int8", "pruned_int8") for f in ("tflite", "onnx")} <= names
    rows = {r["target"]: r for r in s["asymmetry"]}
    assert list(rows) == TARGETS
    assert rows["host"]["kind"] == "measured"
    assert all(rows[t]["kind"] == "estimated, extrapolated" for t in TARGETS[1:])  # a 0.15 M-MAC model: flagged
    best = json.loads((out / "run.json").read_text())["best"]
    assert s["deploy"] == best["best"] == best["variants"][0]["name"]  # the best variant, not the last benched
    assert all(v is True for v in best["variants"][0]["budgets"].values())
    pruned, fp32 = s["variants"]["pruned_int8.tflite"], s["variants"]["fp32.tflite"]
    assert pruned["macs"] < 0.6 * fp32["macs"] and pruned["size_bytes"] < fp32["size_bytes"]
    deployed = s["variants"][s["deploy"]]
    # + fine-tune
    assert rows["host"]["break_even_flops"] == pytest.approx(t["flops"] / (2 * deployed["macs"]), rel=0.2)
    assert s["check"]["passed"] and {i["budget"].split(" ")[0] for i in s["check"]["items"]} == \
        {"max_size", "max_latency_ms", "min_accuracy"}
    html = (out / "report.html").read_text()
    assert "<svg" in html and "estimated" in html and "<metadata>" not in html
    assert not any(f'{a}="http' in html for a in ("src", "href"))  # self-contained: nothing to fetch


def test_manifest_records_hashes_versions_and_skips_unchanged_stages(demo):
    out, _ = demo
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["schema"] == "edgeml.run/1"
    assert set(manifest["versions"]) >= {"edgeml", "tensorflow", "onnx", "onnxruntime", "ai-edge-litert"}
    assert all(len(h) == 64 for h in manifest["inputs"].values())
    assert manifest["stages"]["quantize"]["outputs"]["pruned_int8.tflite"]
    messages: list[str] = []
    recipe = load_recipe(_recipe(out, manifest["config"]))
    res = run_pipeline(recipe, progress=messages.append)
    stages = res.manifest["stages"]
    assert all(stages[s]["status"] == "skipped" for s in ("prune", "convert", "quantize", "bench"))
    assert any("up to date" in m for m in messages)
    recipe.runs = 7  # a bench option changed: only bench runs again
    recipe.train_power_w = 100.0  # report-only: energy break-even where the target's power is known
    res = run_pipeline(recipe)
    assert res.manifest["stages"]["bench"]["status"] == "ran" and res.manifest["stages"]["quantize"]["status"] == \
        "skipped"
    rows = {r["target"]: r for r in res.report.asymmetry()}
    assert rows["rpi4"]["break_even_energy"] > 0 and rows["host"]["break_even_energy"] is None


def _recipe(out: Path, config: dict) -> Path:
    from edgeml.pipeline import Recipe

    path = out.parent / "recipe.toml"
    path.write_text(Recipe(**config).to_toml())
    return path


def test_run_dry_run_prints_the_recipe(demo, tmp_path):
    out, _ = demo
    recipe = _recipe(out, json.loads((out / "run.json").read_text())["config"])
    res = CliRunner().invoke(cli, ["run", str(recipe), "--dry-run"])
    assert res.exit_code == 0 and 'prune_method = "channel"' in res.stdout and "[budget]" in res.stdout
    res = CliRunner().invoke(cli, ["optimize", str(out / "digits_cnn.keras"), "--calib", "builtin:digits",
                                   "-o", str(tmp_path / "r"), "--target", "rpi4", "--dry-run"])
    assert res.exit_code == 0 and 'targets = ["rpi4"]' in res.stdout
    assert not (tmp_path / "r").exists()


def test_bad_recipes_are_refused(tmp_path, tiny_tflite):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'model = "{tiny_tflite}"\nout = "r"\ncalib = "builtin:digits"\nprunee = 0.5\n')
    res = CliRunner().invoke(cli, ["run", str(bad)])
    assert res.exit_code == 2 and "unknown key 'prunee'" in res.output and "Traceback" not in res.output
    with pytest.raises(EdgeMLError, match="needs `train`"):
        from edgeml.pipeline import Recipe

        run_pipeline(Recipe(model=str(tiny_tflite), out=str(tmp_path / "r"), calib="builtin:digits", prune=0.5))
    res = CliRunner().invoke(cli, ["optimize", str(tmp_path / "missing.keras"), "--calib", "builtin:digits",
                                   "-o", str(tmp_path / "r2")])
    assert res.exit_code == 3 and "model not found" in res.output


def test_optimize_a_tflite_model_with_a_failing_budget_exits_1(tmp_path, digits_keras):
    from edgeml.convert import convert

    src = tmp_path / "m.tflite"
    convert(digits_keras, to="tflite", out=src)
    res = CliRunner().invoke(cli, ["optimize", str(src), "--calib", "builtin:digits?split=train&samples=50",
                                   "--eval", "builtin:digits?split=test", "-o", str(tmp_path / "run"), "--runs", "5",
                                   "--max-size", "1KiB"])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.stdout and "budget check failed" in res.output
    check = json.loads((tmp_path / "run" / "check.json").read_text())
    best = json.loads((tmp_path / "run" / "run.json").read_text())["best"]["best"]
    assert not check["passed"] and Path(check["items"][0]["model"]).name == best  # the headlined variant is gated
    assert f"* {best}" in res.stdout and "best: " in res.stdout
