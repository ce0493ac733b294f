"""Magnitude pruning masks (edgeml.prune.magnitude.masks). Each has a hand-computed expectation."""

from __future__ import annotations

import numpy as np


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
