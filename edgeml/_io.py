"""Writing outputs safely: never over an input, never over an existing file without force, atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edgeml.errors import OutputExistsError

# Set by the CLI's SIGINT/SIGTERM handler to the exception class to raise. A library that swallows the
# interrupt (some catch BaseException) still never gets its output renamed into place: see atomic_path.
STOP: dict[str, Any] = {"exc": None}


def raise_if_stopped() -> None:
    if STOP["exc"] is not None:
        raise STOP["exc"]()


def _kind(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file)."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def refuse_non_regular(out: str | Path) -> None:
    """Outputs only ever replace regular files: never a folder, FIFO, device node or socket."""
    try:
        st = os.stat(out)  # follows a symlink: what the name leads to is what would be written over
    except OSError:
        return
    kind = _kind(st.st_mode)
    if kind:
        raise OutputExistsError(f"{out}: exists and is {kind}; edgeml only replaces regular files",
                                hint="choose a file path for the output (e.g. -o model.tflite)")


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file: same device+inode (hard links, symlinks) or path."""
    try:
        sa, sb = os.stat(a), os.stat(b)
        if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
            return True
    except OSError:
        pass
    return Path(a).resolve() == Path(b).resolve()


def _inside(out: Path, folder: str | Path) -> bool:
    try:
        return Path(folder).is_dir() and out.resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False


def input_paths(value: Any) -> list[Path]:
    """The files a model path, data spec (``PATH?k=v``, a ``.toml`` spec and its source) or list names."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [p for v in value for p in input_paths(v)]
    source = getattr(value, "source", None)  # a DataSpec
    origin = getattr(value, "origin", None)
    if source is not None:
        return input_paths(origin) + ([] if str(source).startswith("builtin:") else [Path(str(source))])
    text = str(value)
    if not text or text.startswith("builtin:"):
        return []
    paths = [Path(text)]
    if "?" in text and not Path(text).exists():
        paths = [Path(text.split("?", 1)[0])]
    if text.endswith(".toml") and Path(text).is_file():
        try:
            from edgeml._compat import tomllib

            table = tomllib.loads(Path(text).read_text())
            table = table.get("data", table) if isinstance(table, dict) else {}
            src = table.get("source") if isinstance(table, dict) else None
            if isinstance(src, str) and not src.startswith("builtin:"):
                paths.append(Path(src) if Path(src).is_absolute() else Path(text).parent / src)
        except (OSError, ValueError):
            pass  # the data loader reports a bad spec file itself
    return paths


def check_outputs(outputs: list[str | Path | None], *, inputs: Any = (), force: bool = False,
                  folders: Sequence[str | Path | None] = ()) -> list[Path | None]:
    """Check every output of a command before any work starts.

    An output may never be (or lie inside a folder that is) one of ``inputs`` — models, data specs,
    budgets, references, recipes — with or without ``force``: symlinks and hard links are resolved.
    It may only replace a regular file, and only with ``force``; its folder must exist; two outputs may
    not be the same file. ``folders`` are output folders (a run folder, a compile folder): never an input
    and never inside one. Returns the outputs as Paths (None stays None).
    """
    ins = input_paths(list(inputs))
    checked: list[Path | None] = []
    for out in outputs:
        if out is None:
            checked.append(None)
            continue
        p = Path(out)
        for src in ins:
            if same_file(p, src) or _inside(p, src):
                raise OutputExistsError(f"{p}: output would overwrite the input {src}",
                                        hint="choose another output path; inputs are never overwritten, "
                                             "not even with `force`")
        if any(c is not None and same_file(p, c) for c in checked):
            raise OutputExistsError(f"{p}: given as two different outputs", hint="give each output its own path")
        refuse_non_regular(p)
        if os.path.lexists(p) and not force:
            raise OutputExistsError(f"{p}: output exists",
                                    hint="pass `force` to overwrite it, or choose another `out` path")
        if not p.parent.exists():
            raise OutputExistsError(f"{p.parent}: output folder does not exist", hint="create it first")
        checked.append(p)
    for folder in folders:
        if folder is None:
            continue
        for src in ins:
            if same_file(folder, src) or _inside(Path(folder), src):
                raise OutputExistsError(f"{folder}: output folder is (or is inside) an input of this command ({src})",
                                        hint="choose another output folder")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise OutputExistsError(f"{folder}: exists and is not a folder", hint="choose another output folder")
    return checked


def check_output(out: str | Path, *, inputs: Any = (), force: bool = False) -> Path:
    """Refuse to write over an input (ever), a non-regular file (ever) or an existing file (without ``force``)."""
    (p,) = check_outputs([out], inputs=inputs, force=force)
    assert p is not None
    return p


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; it replaces ``out`` only when the block succeeds.

    The target is checked again just before the rename: only a regular file (or nothing) is replaced.
    """
    out = Path(out)
    refuse_non_regular(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        raise_if_stopped()
        refuse_non_regular(out)
        if tmp_path.is_file():  # mkstemp made it 0600: give it the mode any new file gets (umask applies)
            os.chmod(tmp_path, 0o666 & ~_umask())
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
    from edgeml._compat import tomllib
    from edgeml.errors import EdgeMLError

    error = error or EdgeMLError
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} not found", hint=hint)
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{p}: not valid TOML ({exc})") from exc


