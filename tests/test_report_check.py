"""edgeml report (asymmetry, variants, self-contained HTML) and edgeml check (CI budget gates)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeml.check import BudgetError, load_budgets, parse_size
from edgeml.cli import cli
from edgeml.errors import EdgeMLError
from edgeml.report import build_report, write_report

TEST = "builtin:digits?split=test"


@pytest.fixture(scope="module")
def results(tmp_path_factory, digits_keras):
    """Real bench results: the digits model measured on this machine, and estimated for rpi4."""
    from edgeml.bench.harness import bench
    from edgeml.convert import convert

    d = tmp_path_factory.mktemp("results")
    model = convert(digits_keras, to="tflite", out=d / "digits.tflite").output
    (d / "host.json").write_text(json.dumps(bench([model], runs=10, data=TEST).to_dict()))
    (d / "rpi4.json").write_text(json.dumps(bench([model], target="rpi4").to_dict()))
    return d, Path(model)


def test_report_break_even_from_user_training_cost(results):
    d, model = results
    r = build_report([d / "host.json", d / "rpi4.json"], train_gpu_hours=2, train_power_w=300)
    rows = {row["target"]: row for row in r.asymmetry()}
    assert rows["host"]["kind"] == "measured" and rows["rpi4"]["kind"].startswith("estimated")
    rpi = rows["rpi4"]
    assert rpi["break_even_time"] == pytest.approx(7200 / (rpi["latency_ms"] / 1000))
    assert rpi["break_even_energy"] == pytest.approx(2 * 3600 * 300 / (rpi["energy_mj"] / 1000))
    assert rows["host"]["break_even_energy"] is None  # no power model for this machine: not invented
    r = build_report([d / "host.json"], train_samples=1000, epochs=10)
    v = r.variants[0]
    assert r.training.flops == 3 * v.flops * 1000 * 10 and r.asymmetry()[0]["break_even_flops"] == 30000
    assert v.accuracy > 0.5


@pytest.mark.parametrize("suffix", [".html", ".md", ".json"])
def test_report_files(results, tmp_path, suffix):
    d, _ = results
    out = write_report(build_report([d / "host.json", d / "rpi4.json"], train_flops=1e12), tmp_path / f"r{suffix}")
    text = out.read_text()
    if suffix == ".json":
        data = json.loads(text)
        assert data["schema"] == "edgeml.report/1" and data["asymmetry"][1]["kind"].startswith("estimated")
    elif suffix == ".md":
        assert "| target | kind |" in text and "estimated" in text
    else:
        assert text.startswith("<!doctype html>") and "<svg" in text and "<link" not in text


def test_report_bad_input(results, tmp_path):
    d, _ = results
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "y.json").write_text('{"schema": "other/1"}')
    for path, msg in ((tmp_path / "x.json", "not JSON"), (tmp_path / "y.json", "not an edgeml result"),
                      (tmp_path / "none.json", "no such results file")):
        res = CliRunner().invoke(cli, ["report", str(path)])
        assert res.exit_code == 3 and msg in res.output and "Traceback" not in res.output
    with pytest.raises(EdgeMLError, match="`deploy` nope"):
        build_report([d / "host.json"], deploy="nope")
    with pytest.raises(EdgeMLError, match=".html, .md or .json"):
        write_report(build_report([d / "host.json"]), tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists()


def test_report_cli_table(results, tmp_path):
    d, _ = results
    res = CliRunner().invoke(cli, ["report", str(d / "host.json"), str(d / "rpi4.json"), "--train-flops", "1e12",
                                   "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "the cheap-inference asymmetry" in res.stdout and "estimated" in res.stdout
    assert (tmp_path / "r.html").exists()


@pytest.mark.parametrize("text, n", [("300KiB", 307200), ("300KB", 300000), ("1.5MB", 1500000), ("2MiB", 2097152),
                                     ("512", 512), (1024, 1024)])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["12 parsecs", "-3KB", "KB", "0"])
def test_parse_size_rejects(bad):
    with pytest.raises(BudgetError):
        parse_size(bad)


def test_check_size_pass_and_fail_exit_codes(results, tmp_path):
    _, model = results
    size = model.stat().st_size
    ok = CliRunner().invoke(cli, ["check", str(model), "--max-size", str(size)])
    assert ok.exit_code == 0 and "pass" in ok.stdout
    junit, md = tmp_path / "c.xml", tmp_path / "c.md"
    bad = CliRunner().invoke(cli, ["check", str(model), "--max-size", f"{size - 1}", "--junit", str(junit),
                                   "--markdown", str(md)], env={"GITHUB_ACTIONS": "true"})
    assert bad.exit_code == 1 and "FAIL" in bad.stdout
    assert "::error file=" in bad.stdout and "max_size" in bad.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    assert "measured" in suite.find("testcase/failure").get("message")
    assert "❌" in md.read_text()


def test_check_latency_repeats_and_reports_noise(results):
    _, model = results
    res = CliRunner().invoke(cli, ["check", str(model), "--max-latency-ms", "1000", "--percentile", "p90",
                                   "--repeat", "2", "--runs", "5", "--json"])
    assert res.exit_code == 0, res.output
    item = json.loads(res.stdout)["items"][0]
    assert item["kind"] == "measured" and "median of 2 runs" in item["detail"] and "spread" in item["detail"]
    res = CliRunner().invoke(cli, ["check", str(model), "--max-latency-ms", "1e-6", "--target", "rpi4", "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["items"][0]["kind"] == "estimated"


def test_check_accuracy_and_drop_against_a_baseline(results, digits_keras):
    _, model = results
    res = CliRunner().invoke(cli, ["check", str(model), "--min-accuracy", "0.5", "--max-accuracy-drop", "0.01",
                                   "--baseline", str(digits_keras), "--data", TEST, "--json"])
    assert res.exit_code == 0, res.output
    items = {i["budget"]: i for i in json.loads(res.stdout)["items"]}
    assert items["max_accuracy_drop"]["measured"] <= 1 / 360  # a float conversion loses nothing


def test_budget_file_and_pyproject(results, tmp_path, monkeypatch):
    _, model = results
    f = tmp_path / "budgets.toml"
    f.write_text(f'[defaults]\ntarget = "host"\n\n[[budget]]\nmodel = "{model}"\nmax_size = "1MiB"\n\n'
                 f'[[budget]]\nmodel = "{model}"\nmax_size = 10\n')
    res = CliRunner().invoke(cli, ["check", "--budget", str(f), "--json"])
    assert res.exit_code == 1 and [i["passed"] for i in json.loads(res.stdout)["items"]] == [True, False]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f'[[tool.edgeml.budget]]\nmodel = "{model}"\nmax_size = "1MiB"\n')
    res = CliRunner().invoke(cli, ["check"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("body, message", [
    ('[[budget]]\nmodel = "m.tflite"\nmax_sise = "1MB"\n', "unknown key 'max_sise'"),
    ('[[budget]]\nmax_size = "1MB"\n', "missing key 'model'"),
    ('[[budget]]\nmodel = "m.tflite"\nmax_size = "1 parsec"\n', "max_size"),
    ('[[budget]]\nmodel = "m.tflite"\nmin_accuracy = 95\ndata = "x"\n', "is a fraction"),
    ('[[budget]]\nmodel = "m.tflite"\nmax_accuracy_drop = 0.01\ndata = "x"\n', "needs a baseline"),
    ('[[budget]]\nmodel = "m.tflite"\n', "sets no limit"),
    ("[[budget]\n", "not valid TOML"),
])
def test_malformed_budget_file_names_the_problem(tmp_path, body, message):
    f = tmp_path / "b.toml"
    f.write_text(body)
    with pytest.raises(BudgetError, match=message):
        load_budgets(f)
    res = CliRunner().invoke(cli, ["check", "--budget", str(f)])
    assert res.exit_code == 2 and message.split("'")[0] in res.output and "Traceback" not in res.output


def test_check_without_budgets_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["check"])
    assert res.exit_code == 2 and "no budgets" in res.output


def test_accuracy_budget_refuses_unlabelled_data(results, tmp_path):
    import numpy as np

    _, model = results
    np.savez(tmp_path / "x.npz", image=np.zeros((10, 8, 8, 1), np.float32))
    res = CliRunner().invoke(cli, ["check", str(model), "--min-accuracy", "0.5", "--data", str(tmp_path / "x.npz")])
    assert res.exit_code == 3 and "has no labels" in res.output  # not a silent 0 % "FAIL"


@pytest.mark.parametrize("body, message", [
    ('[[budget]]\nmodel = "M"\nmax_size = "1MiB"\npercentile = "p99"\n',
     "percentile applies to max_latency_ms, which this budget does not set"),
    ('[[budget]]\nmodel = "M"\nmax_size = "1MiB"\ntarget = "rpi4"\n', "target applies to max_latency_ms"),
    ('[[budget]]\nmodel = "M"\nmin_accuracy = 0.5\ndata = "x"\nbaseline = "M"\n',
     "baseline applies to max_accuracy_drop"),
    ('[[budget]]\nmodel = "M"\nmax_size = "1MiB"\ndata = "x"\n', "data applies to min_accuracy or max_accuracy_drop"),
])
def test_budget_key_no_limit_reads_is_refused(results, tmp_path, body, message):
    _, model = results
    f = tmp_path / "b.toml"
    body = body.replace('"M"', f'"{model}"')
    f.write_text(body)
    with pytest.raises(BudgetError, match=message):
        load_budgets(f)
    # in [defaults] the same key applies to every budget and may go unused by some
    key_line = body.splitlines()[-1]
    f.write_text(f"[defaults]\n{key_line}\n\n" + body.replace(key_line + "\n", ""))
    assert load_budgets(f)


def test_budget_unknown_key_suggests_the_close_one(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text('[[budget]]\nmodel = "m.tflite"\nmax_latency = 5\n')
    with pytest.raises(BudgetError) as exc:
        load_budgets(f)
    assert "unknown key 'max_latency'" in exc.value.message and "did you mean 'max_latency_ms'?" in exc.value.hint


def test_check_flags_that_shape_no_budget_are_refused(results, tmp_path):
    _, model = results
    res = CliRunner().invoke(cli, ["check", str(model), "--max-size", "1MiB", "--percentile", "p99"])
    assert res.exit_code == 2 and "percentile applies to max_latency_ms" in res.output
    res = CliRunner().invoke(cli, ["check", str(model), "--max-size", "1MiB", "--target", "rpi4"])
    assert res.exit_code == 2 and "target applies to max_latency_ms" in res.output
    f = tmp_path / "b.toml"
    f.write_text(f'[[budget]]\nmodel = "{model}"\nmax_latency_ms = 1000\n')
    # --target used to be dropped for a budget file's budgets: measured on the host, reported as met
    res = CliRunner().invoke(cli, ["check", "--budget", str(f), "--target", "rpi4"])
    assert res.exit_code == 2 and "--target applies to budgets given by flags" in res.output


def test_report_refuses_train_flops_with_samples_and_epochs(results):
    d, _ = results
    # train_samples/epochs used to be dropped silently in favour of train_flops
    with pytest.raises(EdgeMLError, match="`train_flops` is the training cost as given"):
        build_report([d / "host.json"], train_flops=1e12, epochs=3)
    res = CliRunner().invoke(cli, ["report", str(d / "host.json"), "--train-flops", "1e12", "--train-samples", "100",
                                   "--epochs", "3"])
    assert res.exit_code == 2 and "--train-flops is the training cost as given" in res.output


def test_api_check_refuses_a_budget_field_no_limit_reads(results):
    import edgeml
    from edgeml.check import Budget

    _, model = results
    with pytest.raises(BudgetError, match="percentile applies to max_latency_ms"):
        edgeml.check([Budget(model=str(model), max_size=10**6, percentile="p99")])
    assert edgeml.check([Budget(model=str(model), max_size=10**6)]).passed
