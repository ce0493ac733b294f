"""Random-access data sources. Nothing here loads a whole image folder; arrays load lazily."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeml.calibration.spec import DataSpec
from edgeml.errors import DataError, MissingDependencyError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}
LABEL_KEYS = ("y", "labels", "label")


def _np_error(path: Path, kind: str, exc: Exception) -> DataError:
    text = " ".join(str(exc).split())
    if "object" in text.lower() or "pickle" in text.lower():
        return DataError(f"{path}: holds Python objects (pickle), which edgeml refuses to load",
                         hint="store plain numeric arrays (numpy.save / numpy.savez)")
    if isinstance(exc, SyntaxError) or type(exc).__name__ == "TokenError":
        text = f"damaged .npy header: {type(exc).__name__}"
    return DataError(f"{path}: cannot read {kind} ({text})", hint=f"save with numpy.{'savez' if kind == '.npz' else 'save'}")


class Source:
    """``kind`` is "array" (values as stored) or "image" (PIL images, preprocessed against the model)."""

    kind = "array"
    keys: list[str]
    labels: np.ndarray | None = None
    class_names: list[str] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> dict[str, Any]:
        raise NotImplementedError

    def where(self, i: int) -> str:
        return f"sample {i}"


def _check_npz_headers(path: Path, npz: Any) -> None:
    """Read each member's .npy header (shape, dtype) and refuse sizes over the memory ceiling, before loading."""
    from edgeml._io import check_alloc

    total = 0
    for key in npz.files:
        member = key + ".npy" if key + ".npy" in npz.zip.namelist() else key
        with npz.zip.open(member) as fh:
            version = np.lib.format.read_magic(fh)  # then the header only: no data is read
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"array '{key}': .npy format version {version} is not supported")
        if dtype.hasobject:
            raise DataError(f"{path}: holds Python objects (pickle), which edgeml refuses to load",
                            hint="store plain numeric arrays (numpy.save / numpy.savez)")
        n = dtype.itemsize
        for d in shape:
            n *= int(d)
        check_alloc(n, f"{path}: array '{key}' {list(shape)} ({dtype})", error=DataError,
                    hint="the file declares an array this large; check it, or raise EDGEML_MAX_MEMORY")
        total += n
    check_alloc(total, f"{path}: its arrays together", error=DataError)


