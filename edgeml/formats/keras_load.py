"""Load Keras 3 models (.keras) and legacy Keras 2 HDF5 models (.h5, with the fixes Keras 3 needs to read them);
edgeml.formats.keras describes them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeml._quiet import native_stderr_captured
from edgeml._tf import keras as import_keras
from edgeml.errors import ModelLoadError

log = logging.getLogger(__name__)


def _h5_model_config(path: Path) -> dict:
    """The architecture stored in a Keras HDF5 file (clear errors for weights-only or broken files)."""
    import json

    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise ModelLoadError(f"{path}: corrupt or truncated HDF5 file ({exc})", hint="re-save the model") from exc
    if raw is None:
        raise ModelLoadError(f"{path}: HDF5 file holds weights only, no model architecture",
                             hint="build the model in code, load_weights() this file, then model.save('model.keras')")
    try:
        return json.loads(raw.decode() if hasattr(raw, "decode") else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: the HDF5 model_config is not valid JSON ({exc})", hint="re-save the model") \
            from exc


# Keras 2 recorded raw TensorFlow calls on symbolic tensors (x + 3, tf.nn.relu6(x), x[:, 0]) as these layers;
# they hold TensorFlow function names, which Keras 3 has no way to rebuild.
_TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


def config_dicts(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a Keras model config (nested layers, sub-models), parents first; a caller may edit a
    dict's children before they are visited."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from config_dicts(v)
    elif isinstance(node, list):
        for v in node:
            yield from config_dicts(v)


def _keras2_fixes(config: Any, path: Path) -> tuple[Any, list[str]]:
    """Rewrite a Keras 2 model_config into one Keras 3 accepts, changing nothing the model computes.

    - ``DepthwiseConv2D`` configs carry ``groups: 1`` (Keras 3 rejects the argument); it is dropped.
    - Layer names with ``/`` (``Conv/BatchNorm`` in Keras 2's MobileNetV3) are invalid in Keras 3; the ``/``
      becomes ``_`` everywhere the name is referenced. (HDF5 weights are matched by layer order, not name.)
    Returns (config, what was changed)."""
    names: set[str] = set()
    found_ops: dict[str, int] = {}

    for node in config_dicts(config):
        cls = node.get("class_name")
        cfg = node.get("config")
        if cls in _TF_OP_LAYERS:
            fn = cfg.get("function", "?") if isinstance(cfg, dict) else "?"
            found_ops[str(fn)] = found_ops.get(str(fn), 0) + 1
        if cls == "DepthwiseConv2D" and isinstance(cfg, dict) and "groups" in cfg:
            if cfg["groups"] != 1:
                raise ModelLoadError(f"{path}: layer {cfg.get('name')}: DepthwiseConv2D with groups="
                                     f"{cfg['groups']} has no Keras 3 equivalent",
                                     hint="re-export the model from Keras 2 as a SavedModel or .tflite, which "
                                          "edgeml reads")
            del cfg["groups"]
        if isinstance(cfg, dict) and isinstance(cfg.get("name"), str) and "/" in cfg["name"]:
            names.add(cfg["name"])
    if found_ops:
        ops = ", ".join(f"{fn} x{n}" if n > 1 else fn for fn, n in sorted(found_ops.items()))
        raise ModelLoadError(f"{path}: Keras 2 recorded raw TensorFlow operations in this model as TFOpLambda layers "
                             f"({ops}); Keras 3 cannot rebuild them",
                             hint="load it with tf_keras (pip install tf_keras) and export a SavedModel "
                                  "(model.export(DIR)) or .tflite, which edgeml reads; or rebuild those operations "
                                  "as Keras layers")
    changes = []
    if names:
        scan_names: list[str] = []

        def collect(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("config"), dict) and isinstance(node["config"].get("name"), str):
                    scan_names.append(node["config"]["name"])
                for v in node.values():
                    collect(v)
            elif isinstance(node, list):
                for v in node:
                    collect(v)

        collect(config)
        taken = set(scan_names)
        mapping = {}
        for old in sorted(names):
            new = old.replace("/", "_")
            while new in taken:
                new += "_"
            taken.add(new)
            mapping[old] = new

        def rename(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rename(v) for k, v in node.items()}
            if isinstance(node, list):
                return [rename(v) for v in node]
            return mapping.get(node, node) if isinstance(node, str) else node

        config = rename(config)
        changes.append(f"{len(mapping)} layer name(s) with '/' renamed ('/' -> '_'), e.g. "
                       f"{next(iter(mapping))} -> {next(iter(mapping.values()))}")
    return config, changes


def _keras2_optimizer_fixes(training: dict, keras: Any) -> list[str]:
    """Make a Keras 2 training_config's optimizer one Keras 3 can build (in place): ``lr`` is ``learning_rate``,
    and arguments Keras 3 optimizers no longer take (``decay``, ...) are dropped. Only the optimizer is touched
    (fine-tuning and re-saving use the loss; the old optimizer's state is not carried over anyway)."""
    import inspect

    opt = training.get("optimizer_config")
    if not isinstance(opt, dict) or not isinstance(opt.get("config"), dict):
        return []
    cfg = opt["config"]
    try:
        cls = type(keras.optimizers.get(opt.get("class_name", "")))
    except (ValueError, TypeError):
        return []  # unknown optimizer: let Keras say so
    if "lr" in cfg:
        cfg.setdefault("learning_rate", cfg.pop("lr"))
    accepted = set(inspect.signature(cls.__init__).parameters)
    dropped = sorted(k for k in cfg if k not in accepted)
    for k in dropped:
        del cfg[k]
    return [f"optimizer {opt.get('class_name')}: dropped Keras 2 arguments {', '.join(dropped)}"] if dropped else []


def _load_h5(path: Path, keras: Any, compile: bool) -> Any:
    """Load a (Keras 2) HDF5 model, through a patched temporary copy when its config needs Keras 3 fixes."""
    import json
    import shutil
    import tempfile

    import h5py

    original = _h5_model_config(path)
    config, changes = _keras2_fixes(json.loads(json.dumps(original)), path)
    training = None
    if compile:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("training_config")
        if raw is not None:
            training = json.loads(raw.decode() if hasattr(raw, "decode") else raw)
            before = json.dumps(training)
            changes += _keras2_optimizer_fixes(training, keras)
            if json.dumps(training) == before:
                training = None
    if config == original and training is None and path.suffix.lower() in (".h5", ".hdf5"):
        return keras.saving.load_model(str(path), compile=compile, safe_mode=True)
    with tempfile.TemporaryDirectory(prefix="edgeml-h5-") as tmp:
        copy = Path(tmp) / "model.h5"  # Keras picks its HDF5 loader by the .h5 suffix
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
            if training is not None:
                f.attrs["training_config"] = json.dumps(training)
        model = keras.saving.load_model(str(copy), compile=compile, safe_mode=True)
    for change in changes:
        log.info("%s: %s", path, change)
    return model


def error_text(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    # Keras wraps the real reason after a dump of the whole layer config; keep the reason.
    marker = "Exception encountered:"
    if marker in text:
        cls = text.split("deserializing class '", 1)[-1].split("'", 1)[0] if "deserializing class '" in text else ""
        text = (f"layer class {cls}: " if cls else "") + text.split(marker, 1)[1].strip()
    return text[:300]


def load(path: str | Path, *, compile: bool = False) -> Any:
    """Load a .keras / .h5 model with Keras ``safe_mode`` kept on.

    Keras 2 HDF5 files are loaded with their configs fixed where Keras 3 rejects them (see ``_keras2_fixes``):
    the loaded model holds only built-in Keras 3 classes, so it saves to .keras and reloads like any other."""
    p = Path(path)
    keras = import_keras()
    from edgeml.formats.detect import ModelFormat, detect_format

    h5 = detect_format(p) is ModelFormat.H5
    try:
        with native_stderr_captured():
            if h5:
                return _load_h5(p, keras, compile)
            return keras.saving.load_model(str(p), compile=compile, safe_mode=True)
    except ModelLoadError:
        raise
    except Exception as exc:
        text = error_text(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise ModelLoadError(f"{p}: the model contains a Lambda layer (arbitrary code); edgeml keeps Keras "
                                 "safe_mode on and will not execute it",
                                 hint="replace the Lambda layer with a registered custom or built-in layer") from exc
        if "Could not locate" in text or "Unknown layer" in text or "custom_objects" in text:
            raise ModelLoadError(f"{p}: the model uses a custom class Keras cannot find: {text}",
                                 hint="custom layers must be registered with "
                                      "@keras.saving.register_keras_serializable in an importable package") from exc
        raise ModelLoadError(f"{p}: Keras cannot load this model: {text}",
                             hint="check it was saved with model.save(); edgeml reads .keras and Keras 2 .h5") from exc
