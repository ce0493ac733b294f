"""The result of ``edgeml bench``: measured on a machine, or estimated for a target (JSON ``edgeml.bench/1``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeml import __version__


@dataclass
class BenchResult:
    target: str
    where: str
    measured: bool
    models: list[dict[str, Any]]
    environment: dict[str, Any] | None
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeml.bench/1", "edgeml": __version__, "target": self.target, "where": self.where,
                "measured": self.measured, "kind": "measured" if self.measured else "estimated",
                "settings": self.settings, "environment": self.environment, "models": self.models,
                "notes": self.notes}
