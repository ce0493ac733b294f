"""The cost phase of ``edgeml search`` (``_Search`` in edgeml.search.runner inherits it): every built variant
is estimated on the boards without a measurement (labelled), measured on a fleet's boards when one is given, and
measured on the host one variant at a time after every build finished, so no trial's load skews another's
latency. Each result is saved in the trial's ``trial.json`` as soon as it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeml._io import json_text, write_bytes_atomic
from edgeml.errors import EdgeMLError
from edgeml.search.plan import Plan, SearchConfig


def trial_dir(out: Path, name: str) -> Path:
    """A trial's folder: its variant file (``name``) and trial.json; ``int8.tflite`` -> ``trials/int8-tflite``."""
    return out / "trials" / name.replace(".", "-")


class CostPhase:
    """Phase 3 of a search, and the saving of a trial record; the state is the search's own (set in ``_Search``)."""

    cfg: SearchConfig
    plan: Plan
    say: Callable[[str], None]
    dir: Path
    records: dict[str, dict[str, Any]]

    def _shapes(self) -> Any:
        if not self.cfg.input_shape:
            return None
        from edgeml.formats.shapes import parse_input_shapes

        return parse_input_shapes(self.cfg.input_shape)

    # --- phase 3: cost -----------------------------------------------------------------------------------
    def cost(self) -> None:
        from edgeml.pipeline import sha256, stage_key
        from edgeml.targets import load_profile

        measured = []
        boards: dict[str, list[tuple[str, Path, str]]] = {}
        for target, names in self.plan.per_target.items():
            prof = load_profile(target)
            on_boards = self.plan.boards.get(target)
            for name in names:
                rec = self.records.get(name) or {}
                if (rec.get("stages") or {}).get("build", {}).get("error") or name not in self.records:
                    continue
                path = trial_dir(self.dir, name) / name
                key = stage_key(f"search-cost:{target}", {"runs": self.cfg.runs, "input_shape": self.cfg.input_shape,
                                                          "measured": prof.is_host, "boards": on_boards},
                                [sha256(path)])
                prev = rec["stages"].get(f"cost:{target}") or {}
                if prev.get("key") == key:
                    continue
                if prof.is_host:
                    measured.append((name, path, key))
                    continue
                if on_boards:
                    boards.setdefault(target, []).append((name, path, key))
                    continue
                from edgeml.options import EstimateOptions
                from edgeml.search.trial import failure
                from edgeml.targets.estimate import estimate

                try:
                    e = estimate(path, options=EstimateOptions(target=target, input_shapes=self._shapes())).to_dict()
                    e["model"] = str(path)
                    rec["stages"][f"cost:{target}"] = {"key": key, "kind": "estimated", "result": e}
                except Exception as exc:  # noqa: BLE001 -- this target has no cost for it; others keep theirs
                    f = failure(exc)
                    rec["stages"][f"cost:{target}"] = {"key": key if f["known"] else None, "error": f["error"],
                                                       "hint": f.get("hint")}
                self._save(name)
        if measured:
            self.say(f"measuring {len(measured)} variant(s) on this machine after the builds, interleaved in one "
                     f"process ({self.cfg.runs} runs each)")
            self._measure(measured)
        for target, items in boards.items():
            self._measure_boards(target, items)

    def _estimate(self, name: str, path: Path, target: str) -> dict[str, Any] | None:
        from edgeml.options import EstimateOptions
        from edgeml.targets.estimate import estimate

        try:
            e = estimate(path, options=EstimateOptions(target=target, input_shapes=self._shapes())).to_dict()
            return dict(e, model=str(path))
        except EdgeMLError:
            return None

    def _measure_boards(self, target: str, items: list[tuple[str, Path, str]]) -> None:
        """Board latency through the fleet: one job (variant) per board at a time, boards side by side, jobs
        cached by content under ``fleet/<target>/``. A board that fails leaves that variant estimated (labelled)
        and not cached, so the next run tries the board again; an emulated board is never the board's latency."""
        from edgeml.fleet import bench_fleet

        names = self.plan.boards[target]
        self.say(f"measuring {len(items)} variant(s) on {target} board(s) {', '.join(names)} (one at a time per "
                 "board)")
        try:
            res = bench_fleet([p for _, p, _ in items], self.plan.fleet.select(names=names),
                              out_dir=self.dir / "fleet" / target, runs=self.cfg.runs, input_shapes=self._shapes(),
                              progress=lambda m: self.say("  " + m))
            records, failures = res.records, [f"{f.board}: {f.kind}: {f.error}" for f in res.failures]
        except EdgeMLError as exc:
            records, failures = [], [f"{', '.join(names)}: {exc.message}"]
        real = sorted((r for r in records if not (r.get("environment") or {}).get("emulated")),
                      key=lambda r: r.get("board", ""))
        emulated = [r.get("board") for r in records if (r.get("environment") or {}).get("emulated")]
        for name, path, key in items:
            rec = self.records[name]
            hit = next(((r, m) for r in real for m in r.get("models", []) if m.get("name") == path.name
                        and (m.get("latency_ms") or {}).get("p50")), None)
            if hit:
                r, m = hit
                rec["stages"][f"cost:{target}"] = {"key": key, "kind": "measured", "where": r.get("where"),
                                                   "board": r.get("board"),
                                                   "result": dict(m, name=name, path=str(path))}
                self.say(f"  {name}: p50 {m['latency_ms']['p50']:.4g} ms on {r.get('board')}")
            else:
                why = "; ".join(failures) or (f"only emulated board(s) ({', '.join(emulated)}): an emulator's latency "
                                               "is not the board's" if emulated else "no latency came back")
                e = self._estimate(name, path, target)
                rec["stages"][f"cost:{target}"] = {"key": None, "kind": "estimated", "result": e,
                                                   "board_error": why}
                self.say(f"  {name}: not measured on {target} ({why}); estimated")
            self._save(name)

    def _measure(self, measured: list[tuple[str, Path, str]]) -> None:
        """Host latency: every pending variant in one interleaved bench (A B C A B C ...), nothing else of the
        search running; when that bench refuses one model, each is benched alone so the others keep theirs."""
        from edgeml.bench.harness import bench
        from edgeml.options import BenchOptions

        on_host = BenchOptions(target="host", runs=self.cfg.runs, input_shapes=self._shapes())
        try:
            res = bench([p for _, p, _ in measured], options=on_host)
            groups = [(measured, res)]
        except EdgeMLError:
            groups = []
            for m in measured:
                try:
                    groups.append(([m], bench([m[1]], options=on_host)))
                except EdgeMLError as exc:
                    rec = self.records[m[0]]
                    rec["stages"]["cost:host"] = {"key": m[2], "error": exc.message, "hint": exc.hint}
                    self.say(f"  {m[0]}: not measured: {exc.message}")
                    self._save(m[0])
        for items, res in groups:
            env = res.environment if isinstance(res.environment, dict) else {}
            for (name, path, key), entry in zip(items, res.models):
                entry = dict(entry, name=name, path=str(path))
                self.records[name]["stages"]["cost:host"] = {
                    "key": key, "kind": "measured", "where": res.where, "result": entry,
                    "interleaved_with": len(items) - 1, "settings": res.settings,
                    "environment": {k: env.get(k) for k in ("cpu", "runtime", "python", "machine") if k in env}}
                lat = entry.get("latency_ms") or {}
                self.say(f"  {name}: p50 {lat['p50']:.4g} ms" if lat.get("p50") else f"  {name}: no latency")
                self._save(name)

    def _save(self, name: str) -> None:
        write_bytes_atomic(trial_dir(self.dir, name) / "trial.json", json_text(self.records[name]).encode())
