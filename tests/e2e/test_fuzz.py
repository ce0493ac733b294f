"""Seeded fuzzing of the loaders (a small count here; ``make fuzz`` runs a larger one): every mutant of a valid
TFLite, ONNX, Keras and npz file is either loaded or refused with an EdgeMLError (exit 3), never a crash,
a hang or another exception (exit 4)."""

from __future__ import annotations

import fuzz_loaders
import numpy as np


def test_mutate_is_seeded_and_reaches_inside_zip_members(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(10.0))
    data = (tmp_path / "d.npz").read_bytes()
    a = [fuzz_loaders.mutate(data, np.random.default_rng([3, 0, i])) for i in range(40)]
    b = [fuzz_loaders.mutate(data, np.random.default_rng([3, 0, i])) for i in range(40)]
    assert a == b and sum(m != data for m, _ in a) >= 35  # (zeroing zeros can leave a file as it was)
    assert any(op.startswith("member:") for _, op in a)


def test_loaders_only_load_or_refuse_mutants(tiny_onnx, tiny_tflite, tiny_keras, tmp_path):
    npz = tmp_path / "data.npz"
    np.savez(npz, image=np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32), labels=np.arange(6))
    records = fuzz_loaders.drive([tiny_onnx, tiny_tflite, tiny_keras, npz], count=12, seed=0, per_mutant=60,
                                 keep=tmp_path / "findings")
    s = fuzz_loaders.summary(records)
    assert s["mutants"] == 48
    assert s["findings"] == [], s["findings"]
    assert s["outcomes"].get("refused", 0) > 0  # the mutants do reach the error paths
