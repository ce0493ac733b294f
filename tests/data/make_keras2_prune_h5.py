"""Regenerate the Keras 2 (tf_keras) .h5 fixtures of the prune / Keras 2 compatibility tests.

Run once with tf_keras installed (`pip install tf_keras==2.21.0`, matching TensorFlow); the .h5 files are
committed so the tests need no tf_keras. Weights are seeded; the configs use Keras 2 keys.

- keras2_mobile_block.h5: MobileNet-style functional block (Conv + BN + ReLU6, DepthwiseConv2D + BN + ReLU6,
  an inverted residual joined by Add, a layer named with '/' as Keras 2's MobileNetV3 names them, Dropout),
  compiled with categorical (one-hot) cross-entropy.
- keras2_seq_cnn.h5: Sequential Conv2D / MaxPooling2D / GlobalAveragePooling2D / Dense, categorical
  cross-entropy.
- keras2_tf_op.h5: a model in which Keras 2 recorded a raw TensorFlow op (x + 3.0) as a TFOpLambda layer.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tf_keras as k2  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
L = k2.layers


def bn_stats(model):
    """Non-trivial batch-norm statistics, so outputs are not degenerate and BN slicing is exercised."""
    rng = np.random.RandomState(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n).astype("float32"), rng.uniform(-0.2, 0.2, n).astype("float32"),
                               rng.uniform(-0.2, 0.2, n).astype("float32"), rng.uniform(0.5, 1.5, n).astype("float32")])


def bn_relu6(x, name):
    return L.ReLU(6.0, name=name + "_relu")(L.BatchNormalization(name=name + "_bn")(x))


k2.utils.set_random_seed(3)
inp = k2.Input((16, 16, 3), name="image")
x = bn_relu6(L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inp), "stem")
x = bn_relu6(L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw1")(x), "dw1")
x = L.BatchNormalization(name="pw1_bn")(L.Conv2D(8, 1, use_bias=False, name="pw1")(x))
y = bn_relu6(L.Conv2D(16, 1, use_bias=False, name="expand")(x), "expand")
y = bn_relu6(L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw2")(y), "dw2")
y = L.BatchNormalization(name="block/project_bn")(L.Conv2D(8, 1, use_bias=False, name="block/project")(y))
x = L.Add(name="add")([x, y])
x = L.GlobalAveragePooling2D(name="gap")(x)
x = L.Dropout(0.1, name="drop")(x)
out = L.Dense(4, activation="softmax", name="probs")(x)
block = k2.Model(inp, out, name="k2_mobile_block")
bn_stats(block)
block.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
block.save(os.path.join(HERE, "keras2_mobile_block.h5"), save_format="h5")

k2.utils.set_random_seed(4)
seq = k2.Sequential([
    L.Conv2D(8, 3, activation="relu", input_shape=(16, 16, 3), name="c1"),
    L.MaxPooling2D(name="pool1"),
    L.Conv2D(16, 3, activation="relu", name="c2"),
    L.GlobalAveragePooling2D(name="gap"),
    L.Dense(16, activation="relu", name="fc"),
    L.Dense(4, activation="softmax", name="probs"),
], name="k2_seq_cnn")
seq.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
seq.save(os.path.join(HERE, "keras2_seq_cnn.h5"), save_format="h5")

k2.utils.set_random_seed(5)
inp = k2.Input((4,), name="x")
out = L.Dense(2, name="d")(inp + 3.0)  # recorded as TFOpLambda 'tf.__operators__.add'
k2.Model(inp, out).save(os.path.join(HERE, "keras2_tf_op.h5"), save_format="h5")
print("wrote keras2_mobile_block.h5, keras2_seq_cnn.h5, keras2_tf_op.h5 with tf_keras", k2.__version__)
