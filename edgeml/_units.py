"""Human units for durations: one formatter so no figure collapses to ``0.005 ms``.

``format_duration(4.87e-6)`` -> ``'4.87 µs'``; ``format_duration(0.0123)`` -> ``'12.3 ms'``;
``format_duration(1.02)`` -> ``'1.02 s'``. Always 3 significant digits (trailing zeros kept: ``'5.00 ms'``),
in the largest unit that keeps the number >= 1; a value that rounds up to 1000 moves to the next unit.
"""

from __future__ import annotations

import math

_UNITS = (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0))


def _sig3(x: float) -> str:
    """``x`` (1 <= x < 1000) with 3 significant digits, trailing zeros kept."""
    decimals = 2 if x < 10 else 1 if x < 100 else 0
    return f"{x:.{decimals}f}"


def format_duration(seconds: float | None) -> str:
    """A duration in seconds as text with 3 significant digits and the unit that fits; None/NaN -> '—'."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    if math.isinf(seconds):
        return "∞ s" if seconds > 0 else "-∞ s"
    if seconds == 0:
        return "0 s"
    sign, v = ("-" if seconds < 0 else ""), abs(seconds)
    if v >= 1000:
        return f"{sign}{v:.0f} s"
    if v < 1e-9:
        return f"{sign}{v / 1e-9:.3g} ns"
    for i, (unit, scale) in enumerate(_UNITS):
        x = v / scale
        if x >= 1000:
            continue
        # rounding to 3 significant digits can reach 1000 (999.7 µs): that is 1.00 ms
        if float(_sig3(x)) >= 1000 and i + 1 < len(_UNITS):
            return f"{sign}{_sig3(v / _UNITS[i + 1][1])} {_UNITS[i + 1][0]}"
        return f"{sign}{_sig3(x)} {unit}"
    return f"{sign}{v:.0f} s"  # pragma: no cover - v < 1000 always finds a unit


def format_ms(ms: float | None) -> str:
    """A duration given in milliseconds (edgeml's latency unit), formatted like :func:`format_duration`."""
    return format_duration(None if ms is None else ms / 1000)
