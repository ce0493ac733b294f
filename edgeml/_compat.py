"""Differences between the Python versions edgeml supports (3.10+), in one place."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (Ubuntu 22.04, JetPack 6): the tomli backport, same API
    import tomli as tomllib

__all__ = ["tomllib"]
