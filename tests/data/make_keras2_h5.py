"""Regenerate keras2_cnn.h5: a small CNN saved by real Keras 2 (tf_keras), as published reference models are.

Run once with tf_keras installed (`pip install tf_keras`); the .h5 is committed so tests need no tf_keras.
The weights are seeded; the file's model_config uses Keras 2 keys (batch_input_shape, etc.).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tf_keras as k2  # noqa: E402

k2.utils.set_random_seed(7)
model = k2.Sequential([
    k2.layers.InputLayer(input_shape=(16, 16, 3), name="image"),
    k2.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
    k2.layers.BatchNormalization(name="bn1"),
    k2.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", name="dw2"),
    k2.layers.Conv2D(16, 1, activation="relu", name="pw2"),
    k2.layers.GlobalAveragePooling2D(name="gap"),
    k2.layers.Dense(5, activation="softmax", name="probs"),
], name="keras2_cnn")
# give batch-norm non-trivial statistics so outputs are not degenerate
model.get_layer("bn1").set_weights([np.random.RandomState(0).uniform(0.5, 1.5, 8).astype("float32") for _ in range(4)])
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras2_cnn.h5")
model.save(out, save_format="h5")
print("wrote", out, "with tf_keras", k2.__version__)
