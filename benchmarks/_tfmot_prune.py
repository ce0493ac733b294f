"""TFMOT magnitude pruning of the digits CNN under tf_keras (Keras 2), for the side-by-side comparison.

Run by prune_models.py in its own process with TF_USE_LEGACY_KERAS=1 (TFMOT cannot prune Keras 3 models):
  python benchmarks/_tfmot_prune.py WEIGHTS.npz TRAIN.npz SPARSITY EPOCHS OUT.tflite
WEIGHTS.npz holds the Keras 3 model's weights in layer order (conv1, conv2, conv3, probs), so both tools
start from the same trained network. Prints a JSON line with the training wall time.
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402


def build():
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out)


def main(weights, train, sparsity, epochs, out):
    w = np.load(weights, allow_pickle=False)
    d = np.load(train, allow_pickle=False)
    x, y = d["image"], d["labels"]
    model = build()
    model.set_weights([w[f"w{i}"] for i in range(len(w.files))])
    steps = int(np.ceil(len(y) / 32)) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=int(steps * 2 / 3),
                                                    frequency=max(1, steps // 15))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    t = time.perf_counter()
    pruned.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    wall = time.perf_counter() - t
    final = tfmot.sparsity.keras.strip_pruning(pruned)
    conv = tf.lite.TFLiteConverter.from_keras_model(final)
    with open(out, "wb") as f:
        f.write(conv.convert())
    print(json.dumps({"wall_s": wall, "tfmot": tfmot.__version__, "tf_keras": keras.__version__}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], float(a[2]), int(a[3]), a[4])