class NpzSource(Source):
    def __init__(self, path: Path):
        try:
            npz = np.load(path, allow_pickle=False)
        except Exception as exc:  # truncated/damaged zip (BadZipFile, zlib.error, ...) or .npy header
            raise _np_error(path, ".npz", exc) from exc
        if not hasattr(npz, "files"):
            raise DataError(f"{path}: not an .npz archive", hint="use numpy.savez, or a .npy file for one input")
        self.path = path
        try:
            _check_npz_headers(path, npz)
            self.arrays = {k: npz[k] for k in npz.files}
        except DataError:
            raise
        except Exception as exc:  # a damaged archive or .npy header: numpy and zipfile raise many types
            raise _np_error(path, ".npz", exc) from exc
        label_key = next((k for k in LABEL_KEYS if k in self.arrays), None)
        self.labels = self.arrays.pop(label_key) if label_key else None
        self.keys = list(self.arrays)
        if not self.keys:
            raise DataError(f"{path}: .npz has no input arrays", hint="store arrays keyed by the model's input names")
        lengths = {k: len(a) if a.ndim else 0 for k, a in self.arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{path}: input arrays have different sample counts: {lengths}")
        self.n = next(iter(lengths.values()))
        if self.labels is not None and len(self.labels) != self.n:
            raise DataError(f"{path}: {len(self.labels)} labels ('{label_key}') for {self.n} samples",
                            hint="labels need one entry per sample")

    def __len__(self) -> int:
        return self.n

    def read(self, i: int) -> dict[str, Any]:
        return {k: a[i] for k, a in self.arrays.items()}

    def where(self, i: int) -> str:
        return f"{self.path.name}[{i}]"


class NpySource(Source):
    def __init__(self, path: Path, key: str):
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # a damaged header raises ValueError, SyntaxError, tokenize.TokenError, ...
            raise _np_error(path, ".npy", exc) from exc
        if self.array.ndim == 0:
            raise DataError(f"{path}: .npy holds a scalar, expected samples along the first axis")
        self.path, self.keys = path, [key]

    def __len__(self) -> int:
        return len(self.array)

    def read(self, i: int) -> dict[str, Any]:
        return {self.keys[0]: np.asarray(self.array[i])}

    def where(self, i: int) -> str:
        return f"{self.path.name}[{i}]"


class CsvSource(Source):
    def __init__(self, path: Path, spec: DataSpec, key: str):
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
        if not rows:
            raise DataError(f"{path}: CSV file is empty")
        header = rows[0] if not _is_numeric_row(rows[0]) else None
        body = rows[1:] if header else rows
        label_col = _label_column(header, spec, path)
        feats, labels = [], []
        for line_no, row in enumerate(body, start=2 if header else 1):
            try:
                values = [float(c) for j, c in enumerate(row) if j != label_col]
                if label_col is not None:
                    labels.append(float(row[label_col]))
            except (ValueError, IndexError) as exc:
                raise DataError(f"{path}:{line_no}: non-numeric or missing value ({exc})",
                                hint="CSV data must be numeric features plus an optional label column") from exc
            feats.append(values)
        widths = {len(f) for f in feats}
        if len(widths) > 1:
            raise DataError(f"{path}: rows have different numbers of features: {sorted(widths)}")
        self.path, self.keys = path, [key]
        self.features = np.asarray(feats, dtype=np.float64)
        if label_col is not None:
            lab = np.asarray(labels)
            self.labels = lab.astype(np.int64) if np.all(lab == np.round(lab)) else lab

    def __len__(self) -> int:
        return len(self.features)

    def read(self, i: int) -> dict[str, Any]:
        return {self.keys[0]: self.features[i]}

    def where(self, i: int) -> str:
        return f"{self.path.name} row {i + 1}"


def _is_numeric_row(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
        return True
    except ValueError:
        return False


def _label_column(header: list[str] | None, spec: DataSpec, path: Path) -> int | None:
    if spec.label_column is not None:
        if header and spec.label_column in header:
            return header.index(spec.label_column)
        if spec.label_column.lstrip("-").isdigit():
            return int(spec.label_column)
        raise DataError(f"{path}: no label column '{spec.label_column}'",
                        hint=f"columns: {', '.join(header or [])}")
    if header:
        for name in ("label", "labels", "y", "target", "class"):
            if name in header:
                return header.index(name)
    return None


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError("reading images needs Pillow", hint="pip install 'edgeml-toolchain[data]'") from exc
    return Image


def _read_labels_file(path: Path) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^(\d+)\s*[:,\s]\s*(.+)$", line)
        if m:
            mapping[m.group(2).strip()] = int(m.group(1))
        else:
            mapping[line] = n
    return mapping


class ImageFolderSource(Source):
    """A flat folder (unlabelled) or one sub-folder per class. Lists paths only; decodes on read."""

    kind = "image"

    def __init__(self, path: Path, spec: DataSpec, key: str):
        self.path, self.keys = path, [key]
        entries = sorted(os.scandir(path), key=lambda e: e.name)
        flat = [Path(e.path) for e in entries if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTS]
        class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
        if flat or not class_dirs:
            self.files = flat
            return
        names = [d.name for d in class_dirs]
        labels_file = Path(spec.labels_file) if spec.labels_file else (path / "labels.txt")
        if spec.labels_file and not labels_file.is_file():
            raise DataError(f"labels file '{labels_file}' not found")
        mapping = _read_labels_file(labels_file) if labels_file.is_file() else {n: i for i, n in enumerate(names)}
        missing = [n for n in names if n not in mapping]
        if missing:
            raise DataError(f"{labels_file}: class folder '{missing[0]}' is not in the labels file",
                            hint="add it, or fix the folder name")
        files, labels = [], []
        for d in class_dirs:
            for e in sorted(os.scandir(d.path), key=lambda e: e.name):
                if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTS:
                    files.append(Path(e.path))
                    labels.append(mapping[d.name])
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        inv = {v: k for k, v in mapping.items()}
        self.class_names = [inv.get(i, str(i)) for i in range(max(mapping.values()) + 1)]

    def __len__(self) -> int:
        return len(self.files)

    def open(self, i: int):
        Image = _pil()
        try:
            img = Image.open(self.files[i])
            img.load()
        except Exception as exc:  # PIL raises many types for bad files
            raise DataError(f"{self.files[i]}: unreadable image ({type(exc).__name__}: {exc})",
                            hint="remove or replace the file") from exc
        return img

    def check_readable(self, i: int) -> None:
        Image = _pil()
        try:
            with Image.open(self.files[i]) as img:
                img.verify()
        except Exception as exc:
            raise DataError(f"{self.files[i]}: unreadable image ({type(exc).__name__}: {exc})",
                            hint="remove or replace the file") from exc

    def read(self, i: int) -> dict[str, Any]:
        return {self.keys[0]: self.open(i)}

    def where(self, i: int) -> str:
        return str(self.files[i])


class DigitsSource(Source):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes) as grayscale images; offline."""

    kind = "image"
    SPLIT_SEED = 20240607  # fixed: the train/test split never depends on the sampling seed

    def __init__(self, spec: DataSpec, key: str):
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise MissingDependencyError("builtin:digits needs scikit-learn", hint="pip install 'edgeml-toolchain[data]'") from exc
        digits = load_digits()
        order = np.random.default_rng(self.SPLIT_SEED).permutation(len(digits.target))
        cut = int(0.8 * len(order))
        idx = {"all": np.sort(order), "train": order[:cut], "test": order[cut:]}[spec.split]
        self.images = np.clip(np.round(digits.images[idx] * (255 / 16)), 0, 255).astype(np.uint8)
        self.labels = digits.target[idx].astype(np.int64)
        self.class_names = [str(i) for i in range(10)]
        self.keys = [key]

    def __len__(self) -> int:
        return len(self.images)

    def read(self, i: int) -> dict[str, Any]:
        return {self.keys[0]: _pil().fromarray(self.images[i], mode="L")}

    def where(self, i: int) -> str:
        return f"builtin:digits[{i}]"


BUILTINS = {"digits": DigitsSource}


def open_source(spec: DataSpec, default_key: str) -> Source:
    """Open the source named by ``spec``; ``default_key`` names its single input where it has no names."""
    key = spec.input_name or default_key
    if spec.is_builtin:
        name = spec.source.split(":", 1)[1]
        if name not in BUILTINS:
            raise DataError(f"unknown builtin dataset '{spec.source}'",
                            hint="available: " + ", ".join(f"builtin:{n}" for n in BUILTINS))
        return BUILTINS[name](spec, key)
    path = spec.path
    if not path.exists():
        raise DataError(f"{path}: data not found", hint="pass a .npz/.npy/.csv file, an image folder or builtin:digits")
    if path.is_dir():
        src = ImageFolderSource(path, spec, key)
    else:
        suffix = path.suffix.lower()
        if suffix == ".npz":
            src = NpzSource(path)
        elif suffix == ".npy":
            src = NpySource(path, key)
        elif suffix == ".csv":
            src = CsvSource(path, spec, key)
        else:
            raise DataError(f"{path}: unsupported data file type '{suffix or path.name}'",
                            hint="use .npz, .npy, .csv, an image folder, a .toml data spec or builtin:digits")
    if spec.split != "all" and not spec.is_builtin:
        raise DataError(f"data spec '{spec.origin}': split= applies to builtin datasets only",
                        hint="point the spec at the split's own file or folder")
    return src
