"""Report plots stay readable: labels placed apart, padded axes, accuracy within 0-100 %."""

from __future__ import annotations

import itertools

import pytest

from edgeml.report import Cost, Report, Training, Variant
from edgeml.report.plots import _acc_limits, _hits, place_labels


def test_place_labels_keeps_20_crowded_labels_apart():
    points = [(100 + 3 * (k % 5), 100 + 2 * (k // 5)) for k in range(20)]  # 20 markers within 12 x 6 px
    sizes = [(14.0, 10.0)] * 20
    centres = place_labels(points, sizes, (0, 0, 400, 300), marker=4)
    boxes = [(x - 7, y - 5, x + 7, y + 5) for x, y in centres]
    assert not any(_hits(a, b) for a, b in itertools.combinations(boxes, 2))
    assert all(0 <= b[0] and b[2] <= 400 and 0 <= b[1] and b[3] <= 300 for b in boxes)


def test_place_labels_sits_next_to_a_lone_marker():
    (x, y), = place_labels([(50.0, 50.0)], [(10.0, 8.0)], (0, 0, 100, 100), marker=4)
    assert 0 < abs(x - 50) < 20 and 0 < abs(y - 50) < 20


@pytest.mark.parametrize("values, lo, hi", [([99.17], 98.67, 99.67), ([100.0], 99.0, 100.0), ([0.0], 0.0, 1.0),
                                            ([90.0, 99.5], 88.86, 100.0)])
def test_accuracy_axis_is_padded_and_stays_within_0_100(values, lo, hi):
    assert _acc_limits(values) == (pytest.approx(lo), pytest.approx(hi))


def test_html_report_numbers_variants_for_the_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from edgeml.report.render import html

    variants = [Variant(f"v{k}_int8.tflite", size_bytes=1000 * (k + 1), accuracy=0.97,
                        costs={"host": Cost("host", "measured", 0.01 * (k + 1),
                                            stats={"min": 0.009, "p50": 0.01, "p90": 0.011, "p99": 0.012,
                                                   "max": 0.02})}) for k in range(3)]
    text = html(Report(variants=variants, targets=["host"], training=Training(), deploy="v0_int8.tflite", sources=[]))
    assert text.count("<svg") == 4 and "<th>#</th>" in text
    assert "3  v2_int8.tflite" in text  # the plots' key uses the table's numbers
    assert "10.0 µs" in text  # latency axes in µs, not 0.010 ms


def test_a_lower_bound_estimate_is_never_shown_as_a_plain_number():
    from edgeml.report.render import asymmetry_rows, markdown, variant_rows

    v = Variant("m_edgetpu.tflite", size_bytes=1000, macs=None,
                costs={"coral-usb": Cost("coral-usb", "estimated", 2.5, energy_mj=5.0, lower_bound=True)})
    rep = Report(variants=[v], targets=["coral-usb"], training=Training(wall_s=100.0, energy_j=1000.0),
                 deploy=v.name, sources=[])
    _, rows = asymmetry_rows(rep)
    assert rows[0][1] == "estimated, lower bound" and rows[0][2] == "≥ 2.50 ms" and rows[0][4].startswith("≥ ")
    assert rows[0][6].startswith("≤ ") and rows[0][7].startswith("≤ ")  # fewer inferences than that break even
    _, vrows = variant_rows(rep)
    assert vrows[0][-1] == "≥ 2.50 ms (est., lower bound)"
    assert "≥ 2.50 ms" in markdown(rep)
