"""The CI kit in examples/github-actions uses real `edgeml check` flags and a valid budget file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeml.check import load_budgets
from edgeml.cli.check_cmd import check_cmd

KIT = Path(__file__).resolve().parents[2] / "examples" / "github-actions"


def _check_invocations(text: str) -> list[str]:
    """Each `edgeml check ...` command line, backslash continuations joined."""
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.split("edgeml check", 1)[1] for line in text.splitlines()
            if re.search(r"^\s*edgeml check\b", line)]


@pytest.mark.parametrize("name", ["model-budget.yml", "action.yml"])
def test_ci_kit_calls_edgeml_check_with_real_flags(name):
    calls = _check_invocations((KIT / name).read_text())
    assert calls, f"{name} runs no edgeml check"
    known = {opt for p in check_cmd.params for opt in p.opts}
    for call in calls:
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", call))
        assert {"--junit", "--markdown"} <= flags and flags <= known, (name, flags - known)


def test_ci_kit_budget_file_loads():
    budgets = load_budgets(KIT / "budgets.toml")
    assert len(budgets) == 2 and all(Path(b.model).name.endswith(".tflite") for b in budgets)
    assert budgets[1].baseline and budgets[0].percentile == "p90"
