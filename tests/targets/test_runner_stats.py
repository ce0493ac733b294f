"""The board runner's statistics (edgeml.targets.device_runner): every latency figure comes from them.
Each has a hand-computed expectation."""

from __future__ import annotations

import math

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
