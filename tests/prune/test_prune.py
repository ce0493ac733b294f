"""edgeml prune: magnitude sparsity is exact, channel pruning rebuilds a smaller model that computes the
same function when the removed channels were dead, fine-tuning is recorded, and bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edgeml.cli import cli as main
from edgeml.errors import DataError, EdgeMLError
from edgeml.prune import prune
from edgeml.prune.magnitude import polynomial

TRAIN = "builtin:digits?split=train&samples=300"
VAL = "builtin:digits?split=test"


def _keras():
    import keras

    return keras


def branchy_model(seed: int = 0):
    """Conv+BN+ReLU, a residual Add, a Concatenate, depthwise and separable convs, then Flatten -> Dense."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((8, 8, 3), name="image")
    a = L.ReLU(name="a_relu")(L.BatchNormalization(name="a_bn")(L.Conv2D(8, 3, padding="same", name="a")(inp)))
    b = L.Conv2D(8, 1, name="b")(a)
    res = L.Add(name="add")([a, b])  # a and b are one coupled group
    dw = L.DepthwiseConv2D(3, padding="same", name="dw")(res)
    c = L.Conv2D(8, 1, activation="relu", name="c")(dw)
    cat = L.Concatenate(name="cat")([res, c])  # 16 channels from two groups
    s = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep")(cat)
    x = L.Flatten(name="flat")(L.MaxPooling2D(name="pool")(s))
    x = L.Dense(8, activation="relu", name="fc")(x)
    out = L.Dense(4, name="logits")(x)
    return keras.Model(inp, out)


DEAD = [1, 5]  # channel indices made dead in every prunable group


def kill_channels(model):
    """Zero DEAD channels so they output exactly 0: removing them must not change the model's function."""
    for layer in model.layers:
        w = layer.get_weights()
        cls = type(layer).__name__
        if layer.name == "logits" or not w:
            continue
        if cls in ("Conv2D", "Dense"):
            w[0][..., DEAD] = 0
            w[1][DEAD] = 0
        elif cls == "SeparableConv2D":
            w[1][..., DEAD] = 0
            w[2][DEAD] = 0
        elif cls == "DepthwiseConv2D":
            w[1][DEAD] = 0
        elif cls == "BatchNormalization":  # gamma, beta, mean, var: 0 in -> 0 out
            w[1][DEAD] = 0
            w[2][DEAD] = 0
        layer.set_weights(w)
    return model


@pytest.fixture(scope="module")
def dead_model(tmp_path_factory):
    model = kill_channels(branchy_model())
    path = tmp_path_factory.mktemp("prune") / "branchy.keras"
    model.save(path)
    return path, model


def test_channel_pruning_removes_dead_channels_and_keeps_the_function(tmp_path, dead_model):
    path, model = dead_model
    r = prune(path, out=tmp_path / "p.keras", sparsity=0.25, method="channel")
    pruned = _keras().saving.load_model(tmp_path / "p.keras")
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(pruned(x), model(x), atol=1e-5)
    widths = {e["name"]: (e["channels_before"], e["channels_after"]) for e in r.layers}
    assert widths["a"] == widths["b"] == widths["c"] == widths["sep"] == widths["fc"] == (8, 6)
    assert r.after["macs"] < r.before["macs"] and r.after["params"] < r.before["params"]
    coupled = next(e for e in r.layers if e["name"] == "a")["coupled_with"]
    assert coupled == ["b"]  # the residual Add couples a and b
    assert pruned.get_layer("fc").kernel.shape[0] == 4 * 4 * 6  # Dense after Flatten sliced per position
    assert any("one-shot" in w for w in r.warnings)
    assert [s["layers"] for s in r.skipped] == [["logits"]]  # the model output keeps its width


