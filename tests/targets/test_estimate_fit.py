"""Non-negative least squares (edgeml.targets.estimate_fit), used to refit target coefficients.
Each has a hand-computed expectation."""

from __future__ import annotations

import numpy as np
import pytest


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
