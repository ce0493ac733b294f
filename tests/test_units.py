"""edgeml._units: durations keep 3 significant digits in the unit that fits."""

from __future__ import annotations

import pytest

from edgeml._units import format_duration, format_ms


@pytest.mark.parametrize("seconds, text", [
    (4.87e-6, "4.87 µs"), (5e-6, "5.00 µs"), (0.0123, "12.3 ms"), (1.02, "1.02 s"), (0.123, "123 ms"),
    (5e-3, "5.00 ms"), (2.5e-10, "0.25 ns"), (3.4e-9, "3.40 ns"), (0, "0 s"), (-0.0123, "-12.3 ms"),
    (1234.4, "1234 s"),
])
def test_format_duration_keeps_three_significant_digits(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [(9.9996e-4, "1.00 ms"), (0.99996, "1.00 s"), (9.996e-7, "1.00 µs")])
def test_format_duration_moves_up_a_unit_when_rounding_reaches_1000(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_unknown_is_a_dash():
    assert format_duration(None) == "—" and format_duration(float("nan")) == "—"


def test_format_ms_reads_milliseconds():
    assert format_ms(0.005) == "5.00 µs" and format_ms(12.34) == "12.3 ms" and format_ms(None) == "—"