def test_channel_pruning_mobilenet_v2_stays_valid(tmp_path):
    keras = _keras()
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=5)
    model.save(tmp_path / "m.keras")
    r = prune(tmp_path / "m.keras", out=tmp_path / "p.keras", sparsity=0.5, method="channel", criterion="bn")
    pruned = keras.saving.load_model(tmp_path / "p.keras")
    assert pruned(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 5)
    assert r.after["macs"] < 0.5 * r.before["macs"]
    stage = next(e for e in r.layers if e["name"] == "block_3_project")
    assert set(stage["coupled_with"]) == {"block_4_project", "block_5_project"}  # residual stage pruned together


def test_channel_pruning_skips_what_it_cannot_follow(tmp_path):
    keras = _keras()
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="c1")(inp)
    x = keras.layers.Reshape((8, 6 * 6), name="reshape")(x)  # the channel axis moves: not followed
    x = keras.layers.Dense(16, name="d1")(keras.layers.Flatten()(x))
    out = keras.layers.Dense(3, name="out")(x)
    keras.Model(inp, out).save(tmp_path / "m.keras")
    r = prune(tmp_path / "m.keras", out=tmp_path / "p.keras", sparsity=0.5, method="channel")
    skipped = {s["layers"][0]: s["reason"] for s in r.skipped}
    assert "moves the channel axis" in skipped["c1"]
    assert [(e["name"], e["channels_after"]) for e in r.layers] == [("d1", 8)]


def test_channel_pruning_with_nothing_prunable_is_refused(tmp_path):
    keras = _keras()
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Dense(3)(inp)).save(tmp_path / "m.keras")
    with pytest.raises(EdgeMLError, match="no prunable channels"):
        prune(tmp_path / "m.keras", out=tmp_path / "p.keras", sparsity=0.5, method="channel")
    assert not (tmp_path / "p.keras").exists()


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_sparsity_is_exact_and_the_model_stays_plain(tmp_path, dead_model, scope):
    path, model = dead_model
    r = prune(path, out=tmp_path / "p.keras", sparsity=0.6, scope=scope)
    pruned = _keras().saving.load_model(tmp_path / "p.keras")
    assert [type(layer).__name__ for layer in pruned.layers] == [type(layer).__name__ for layer in model.layers]
    kernels = [np.asarray(v) for layer in pruned.layers for v in layer.weights
               if v.path.endswith(("kernel", "depthwise_kernel", "pointwise_kernel"))]
    if scope == "layer":
        for k in kernels:
            assert (k == 0).sum() == round(0.6 * k.size)
    else:
        total = sum(k.size for k in kernels)
        assert sum((k == 0).sum() for k in kernels) == round(0.6 * total)
        assert len({round(e["sparsity"], 3) for e in r.layers}) > 1  # one threshold, uneven per layer
    assert r.after["gzip_bytes"] < r.before["gzip_bytes"] and r.after["macs"] == r.before["macs"]
    assert any("not dense-kernel latency" in n for n in r.notes)


def test_magnitude_fine_tuning_keeps_masks_and_records_cost(tmp_path, digits_keras):
    r = prune(digits_keras, out=tmp_path / "p.keras", sparsity=0.5, train=TRAIN, val=VAL, epochs=2)
    pruned = _keras().saving.load_model(tmp_path / "p.keras")
    for layer in pruned.layers:
        if hasattr(layer, "kernel"):
            k = np.asarray(layer.kernel)
            assert (k == 0).sum() == round(0.5 * k.size)
    t = r.training
    assert t["epochs"] >= 1 and t["samples"] == 300 and t["wall_s"] > 0
    assert t["flops"] == 3 * 2 * t["forward_macs"] * 300 * t["epochs"]
    assert 0.5 < r.after["accuracy"] <= 1 and "accuracy" in r.before
    assert not r.warnings


def test_channel_fine_tuning_on_digits(tmp_path, digits_keras):
    r = prune(digits_keras, out=tmp_path / "p.keras", sparsity=0.5, method="channel", train=TRAIN, val=VAL,
              epochs=2, lr=3e-3)
    assert r.after["macs"] <= 0.6 * r.before["macs"]  # both sides of the middle convs halve
    assert r.training["forward_macs"] == r.after["macs"]  # FLOPs of the network that was trained
    assert r.after["accuracy"] > 0.5