# -- memory ceiling: declared shapes are checked before anything is allocated ------------------------------
MEMORY_ENV = "EDGEML_MAX_MEMORY"
DEFAULT_MEMORY_FRACTION = 0.25
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024 ** 2, "mb": 1000 ** 2,
               "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3, "t": 1024 ** 4, "tb": 1000 ** 4,
               "tib": 1024 ** 4}


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 ** 3


def memory_ceiling() -> int:
    """The most bytes one tensor/array set may take: ``EDGEML_MAX_MEMORY`` (a size like ``4GiB``, or a
    fraction of available memory like ``0.5``), else a quarter of the memory available now."""
    import re

    from edgeml.errors import EdgeMLError

    text = os.environ.get(MEMORY_ENV, "").strip()
    if not text:
        return int(available_memory() * DEFAULT_MEMORY_FRACTION)
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([A-Za-z]*)", text)
    if m and m.group(2).lower() in _SIZE_UNITS:
        value = float(m.group(1))
        if not m.group(2) and value <= 1:
            return int(available_memory() * value)
        if value > 0:
            return int(value * _SIZE_UNITS[m.group(2).lower()])
    raise EdgeMLError(f"{MEMORY_ENV}={text!r}: not a size or a fraction",
                      hint=f"e.g. {MEMORY_ENV}=4GiB, or {MEMORY_ENV}=0.5 for half of the available memory")


def check_alloc(nbytes: int | float, what: str, *, hint: str | None = None, error: type | None = None) -> None:
    """Refuse (before allocating) anything larger than :func:`memory_ceiling`, naming ``what``."""
    from edgeml.errors import ResourceLimitError

    limit = memory_ceiling()
    if nbytes > limit:
        raise (error or ResourceLimitError)(
            f"{what} would need {_human(nbytes)}, over the memory ceiling of {_human(limit)}",
            hint=hint or f"check the declared shape; to allow more, set {MEMORY_ENV} (e.g. {MEMORY_ENV}=16GiB)")


def shape_bytes(shape: Any, itemsize: int, *, dynamic: int = 1) -> int:
    """Bytes of a tensor of ``shape`` (unknown/negative dims count as ``dynamic``); exact, no overflow."""
    n = 1
    for d in shape or ():
        n *= d if isinstance(d, int) and d > 0 else dynamic
    return n * int(itemsize)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def _itemsize(dtype: Any) -> int:
    import numpy as np

    try:
        return max(1, np.dtype(str(dtype)).itemsize)
    except TypeError:
        return 8  # strings, bfloat16, unknown: assume the wide case


def check_tensor_memory(specs: Any, where: str, *, dynamic: int = 1) -> None:
    """Refuse model IO whose declared shapes (dynamic dims as ``dynamic``, batch 1) exceed the ceiling.

    ``specs`` are objects with ``name``, ``shape`` and ``dtype`` (formats.common.TensorSpec). Each tensor is
    named when it alone is too large; else the total is checked.
    """
    total = 0
    for t in specs:
        shape = [1, *list(t.shape)[1:]] if t.shape else []
        n = shape_bytes(shape, _itemsize(t.dtype), dynamic=dynamic)
        check_alloc(n, f"{where}: tensor '{t.name}' {list(t.shape)} ({t.dtype})",
                    hint=f"the model declares a tensor this large; check its shape, or raise {MEMORY_ENV}")
        total += n
    check_alloc(total, f"{where}: the model's inputs and outputs together")


def keys_hint(unknown: str, known: Any) -> str:
    """The hint for an unknown key of a TOML file: the close match first ("did you mean"), then the known keys."""
    import difflib

    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(unknown), known, n=1)
    return (f"did you mean {close[0]!r}? " if close else "") + f"known keys: {', '.join(known)}"


def rebase_path(path: str, frm: Path, to: Path) -> str:
    """A relative ``path`` meant from folder ``frm`` as seen from folder ``to``; absolute paths unchanged."""
    p = Path(path)
    if p.is_absolute():
        return path
    return Path(os.path.relpath((frm / p).resolve(), to.resolve())).as_posix()


def spec_parts(spec: str, folder: Path) -> tuple[str, str]:
    """(path, '?options' or '') of a data spec; the whole spec is the path when that file exists."""
    if "?" in spec and not (folder / spec).exists():
        path, query = spec.split("?", 1)
        return path, "?" + query
    return spec, ""


def rebase_spec(spec: str, frm: Path, to: Path) -> str:
    """A data spec's path rebased like :func:`rebase_path` (its ``?options`` kept; ``builtin:`` specs as they are)."""
    if spec.startswith("builtin:"):
        return spec
    path, query = spec_parts(spec, frm)
    return rebase_path(path, frm, to) + query if path else spec
