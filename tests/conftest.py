from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))

import helpers  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_onnx(models_dir) -> Path:
    return helpers.onnx_cnn(models_dir / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_keras_model():
    return helpers.keras_cnn()


@pytest.fixture(scope="session")
def tiny_keras(models_dir, tiny_keras_model) -> Path:
    path = models_dir / "tiny.keras"
    tiny_keras_model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_tflite(models_dir, tiny_keras_model) -> Path:
    return helpers.keras_to_tflite(tiny_keras_model, models_dir / "tiny.tflite")


@pytest.fixture(scope="session")
def keras2_h5() -> Path:
    return DATA / "keras2_cnn.h5"


@pytest.fixture(scope="session")
def digits_keras(models_dir) -> Path:
    """The demo CNN trained briefly on builtin digits (seeded): a model whose accuracy means something."""
    from edgeml.demo import train_cnn

    model, _ = train_cnn(epochs=4, seed=0)
    path = models_dir / "digits.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def board(tmp_path_factory):
    """A loopback 'board': a real sshd on 127.0.0.1 with throwaway keys (see tests/sshd.py)."""
    import sshd

    if sshd.sshd_binary() is None:
        pytest.skip("sshd is not installed (.ci/run installs openssh-server)")
    b = sshd.LoopbackBoard(tmp_path_factory.mktemp("board"))
    yield b
    b.stop()