def test_polynomial_schedule():
    assert polynomial(0, 100, 0.8) == 0 and polynomial(100, 100, 0.8) == 0.8 and polynomial(500, 100, 0.8) == 0.8
    values = [polynomial(s, 100, 0.8) for s in range(101)]
    assert values == sorted(values) and values[50] > 0.4  # ramps fast, then flattens (cubic)


def test_onnx_one_shot_magnitude(tmp_path, tiny_onnx):
    r = prune(tiny_onnx, out=tmp_path / "p.onnx", sparsity=0.5)
    assert r.after["nonzero_params"] < r.before["nonzero_params"]
    assert all(abs(e["sparsity"] - 0.5) < 0.05 for e in r.layers)
    assert any("one-shot" in w for w in r.warnings)
    sess = ort.InferenceSession(str(tmp_path / "p.onnx"))
    feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
            for i in sess.get_inputs()}
    assert sess.run(None, feed)[0].shape[0] == 1
    with pytest.raises(EdgeMLError, match="magnitude pruning only"):
        prune(tiny_onnx, out=tmp_path / "c.onnx", sparsity=0.5, method="channel")


def test_subclassed_model_cannot_be_channel_pruned(tmp_path):
    keras = _keras()

    @keras.saving.register_keras_serializable(package="edgeml_tests")
    class Sub(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.d = keras.layers.Dense(4)

        def call(self, x):
            return self.d(x)

    m = Sub()
    m(np.zeros((1, 3), np.float32))
    m.save(tmp_path / "sub.keras")
    with pytest.raises(EdgeMLError, match="subclassed"):
        prune(tmp_path / "sub.keras", out=tmp_path / "p.keras", sparsity=0.5, method="channel")
    r = prune(tmp_path / "sub.keras", out=tmp_path / "m.keras", sparsity=0.5)  # magnitude needs no rebuild
    assert r.after["nonzero_params"] < r.before["nonzero_params"]


def test_training_data_that_does_not_fit_is_refused(tmp_path, digits_keras, dead_model):
    with pytest.raises(DataError):  # digits are 8x8x1, the model wants 8x8x3
        prune(dead_model[0], out=tmp_path / "p.keras", sparsity=0.5, train=TRAIN)
    keras = _keras()
    inp = keras.Input((8, 8, 1), name="image")
    out = keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inp)))
    keras.Model(inp, out).save(tmp_path / "five.keras")
    with pytest.raises(DataError, match="labels run from 0 to 9 but the model outputs 5 classes"):
        prune(tmp_path / "five.keras", out=tmp_path / "p.keras", sparsity=0.5, train=TRAIN)
    np.savez(tmp_path / "x.npz", image=np.zeros((20, 8, 8, 1), np.float32))
    with pytest.raises(DataError, match="no labels"):
        prune(digits_keras, out=tmp_path / "p.keras", sparsity=0.5, train=str(tmp_path / "x.npz"))
    assert not (tmp_path / "p.keras").exists()


def test_model_without_prunable_layers(tmp_path):
    keras = _keras()
    inp = keras.Input((8, 8, 3))
    keras.Model(inp, keras.layers.GlobalAveragePooling2D()(inp)).save(tmp_path / "m.keras")
    with pytest.raises(EdgeMLError, match="no prunable layers"):
        prune(tmp_path / "m.keras", out=tmp_path / "p.keras", sparsity=0.5)


