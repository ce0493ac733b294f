"""DataSpec: where data comes from and how to sample and preprocess it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeml._compat import tomllib
from edgeml.errors import DataError
from edgeml.options import Color, Domain, Layout, Sampling, Split

NORM_PRESETS = {
    # name: (scale applied to 0..255 pixels, mean, std) -> x = (p * scale - mean) / std
    "0..1": (1 / 255, (0.0,), (1.0,)),
    "-1..1": (1 / 127.5, (1.0,), (1.0,)),
    "imagenet": (1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "raw": (1.0, (0.0,), (1.0,)),
}
SAMPLING = Sampling.values()
DOMAINS = Domain.values()
SPLITS = Split.values()


@dataclass
class DataSpec:
    """Options shared by --calib, --data and --train. Unset preprocessing options follow the model."""

    source: str
    split: str = "all"
    samples: int | None = None
    seed: int = 0
    sampling: str = "random"
    norm: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    size: tuple[int, int] | None = None
    crop: float | None = None
    color: str | None = None
    layout: str | None = None
    labels_file: str | None = None
    label_column: str | None = None
    input_name: str | None = None
    raw_pixels: bool = False
    domain: str = "auto"
    origin: str = field(default="", repr=False)

    @property
    def is_builtin(self) -> bool:
        return self.source.startswith("builtin:")

    @property
    def path(self) -> Path:
        return Path(self.source)

    @classmethod
    def parse(cls, text: str, **overrides: Any) -> DataSpec:
        """Parse ``SOURCE[?k=v&...]`` or a ``.toml`` data-spec file; ``overrides`` (not None) win."""
        if not text:
            raise DataError("empty data spec", hint="pass a path, a .toml data spec or builtin:digits")
        options: dict[str, Any] = {}
        source = text
        if text.endswith(".toml") and Path(text).is_file():
            options, source = _read_toml(Path(text))
        elif "?" in text and not Path(text).exists():
            source, query = text.split("?", 1)
            options = _parse_query(text, query)
        options.update({k: v for k, v in overrides.items() if v is not None})
        return cls._build(source, options, origin=text)

    @classmethod
    def _build(cls, source: str, options: dict[str, Any], origin: str) -> DataSpec:
        names = {f.name for f in dataclasses.fields(cls)} - {"source", "origin"}
        unknown = sorted(set(options) - names)
        if unknown:
            raise DataError(f"data spec '{origin}': unknown option '{unknown[0]}'",
                            hint="known options: " + ", ".join(sorted(names)))
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            kwargs[key] = _coerce(key, value, origin)
        spec = cls(source=source, origin=origin, **kwargs)
        spec._check()
        return spec

    def _check(self) -> None:
        o = self.origin or self.source
        if self.split not in SPLITS:
            raise DataError(f"data spec '{o}': split must be one of {', '.join(SPLITS)}, got '{self.split}'")
        if self.sampling not in SAMPLING:
            raise DataError(f"data spec '{o}': sampling must be one of {', '.join(SAMPLING)}, got '{self.sampling}'")
        if self.samples is not None and self.samples < 1:
            raise DataError(f"data spec '{o}': samples must be >= 1, got {self.samples}")
        if self.norm is not None and self.norm not in NORM_PRESETS:
            raise DataError(f"data spec '{o}': unknown norm '{self.norm}'",
                            hint="presets: " + ", ".join(NORM_PRESETS) + " (or set scale/mean/std)")
        if self.domain not in DOMAINS:
            raise DataError(f"data spec '{o}': domain must be one of {', '.join(DOMAINS)}, got '{self.domain}'",
                            hint="auto: by dtype; real: values are real numbers (quantized with the model's "
                                 "scale); quantized: values are already the model's integers")
        if self.color is not None and self.color not in Color.values():
            raise DataError(f"data spec '{o}': color must be rgb or grayscale, got '{self.color}'")
        if self.layout is not None and self.layout not in Layout.values():
            raise DataError(f"data spec '{o}': layout must be nhwc or nchw, got '{self.layout}'")
        if self.crop is not None and not 0 < self.crop <= 1:
            raise DataError(f"data spec '{o}': crop is the kept centre fraction, in (0, 1]; got {self.crop}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("origin")
        return d


def _parse_query(text: str, query: str) -> dict[str, str]:
    """``k=v&k=v`` taken literally: values are paths too, so ``+`` and ``%`` keep their meaning in a path."""
    options: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not key.strip():
            raise DataError(f"data spec '{text}': cannot parse options '{query}'",
                            hint="write options as SOURCE?key=value&key=value")
        options[key.strip()] = value if sep else ""
    return options


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid TOML data spec ({exc})") from exc
    table = doc.get("data", doc)
    if "source" not in table:
        raise DataError(f"{path}: data spec has no 'source' key", hint="add source = \"images/\" under [data]")
    options = dict(table)
    source = str(options.pop("source"))
    if not source.startswith("builtin:") and not Path(source).is_absolute():
        source = str(path.parent / source)  # relative to the spec file
    return options, source


def _coerce(key: str, value: Any, origin: str) -> Any:
    try:
        if key in ("samples", "seed"):
            return int(value)
        if key in ("scale", "crop"):
            return float(value)
        if key in ("mean", "std"):
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            return tuple(float(v) for v in items)
        if key == "size":
            items = value if isinstance(value, (list, tuple)) else str(value).lower().replace("x", ",").split(",")
            nums = tuple(int(v) for v in items)
            return nums * 2 if len(nums) == 1 else nums[:2]
        if key == "raw_pixels":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "")
        return str(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"data spec '{origin}': bad value for '{key}': {value!r}") from exc
