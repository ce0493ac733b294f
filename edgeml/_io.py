"""Writing outputs safely: never over an input, never over an existing file without force, atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any
from pathlib import Path

from edgeml.errors import OutputExistsError


def check_output(out: str | Path, *, inputs: list[str | Path] = (), force: bool = False) -> Path:
    """Refuse to write over an input (ever) or an existing file (without ``force``)."""
    p = Path(out)
    for src in inputs:
        if Path(src).exists() and p.exists() and p.resolve() == Path(src).resolve():
            raise OutputExistsError(f"{p}: output would overwrite the input model", hint="choose another -o path")
    if p.exists() and not force:
        raise OutputExistsError(f"{p}: output exists", hint="pass --force to overwrite it, or choose another -o path")
    if not p.parent.exists():
        raise OutputExistsError(f"{p.parent}: output folder does not exist", hint="create it first")
    return p


@contextlib.contextmanager
def atomic_path(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; it replaces ``out`` only when the block succeeds."""
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, out)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


def path_size(path: str | Path) -> int:
    """Bytes of a file, or of every file under a folder (a SavedModel)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def write_bytes_atomic(out: str | Path, data: bytes) -> None:
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def json_text(data: Any) -> str:
    """Strict JSON (NaN/Inf become null; dataclasses with to_dict and numpy values are converted)."""
    return json.dumps(_clean(json.loads(json.dumps(data, default=_default))), indent=2)


def read_toml(path: str | Path, *, what: str, hint: str, error: type | None = None) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad TOML becomes one clear ``error`` (EdgeMLError by default)."""
    import tomllib

    from edgeml.errors import EdgeMLError

    error = error or EdgeMLError
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} not found", hint=hint)
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{p}: not valid TOML ({exc})") from exc