@pytest.mark.parametrize("args, message", [
    (["--sparsity", "0"], "--sparsity"),
    (["--sparsity", "1"], "--sparsity"),
    (["--sparsity", "0.5", "--exclude", "("], "not a valid regular expression"),
    (["--sparsity", "0.5", "-o", "{tmp}/p.tflite"], "saved as .keras"),
    (["--sparsity", "0.5", "-o", "{model}"], "overwrite the input"),
])
def test_cli_bad_input_one_line_error(tmp_path, dead_model, args, message):
    model = str(dead_model[0])
    args = [a.format(tmp=tmp_path, model=model) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "p.keras")]
    res = CliRunner().invoke(main, ["prune", model, *args])
    assert res.exit_code in (2, 3) and message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "p.keras").exists()


def test_cli_json_and_table(tmp_path, dead_model):
    res = CliRunner().invoke(main, ["prune", str(dead_model[0]), "--sparsity", "0.25", "--method", "channel",
                                    "-o", str(tmp_path / "p.keras"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == "edgeml.prune/1" and data["method"] == "channel" and data["after"]["macs"] > 0
    res = CliRunner().invoke(main, ["prune", str(dead_model[0]), "--sparsity", "0.5", "-o", str(tmp_path / "m.keras")])
    assert res.exit_code == 0, res.output
    assert "gzip size" in res.stdout and "sparsity" in res.stdout and "50.0%" in res.stdout


def test_exclude_leaves_layers_dense_and_lists_them(tmp_path, dead_model):
    path, _ = dead_model
    r = prune(path, out=tmp_path / "p.keras", sparsity=0.5, exclude="^(a|logits)$")
    names = {e["name"].split("/")[0] for e in r.layers}
    assert "a" not in names and "logits" not in names and "b" in names
    assert {s["layers"][0] for s in r.skipped} == {"a", "logits"}
    r = prune(path, out=tmp_path / "c.keras", sparsity=0.25, method="channel", exclude="^b$")
    assert not any(e["name"] in ("a", "b") for e in r.layers)  # b is coupled with a: the whole group stays
    assert any(s["layers"] == ["a", "b"] and "excluded" in s["reason"] for s in r.skipped)


def test_constant_schedule_and_global_channel_scope(tmp_path, digits_keras):
    r = prune(digits_keras, out=tmp_path / "p.keras", sparsity=0.7, schedule="constant", train=TRAIN, epochs=1)
    assert all(abs(e["sparsity"] - 0.7) < 0.01 for e in r.layers)
    r = prune(digits_keras, out=tmp_path / "g.keras", sparsity=0.5, method="channel", scope="global")
    kept = sum(e["channels_after"] for e in r.layers)
    assert kept == pytest.approx(0.5 * sum(e["channels_before"] for e in r.layers), abs=2)
    assert all(e["channels_after"] >= 0.1 * e["channels_before"] for e in r.layers)  # no layer emptied


# --- Keras 2 .h5 and Sequential models, pruned end to end (issue 24 item 9) --------------------------------------

DATA = Path(__file__).resolve().parents[1] / "data"
K2_BLOCK = "keras2_mobile_block.h5"  # made by tests/data/make_keras2_prune_h5.py with tf_keras
K2_SEQ = "keras2_seq_cnn.h5"


def _data(tmp_path, n=32, seed=0):
    """Seeded 16x16x3 images with class labels 0..3 (indices, not one-hot), as an .npz data spec."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 4, n)
    path = tmp_path / "data.npz"
    np.savez(path, image=x, labels=y)
    return str(path), x, y


def seq_cnn(seed: int = 0):
    """Keras 3 Sequential CNN with logits out, compiled with one-hot cross-entropy from logits."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([keras.Input((16, 16, 3)), L.Conv2D(8, 3, activation="relu", name="c1"),
                              L.MaxPooling2D(name="pool"), L.Conv2D(16, 3, activation="relu", name="c2"),
                              L.Dropout(0.1, name="drop"), L.GlobalAveragePooling2D(name="gap"),
                              L.Dense(16, activation="relu", name="fc"), L.Dense(4, name="logits")], name="seq_cnn")
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


def _prune_reload_quantize(tmp_path, model_path, data):
    """prune (channel) -> fine-tune 1 epoch -> save -> reload with plain Keras -> quantize to int8 TFLite."""
    from edgeml.quantize import quantize

    spec, x, y = data
    r = prune(model_path, out=tmp_path / "p.keras", sparsity=0.5, method="channel", train=spec, val=spec,
              epochs=1, batch_size=16)
    assert r.after["macs"] < 0.7 * r.before["macs"] and r.after["params"] < r.before["params"]
    assert r.training["epochs"] == 1 and r.training["samples"] == len(y)
    keras = _keras()
    original = keras.saving.load_model(model_path, compile=False) if str(model_path).endswith(".keras") else None
    reloaded = keras.saving.load_model(tmp_path / "p.keras")  # plain Keras 3: no edgeml compatibility objects
    assert reloaded.output_shape == (None, 4)
    if original is not None:
        assert type(reloaded).__name__ == type(original).__name__
    acc = float(np.mean(np.argmax(reloaded.predict(x, verbose=0), -1) == y))
    assert acc == pytest.approx(r.after["accuracy"], abs=1e-9)  # the saved model is the one that was scored
    q = quantize(tmp_path / "p.keras", out=tmp_path / "p.tflite", calib=spec)
    assert q.format == "tflite" and q.mode == "int8" and (tmp_path / "p.tflite").stat().st_size > 0
    assert q.metrics.argmax_agreement >= 0.8
    return r, reloaded


def test_sequential_cnn_pruned_fine_tuned_reloaded_and_quantized(tmp_path):
    seq_cnn().save(tmp_path / "seq.keras")
    r, reloaded = _prune_reload_quantize(tmp_path, tmp_path / "seq.keras", _data(tmp_path))
    widths = {e["name"]: (e["channels_before"], e["channels_after"]) for e in r.layers}
    assert widths == {"c1": (8, 4), "c2": (16, 8), "fc": (16, 8)}  # through MaxPooling, Dropout and GAP
    assert type(reloaded).__name__ == "Sequential"
    assert "CategoricalCrossentropy(from_logits=True)" in r.training["loss"]
    assert "one-hot" in r.training["loss"]


def test_keras2_h5_mobile_block_pruned_fine_tuned_reloaded_and_quantized(tmp_path):
    r, reloaded = _prune_reload_quantize(tmp_path, DATA / K2_BLOCK, _data(tmp_path))
    widths = {e["name"]: (e["channels_before"], e["channels_after"]) for e in r.layers}
    assert widths["pw1"] == widths["block_project"] == (8, 4)  # the residual Add couples them ('/' renamed)
    assert widths["stem"] == (8, 4) and widths["expand"] == (16, 8)
    assert set(next(e for e in r.layers if e["name"] == "pw1")["coupled_with"]) == {"block_project"}
    assert "categorical_crossentropy" in r.training["loss"] and "one-hot" in r.training["loss"]
    assert any("Keras 3 .keras" in n for n in r.notes)
    assert reloaded.get_layer("dw2").kernel.shape == (3, 3, 8, 1)  # DepthwiseConv2D sliced with its input


def test_keras2_h5_sequential_cnn_is_channel_pruned(tmp_path):
    r = prune(DATA / K2_SEQ, out=tmp_path / "p.keras", sparsity=0.5, method="channel")
    assert [(e["name"], e["channels_after"]) for e in r.layers] == [("c1", 4), ("c2", 8), ("fc", 8)]
    reloaded = _keras().saving.load_model(tmp_path / "p.keras")
    assert type(reloaded).__name__ == "Sequential" and reloaded.output_shape == (None, 4)


def test_reshape_keeping_channels_is_followed_and_resized(tmp_path):
    """Keras 2 MobileNet's head: GAP -> Reshape((1, 1, C)) -> 1x1 Conv -> Reshape((classes,))."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.PReLU(shared_axes=[1, 2], name="prelu")(L.Conv2D(8, 3, name="c1")(inp))
    x = L.Reshape((1, 1, 8), name="to_map")(L.GlobalAveragePooling2D(name="gap")(x))
    x = L.Conv2D(6, 1, name="head")(L.ZeroPadding2D(0, name="pad")(x))
    out = L.Activation("softmax")(L.Reshape((6,), name="to_vec")(x))
    keras.Model(inp, out).save(tmp_path / "m.keras")
    r = prune(tmp_path / "m.keras", out=tmp_path / "p.keras", sparsity=0.5, method="channel")
    assert [(e["name"], e["channels_after"]) for e in r.layers] == [("c1", 4)]
    pruned = keras.saving.load_model(tmp_path / "p.keras")
    assert pruned.get_layer("to_map").target_shape == (1, 1, 4)
    assert pruned.get_layer("prelu").get_weights()[0].shape == (1, 1, 4)
    assert pruned.output_shape == (None, 6)


def test_fine_tuning_targets_follow_the_loss():
    from edgeml.prune.finetune import loss_for, targets

    keras = _keras()
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(4)(inp))
    y = np.array([0, 3, 1])
    for loss in ("categorical_crossentropy", keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                 keras.losses.categorical_crossentropy, "mse"):
        np.testing.assert_array_equal(targets(model, loss, y), np.eye(4)[y])
    for loss in ("sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy(from_logits=True)):
        np.testing.assert_array_equal(targets(model, loss, y), y)
    assert "one-hot" in loss_for(model, {"dense": "categorical_crossentropy"})[1]
    binary = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(inp))
    assert targets(binary, "binary_crossentropy", np.array([0, 1])).tolist() == [[0.0], [1.0]]


def test_keras2_h5_with_tensorflow_ops_is_refused_clearly():
    from edgeml.errors import ModelLoadError
    from edgeml.formats.keras import load

    with pytest.raises(ModelLoadError, match=r"TFOpLambda layers \(__operators__.add\)") as exc:
        load(DATA / "keras2_tf_op.h5")
    assert "tf_keras" in exc.value.hint


def test_keras2_h5_optimizer_arguments_keras3_dropped_still_compile(tmp_path):
    """Keras <= 2.2 saved `lr` (and `decay`) in the optimizer config; Keras 3 refuses them."""
    import json
    import shutil

    import h5py

    from edgeml.formats.keras import load

    path = tmp_path / "old.h5"
    shutil.copyfile(DATA / K2_SEQ, path)
    with h5py.File(path, "r+") as f:
        training = json.loads(f.attrs["training_config"])
        training["optimizer_config"] = {"class_name": "Adam", "config": {"lr": 0.0001, "beta_1": 0.9, "decay": 0.0}}
        f.attrs["training_config"] = json.dumps(training)
    model = load(path, compile=True)
    assert model.compiled and "categorical_crossentropy" in str(model.loss)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)
    assert json.loads(h5py.File(path, "r").attrs["training_config"])["optimizer_config"]["config"]["lr"] == 0.0001


def test_strided_pointwise_convs_are_found_without_tensorflow(tmp_path, monkeypatch):
    from edgeml.prune.finetune import avoid_onednn_crash, strided_pointwise_convs

    keras = _keras()
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, name="k3s2")(inp)
    y = keras.layers.Conv2D(4, 1, strides=2, name="shortcut")(inp)
    z = keras.layers.Conv2D(4, 1, name="k1s1")(keras.layers.Cropping2D(((0, 1), (0, 1)))(y))
    keras.Model(inp, [x, z]).save(tmp_path / "m.keras")
    assert strided_pointwise_convs(tmp_path / "m.keras") == [("shortcut", 2)]
    assert strided_pointwise_convs(DATA / K2_BLOCK) == []
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    note, warning = avoid_onednn_crash(tmp_path / "m.keras")  # TensorFlow is imported here: too late to switch
    assert note is None and "shortcut" in warning and "TF_ENABLE_ONEDNN_OPTS=0" in warning
