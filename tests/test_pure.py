"""Unit tests of pure functions (no model, no runtime): statistics, NNLS, pruning masks, output matching,
the JUnit writer. Each has a hand-computed expectation."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest


# -- statistics (the board runner's, used for every latency figure) ----------------------------------------
def test_percentile_interpolates_between_order_statistics():
    from edgeml.targets.device_runner import percentile

    s = [1.0, 2.0, 3.0, 4.0]
    assert percentile(s, 50) == 2.5 and percentile(s, 0) == 1.0 and percentile(s, 100) == 4.0
    assert percentile(s, 90) == pytest.approx(3.7)
    assert percentile([], 50) is None


def test_stats_of_known_sample():
    from edgeml.targets.device_runner import stats

    st = stats([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (st["n"], st["min"], st["max"], st["mean"], st["p50"]) == (5, 1.0, 5.0, 3.0, 3.0)
    assert st["std"] == pytest.approx(math.sqrt(2.5))  # sample standard deviation
    assert st["throughput_per_s"] == pytest.approx(1000 / 3)
    lo, hi = st["median_ci95"]
    assert lo <= st["p50"] <= hi and 1.0 <= lo and hi <= 5.0


def test_stats_median_ci_narrows_with_more_runs():
    from edgeml.targets.device_runner import stats

    rng = np.random.default_rng(0)
    few = stats(list(rng.normal(10, 1, 20)))["median_ci95"]
    many = stats(list(rng.normal(10, 1, 2000)))["median_ci95"]
    assert many[1] - many[0] < few[1] - few[0]


def test_stats_single_run_has_zero_std():
    from edgeml.targets.device_runner import stats

    st = stats([2.0])
    assert st["std"] == 0.0 and st["median_ci95"] == [2.0, 2.0]


# -- NNLS (refitting target coefficients) ---------------------------------------------------------------------
def test_nnls_recovers_nonnegative_solution_exactly():
    from edgeml.targets.estimate_fit import nnls

    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = nnls(a, a @ np.array([2.0, 3.0]))
    assert x == pytest.approx([2.0, 3.0])


def test_nnls_clamps_a_coefficient_that_least_squares_makes_negative():
    from edgeml.targets.estimate_fit import nnls

    a = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    b = np.array([3.0, 2.0, 1.0])  # least squares: intercept 4, slope -1
    x = nnls(a, b)
    assert (x >= 0).all() and x[1] == 0.0 and x[0] == pytest.approx(2.0)  # the best intercept alone: mean(b)


# -- pruning masks -----------------------------------------------------------------------------------------
def test_layer_masks_remove_the_smallest_fraction_of_each_layer():
    from edgeml.prune.magnitude import masks

    w1 = np.array([[0.1, -5.0], [2.0, -0.2]])
    w2 = np.array([1.0, 2.0, 3.0, 4.0])
    m1, m2 = masks([w1, w2], 0.5, "layer")
    assert m1.tolist() == [[False, True], [True, False]] and m2.tolist() == [False, False, True, True]


def test_global_masks_rank_all_layers_together():
    from edgeml.prune.magnitude import masks

    small = np.array([0.1, 0.2, 0.3, 0.4])
    large = np.array([10.0, 20.0, 30.0, 40.0])
    m_small, m_large = masks([small, large], 0.5, "global")
    assert not m_small.any() and m_large.all()  # the four smallest weights overall are all in one layer


def test_masks_keep_everything_at_zero_sparsity_and_ties_stably():
    from edgeml.prune.magnitude import masks

    w = np.array([1.0, 1.0, 1.0, 1.0])
    assert masks([w], 0.0, "layer")[0].all()
    assert masks([w], 0.5, "layer")[0].tolist() == [False, False, True, True]  # stable: the first ties go


# -- output matching (convert verification) -------------------------------------------------------------------
@pytest.mark.parametrize("ref, test, want", [
    (["b", "a"], ["a", "b"], [("b", "b"), ("a", "a")]),  # same names: by name
    (["logits", "boxes"], ["output_1", "output_0"], [("logits", "output_0"), ("boxes", "output_1")]),
    (["y"], ["Identity"], [("y", "Identity")]),  # different names: by order
    (["output_10", "output_2"], ["p", "q"], [("output_2", "p"), ("output_10", "q")]),  # numeric, not lexical
])
def test_match_outputs_pairs_by_name_else_by_signature_order(ref, test, want):
    from edgeml.convert.verify import match_outputs

    assert match_outputs(ref, test) == want


# -- the JUnit writer (edgeml check --junit) -----------------------------------------------------------------------
def test_junit_xml_has_one_case_per_budget_and_failures_counted():
    from edgeml.check import CheckResult, Item, junit_xml

    result = CheckResult([Item("dir/m.tflite", "max_size", 1000, 1200, "bytes", False, "too big"),
                          Item("dir/m.tflite", "max_latency_ms (p50, host)", 5.0, 1.25, "ms", True)])
    root = ET.fromstring(junit_xml(result).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == ["edgeml.check.m.tflite"] * 2
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == "measured 1.17 KiB vs limit 1000 B (measured)"
    assert "too big" in (failure.text or "")
    assert cases[1].find("failure") is None and "1.25 ms" in (cases[1].findtext("system-out") or "")
