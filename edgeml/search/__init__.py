"""edgeml search: the best variant per target over a declared space of prune x quantization x format trials,
run on Ray (optional) or sequentially, cached by content hash; see ``edgeml.search.runner``."""

from __future__ import annotations

from typing import Any

__all__ = ["SearchConfig", "search", "plan_search", "load_space", "default_space"]


def __getattr__(name: str) -> Any:
    if name in ("SearchConfig", "search", "plan_search", "SearchResult", "Plan"):
        from edgeml.search import runner

        return getattr(runner, name)
    if name in ("load_space", "default_space", "Space", "Trial"):
        from edgeml.search import space

        return getattr(space, name)
    raise AttributeError(name)
