"""Seeded mutation fuzzing of edgeml's loaders (TFLite, ONNX, Keras zip / HDF5, npz).

Each seed file is mutated COUNT times (byte flips, overwritten or zeroed spans, truncation, insertion, and for
zip files a mutation inside one member with the archive rebuilt, so CRCs pass and the parsers see it). Every
mutant is loaded the way a command would (models: detect + inspect; npz: open + read every sample) in a
worker process. The only acceptable outcomes are "loaded" and "refused" (an EdgeMLError, i.e. exit 3);
anything else is a finding: "bug" (another exception: exit 4), "hang" (over --per-mutant seconds) or
"crash" (the worker died; it is restarted after the mutant).

    python tests/fuzz_loaders.py --count 200 --seed 0 [--out summary.json] [--keep DIR] FILE ...
    python tests/fuzz_loaders.py --count 50 --make-seeds DIR     # build tiny seed files first (needs TF)

Exit status 0 when every mutant was loaded or refused, 1 otherwise. ``make fuzz`` runs a larger count.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's edgeml

OPS = ("flip", "overwrite", "zero", "truncate", "insert", "member")


def _bytes_mutation(data: bytes, rng: np.random.Generator, op: str) -> bytes:
    b = bytearray(data)
    n = len(b)
    if n == 0:
        return bytes(rng.integers(0, 256, 16, dtype=np.uint8))
    if op == "flip":
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, n))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif op == "overwrite":
        i = int(rng.integers(0, n))
        span = rng.integers(0, 256, int(rng.integers(1, 33)), dtype=np.uint8).tobytes()
        b[i:i + len(span)] = span
    elif op == "zero":
        i = int(rng.integers(0, n))
        k = int(rng.integers(1, 65))
        b[i:i + k] = bytes(min(k, n - i))
    elif op == "truncate":
        b = b[:int(rng.integers(0, n))]
    elif op == "insert":
        i = int(rng.integers(0, n + 1))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 33)), dtype=np.uint8).tobytes()
    return bytes(b)


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutant of ``data`` and the name of the mutation."""
    is_zip = data[:2] == b"PK"
    op = OPS[int(rng.integers(0, len(OPS) if is_zip else len(OPS) - 1))]
    if op != "member":
        return _bytes_mutation(data, rng, op), op
    try:
        src = zipfile.ZipFile(io.BytesIO(data))
        names = src.namelist()
        victim = names[int(rng.integers(0, len(names)))]
        inner = OPS[int(rng.integers(0, len(OPS) - 1))]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():  # same names, dates and compression: only the victim's bytes change
                content = src.read(info.filename)
                dst.writestr(info, _bytes_mutation(content, rng, inner) if info.filename == victim else content)
        return out.getvalue(), f"member:{victim}:{inner}"
    except zipfile.BadZipFile:
        return _bytes_mutation(data, rng, "flip"), "flip"


def load(path: Path) -> str:
    """Load ``path`` like a command would; returns a short description (raises on refusal)."""
    if path.suffix == ".npz":
        from edgeml.calibration import load_dataset

        ds = load_dataset(str(path))
        ds.arrays()
        return f"{len(ds)} samples"
    from edgeml.artifact import ModelArtifact

    art = ModelArtifact.open(path)
    info = art.inspect()
    return f"{art.format.value}: {len(info.inputs)} in, {len(info.outputs)} out"


def _warm_up(suffixes: set[str]) -> None:
    if suffixes & {".keras", ".h5", ".hdf5"}:
        from edgeml._tf import keras

        keras()
    if ".tflite" in suffixes:
        from edgeml.runtimes.litert import interpreter_class

        interpreter_class()
    if ".onnx" in suffixes:
        import onnx  # noqa: F401
    if ".npz" in suffixes:
        import edgeml.calibration  # noqa: F401


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


def worker(files: list[Path], count: int, seed: int, start: int, progress: Path, per_mutant: float,
           keep: Path | None) -> None:
    """Run mutants ``start..`` (index over files x count); one JSON line per outcome on stdout.

    Mutants are written beside ``progress``, in the driver's temporary folder: a crashed worker leaves nothing.
    """
    from edgeml.errors import EdgeMLError

    signal.signal(signal.SIGALRM, _alarm)
    _warm_up({f.suffix for f in files})  # heavy imports are not timed as part of the first mutant
    work = progress.parent
    for index in range(start, len(files) * count):
        f, i = files[index // count], index % count
        data, op = mutate(f.read_bytes(), np.random.default_rng([seed, index // count, i]))
        path = work / f"mutant{f.suffix}"
        path.write_bytes(data)
        progress.write_text(json.dumps({"index": index, "file": f.name, "i": i, "op": op}))
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, per_mutant)
        try:
            detail, outcome = load(path), "loaded"
        except EdgeMLError as exc:
            outcome, detail = "refused", exc.message[:160]
        except Hang:
            outcome, detail = "hang", f"over {per_mutant} s"
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            outcome = "bug"
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]} @ " + \
                traceback.format_exc().strip().splitlines()[-3].strip()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if outcome in ("bug", "hang") and keep:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{f.stem}-{i}-{outcome}{f.suffix}").write_bytes(data)
        print(json.dumps({"index": index, "file": f.name, "i": i, "op": op, "outcome": outcome,
                          "detail": detail, "ms": round((time.perf_counter() - t0) * 1000, 1)}), flush=True)


