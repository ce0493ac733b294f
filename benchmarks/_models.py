"""Reference models for the benchmarks, built here (no downloads): MobileNetV2 with re-estimated
batch-norm statistics, synthetic image-like calibration data, and the digits CNN."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
WORK = Path(__file__).parent / "_work"


def images(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """Smooth random RGB images in [-1, 1] (MobileNetV2's range): low-frequency blobs plus a little noise,
    so activations look more like natural images than white noise does."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (n, 7, 7, 3)).astype(np.float32)
    up = np.repeat(np.repeat(coarse, size // 7 + 1, axis=1), size // 7 + 1, axis=2)[:, :size, :size]
    return np.clip(up + rng.normal(0, 0.15, up.shape).astype(np.float32), -1, 1)


def mobilenet_v2(path: Path | None = None) -> Path:
    """keras.applications MobileNetV2 (224, weights=None) with batch-norm statistics re-estimated on
    synthetic images (momentum 0 for one training-mode pass), saved as .keras."""
    path = path or WORK / "mobilenet_v2.keras"
    if path.exists():
        return path
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    model(images(32, seed=99), training=True)  # moving stats := statistics of these images, layer by layer
    for bn in bns:
        bn.momentum = 0.99
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def calib_npz(n: int = 100, path: Path | None = None) -> Path:
    path = path or WORK / f"calib{n}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, input_layer=images(n, seed=1))
    return path


def digits_cnn(path: Path | None = None, epochs: int = 15) -> tuple[Path, dict]:
    import json

    path = path or WORK / "digits_cnn.keras"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    from edgeml.demo import train_cnn

    model, cost = train_cnn(epochs=epochs, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    meta.write_text(json.dumps(cost))
    return path, cost


def median_latency_ms(fns: dict, runs: int = 50, warmup: int = 5) -> dict[str, float]:
    """Interleaved timing (A B A B ...) of zero-argument callables; median ms each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t) * 1000)
    return {k: float(np.median(v)) for k, v in times.items()}
