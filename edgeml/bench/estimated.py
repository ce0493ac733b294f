"""``edgeml bench --target BOARD`` without a board: a bench result made of estimates (edgeml.targets.estimate),
labelled as such. Bench sits above targets: the estimator never needs to know the bench result type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeml.bench.result import BenchResult
from edgeml.errors import EdgeMLError
from edgeml.targets.estimate import EDGETPU_OP, estimate_from, refuse_unknown_cost

if TYPE_CHECKING:
    from edgeml.artifact import ModelArtifact
    from edgeml.targets.profile import TargetProfile


def estimate_bench(arts: list[ModelArtifact], profile: TargetProfile, *, threads: int | None,
                   input_shapes: Any = None) -> BenchResult:
    """``edgeml bench --target BOARD`` without --host: estimates, labelled as such."""
    models = []
    notes = [f"no board measured: estimated for {profile.name} (add --host USER@BOARD to measure)"]
    for art in arts:
        try:
            info = art.inspect() if input_shapes is None else art.inspect(input_shapes=input_shapes)
            if EDGETPU_OP not in (info.custom_ops or []):
                refuse_unknown_cost(info, art.path)
            e = estimate_from(info, profile, precision=None, threads=threads, name=str(art.path))
        except EdgeMLError as exc:
            if len(arts) == 1:
                raise
            notes.append(f"{art.path.name}: not estimated: {exc.message}")
            continue
        models.append({"name": art.path.name, "path": str(art.path), "size_bytes": art.inspect().size_bytes,
                       "estimate": e.to_dict()})
    return BenchResult(target=profile.name, where="estimate", measured=False, models=models, environment=None,
                       settings={"threads": threads}, notes=notes)