def drive(files: list[Path], count: int, seed: int, per_mutant: float, keep: Path | None,
          env: dict | None = None) -> list[dict]:
    """Run the worker, restarting it after a crash; returns one record per mutant."""
    records: list[dict] = []
    start, total = 0, len(files) * count
    with tempfile.TemporaryDirectory(prefix="edgeml-fuzz-drive-") as tmp:
        progress = Path(tmp) / "progress.json"
        while start < total:
            cmd = [sys.executable, __file__, "--worker", "--count", str(count), "--seed", str(seed), "--start",
                   str(start), "--progress", str(progress), "--per-mutant", str(per_mutant),
                   *(["--keep", str(keep)] if keep else []), *map(str, files)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    records.append(json.loads(line))
            done = records[-1]["index"] + 1 if records else start
            if proc.returncode == 0 and done >= total:
                break
            last = json.loads(progress.read_text()) if progress.exists() else {"index": done}
            if last["index"] < done:  # died after its last record (e.g. at exit): nothing left to attribute
                raise RuntimeError(f"fuzz worker failed: {proc.stderr[-2000:]}")
            records.append(dict(last, outcome="crash", detail=f"worker exit {proc.returncode}: "
                                                              f"{proc.stderr.strip().splitlines()[-1:] }", ms=None))
            if keep:  # the worker could not save it: rebuild the mutant from its seed
                f, i = files[last["index"] // count], last["index"] % count
                data, _ = mutate(f.read_bytes(), np.random.default_rng([seed, last["index"] // count, i]))
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{f.stem}-{i}-crash{f.suffix}").write_bytes(data)
            start = last["index"] + 1
    return records


def summary(records: list[dict]) -> dict:
    by_file: dict[str, Counter] = {}
    for r in records:
        by_file.setdefault(r["file"], Counter())[r["outcome"]] += 1
    findings = [r for r in records if r["outcome"] not in ("loaded", "refused")]
    return {"mutants": len(records), "outcomes": dict(Counter(r["outcome"] for r in records)),
            "by_file": {k: dict(v) for k, v in by_file.items()}, "findings": findings,
            "ops": dict(Counter(r["op"].split(":")[0] for r in records))}


def make_seeds(folder: Path) -> list[Path]:
    """Tiny valid seed files of every loader's format (ONNX, TFLite, .keras, .h5, npz)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import helpers

    folder.mkdir(parents=True, exist_ok=True)
    files = [helpers.onnx_cnn(folder / "tiny.onnx")]
    np.savez(folder / "data.npz", image=np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32),
             labels=np.arange(6))
    files.append(folder / "data.npz")
    model = helpers.keras_cnn()
    model.save(folder / "tiny.keras")
    files.append(folder / "tiny.keras")
    files.append(helpers.keras_to_tflite(model, folder / "tiny.tflite"))
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--count", type=int, default=50, help="mutants per seed file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-mutant", type=float, default=30.0, help="seconds before a mutant counts as a hang")
    ap.add_argument("--keep", type=Path, help="save mutants that found something here")
    ap.add_argument("--out", type=Path, help="write the summary JSON here")
    ap.add_argument("--make-seeds", type=Path, help="build tiny seed files in this folder and fuzz them too")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--progress", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.files, a.count, a.seed, a.start, a.progress, a.per_mutant, a.keep)
        return 0
    files = list(a.files) + (make_seeds(a.make_seeds) if a.make_seeds else [])
    if not files:
        ap.error("give seed FILEs or --make-seeds DIR")
    env = dict(os.environ, EDGEML_MAX_MEMORY=os.environ.get("EDGEML_MAX_MEMORY", "1GiB"), TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.time()
    s = summary(drive(files, a.count, a.seed, a.per_mutant, a.keep, env=env))
    s["seconds"] = round(time.time() - t0, 1)
    s["seed"], s["count_per_file"] = a.seed, a.count
    text = json.dumps(s, indent=2)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 0 if not s["findings"] else 1


if __name__ == "__main__":
    sys.exit(main())
