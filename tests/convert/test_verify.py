"""Output matching for convert verification (edgeml.convert.verify.match_outputs)."""

from __future__ import annotations

import pytest


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
