"""Quantization-aware training (QAT) for Keras 3 models, natively: no tf_keras, no TFMOT.

The model is cloned with fake quantization in the loop (straight-through estimator: the forward pass sees the
int8-rounded value, the gradient passes through unchanged):

- weights of Conv2D / DepthwiseConv2D / Dense: symmetric int8 per output channel (``[-127, 127]``, as the TFLite
  converter quantizes them); a Conv2D / DepthwiseConv2D whose only consumer is a BatchNormalization is
  fake-quantized *folded*, ``w * gamma / sqrt(moving_var + eps)``, exactly what the converter will quantize after
  folding the batch-norm into it (then divided back, so the float graph is unchanged);
- activations: the output of every wrapped layer (or of its batch-norm) is fake-quantized per tensor,
  asymmetric int8, over a moving-average min/max (momentum ``MOMENTUM``) updated while training.

After fine-tuning, the trained weights go back into the original architecture (the fake-quant ops and range
variables are dropped), and the normal int8 path (TFLite converter, calibrated on ``--calib``) exports a
full-int8 .tflite. The exported activation ranges come from that calibration of the QAT-tuned weights, not
from the ranges learned in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeml.errors import EdgeMLError, QATUsageError

MOMENTUM = 0.99
WRAPPED = ("Conv2D", "DepthwiseConv2D", "Dense")


def _fq_weight(ops, w, channel_axes_keep: int):
    """Per-channel symmetric int8 fake quantization; the last ``channel_axes_keep`` axes are the channels."""
    axes = tuple(range(len(w.shape) - channel_axes_keep))
    m = ops.max(ops.abs(w), axis=axes, keepdims=True)
    scale = ops.maximum(m, 1e-12) / 127.0
    q = ops.clip(ops.round(w / scale), -127.0, 127.0) * scale
    return w + ops.stop_gradient(q - w)


def _fq_act(ops, x, lo, hi):
    lo = ops.minimum(lo, 0.0)  # the converter's ranges always include 0
    hi = ops.maximum(hi, 0.0)
    scale = ops.maximum(hi - lo, 1e-12) / 255.0
    zp = ops.round(-lo / scale) - 128.0
    q = (ops.clip(ops.round(x / scale) + zp, -128.0, 127.0) - zp) * scale
    return x + ops.stop_gradient(q - x)


def _range_mixin(keras):
    ops = keras.ops

    class RangeMixin:
        def _add_ranges(self):
            self.fq_lo = self.add_weight(name="fq_min", shape=(), initializer="zeros", trainable=False)
            self.fq_hi = self.add_weight(name="fq_max", shape=(), initializer="zeros", trainable=False)
            self.fq_seen = self.add_weight(name="fq_seen", shape=(), initializer="zeros", trainable=False)

        def _quant_out(self, y, training):
            if not getattr(self, "fq_output", True):
                return y
            if training:
                lo, hi = ops.min(y), ops.max(y)
                first = ops.equal(self.fq_seen, 0.0)
                new_lo = ops.where(first, lo, MOMENTUM * self.fq_lo + (1 - MOMENTUM) * lo)
                new_hi = ops.where(first, hi, MOMENTUM * self.fq_hi + (1 - MOMENTUM) * hi)
                self.fq_lo.assign(ops.stop_gradient(new_lo))
                self.fq_hi.assign(ops.stop_gradient(new_hi))
                self.fq_seen.assign(1.0)
                return _fq_act(ops, y, ops.stop_gradient(new_lo), ops.stop_gradient(new_hi))
            return ops.where(ops.equal(self.fq_seen, 0.0), y, _fq_act(ops, y, self.fq_lo, self.fq_hi))

    return RangeMixin


def _classes(keras) -> dict[str, type]:
    ops = keras.ops
    RangeMixin = _range_mixin(keras)
    L = keras.layers

    def kernel_for(layer, kernel, keep: int):
        bn = getattr(layer, "fq_bn", None)
        if bn is None:
            return _fq_weight(ops, kernel, keep)
        factor = bn.gamma / ops.sqrt(bn.moving_variance + bn.epsilon) if bn.scale else \
            1.0 / ops.sqrt(bn.moving_variance + bn.epsilon)
        if keep == 2:  # depthwise [kh, kw, in, mult]: BN channels are in * mult
            factor = ops.reshape(factor, kernel.shape[2:])
        return _fq_weight(ops, kernel * factor, keep) / factor

    class QATConv2D(RangeMixin, L.Conv2D):  # type: ignore[valid-type, misc, name-defined]
        def build(self, input_shape):
            super().build(input_shape)
            self._add_ranges()

        def convolution_op(self, inputs, kernel):
            return super().convolution_op(inputs, kernel_for(self, kernel, 1))

        def call(self, inputs, training=None):
            return self._quant_out(super().call(inputs), training)

    class QATDepthwiseConv2D(RangeMixin, L.DepthwiseConv2D):  # type: ignore[valid-type, misc, name-defined]
        def build(self, input_shape):
            super().build(input_shape)
            self._add_ranges()

        def call(self, inputs, training=None):
            kernel = kernel_for(self, self.kernel, 2)
            y = ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                   dilation_rate=self.dilation_rate, data_format=self.data_format)
            if self.use_bias:
                shape = (1,) * (len(y.shape) - 1) + (-1,) if self.data_format == "channels_last" else \
                    (1, -1) + (1,) * (len(y.shape) - 2)
                y = y + ops.reshape(self.bias, shape)
            if self.activation is not None:
                y = self.activation(y)
            return self._quant_out(y, training)

    class QATDense(RangeMixin, L.Dense):  # type: ignore[valid-type, misc, name-defined]
        def build(self, input_shape):
            super().build(input_shape)
            self._add_ranges()

        def call(self, inputs, training=None):
            y = ops.matmul(inputs, kernel_for(self, self.kernel, 1))
            if self.bias is not None:
                y = ops.add(y, self.bias)
            if self.activation is not None:
                y = self.activation(y)
            return self._quant_out(y, training)

    class QATBatchNormalization(RangeMixin, L.BatchNormalization):  # type: ignore[valid-type, misc, name-defined]
        def build(self, input_shape):
            super().build(input_shape)
            self._add_ranges()

        def call(self, inputs, training=None, mask=None):
            return self._quant_out(super().call(inputs, training=training, mask=mask), training)

    return {"Conv2D": QATConv2D, "DepthwiseConv2D": QATDepthwiseConv2D, "Dense": QATDense,
            "BatchNormalization": QATBatchNormalization}


def _folded_pairs(model) -> dict[str, str]:
    """{conv layer name: batch-norm layer name} for Conv2D/DepthwiseConv2D whose only consumer is a BN."""
    pairs = {}
    for layer in model.layers:
        if type(layer).__name__ not in ("Conv2D", "DepthwiseConv2D") or layer.activation.__name__ != "linear":
            continue
        consumers = [n.operation for n in layer._outbound_nodes]
        if len(consumers) == 1 and type(consumers[0]).__name__ == "BatchNormalization":
            pairs[layer.name] = consumers[0].name
    return pairs


def qat_clone(model) -> tuple[Any, list[str], dict[str, str]]:
    """(the QAT model, names of the fake-quantized layers, folded conv -> BN pairs); weights copied."""
    from edgeml._tf import keras as import_keras

    keras = import_keras()
    classes = _classes(keras)
    pairs = _folded_pairs(model)
    bns = set(pairs.values())

    def clone(layer):
        kind = type(layer).__name__
        if kind in WRAPPED or (kind == "BatchNormalization" and layer.name in bns):
            return classes[kind].from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    try:
        qmodel = keras.models.clone_model(model, clone_function=clone)
    except Exception as exc:
        raise EdgeMLError(f"`method` qat could not rebuild this model with fake quantization: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}",
                          hint="QAT supports functional/Sequential Keras 3 models; use PTQ (drop `method` qat)") \
            from exc
    wrapped = []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:  # input and weightless layers (names of clones may differ)
            continue
        q = qmodel.get_layer(layer.name)
        q.set_weights(weights + q.get_weights()[len(weights):])
        if hasattr(q, "fq_lo"):
            wrapped.append(layer.name)
    for conv, bn in pairs.items():  # folded: the conv's output is not quantized, the batch-norm's is
        qc = qmodel.get_layer(conv)
        object.__setattr__(qc, "fq_bn", qmodel.get_layer(bn))  # a reference, not a sub-layer Keras would track
        qc.fq_output = False
    return qmodel, wrapped, pairs


def strip(model, qmodel) -> None:
    """Copy the QAT model's trained weights back into ``model`` (the original architecture)."""
    for layer in model.layers:
        n = len(layer.get_weights())
        if n:
            layer.set_weights(qmodel.get_layer(layer.name).get_weights()[:n])


def _labelled(spec: Any, model) -> tuple[list, Any]:
    """Inputs (model input order) and integer class labels from a labelled spec, for a single-output classifier."""
    import numpy as np

    from edgeml.calibration.labelled import load_labelled
    from edgeml.formats.keras import io_specs

    _, outputs = io_specs(model)
    classes = int(outputs[0].shape[-1] or 0) if outputs and outputs[0].shape else 0
    if len(outputs) != 1 or classes < 2:
        raise QATUsageError("`method` qat fine-tunes single-output classifiers (one score per class)",
                            hint="use PTQ (drop `method` qat) for other models")
    x, labels = load_labelled(spec, model, "`train`", needs="quantization-aware training needs them")
    return x, np.asarray(labels).reshape(-1).astype(np.int64)


def train_qat(model, train_spec: Any, *, epochs: int, lr: float, batch_size: int = 32,
              progress=None) -> dict[str, Any]:
    """Fine-tune ``model`` (in place) with fake quantization on labelled ``train_spec``; the training record
    (the same fields as prune's fine-tuning: wall time, samples, epochs, FLOPs, history)."""
    import time

    from edgeml._tf import keras as import_keras
    from edgeml.formats.keras import model_macs

    keras = import_keras()
    x, y = _labelled(train_spec, model)
    last = model.layers[-1]
    probs = type(last).__name__ == "Softmax" or getattr(getattr(last, "activation", None), "__name__", "") == "softmax"
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    qmodel, wrapped, pairs = qat_clone(model)
    if not wrapped:
        raise EdgeMLError("`method` qat: the model has no Conv2D, DepthwiseConv2D or Dense layer to quantize in "
                          "training", hint="use PTQ (drop `method` qat)")
    if progress:
        progress(f"QAT: fake-quantizing {len(wrapped)} layer(s) ({len(pairs)} conv+batch-norm folded), "
                 f"{epochs} epoch(s) on {len(y)} samples")
    qmodel.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])

    class Progress(keras.callbacks.Callback):  # type: ignore[name-defined]
        def on_epoch_end(self, epoch, logs=None):
            if progress:
                progress(f"  epoch {epoch + 1}/{epochs}  loss {logs['loss']:.3f}  accuracy {logs['accuracy']:.3f}")

    t = time.perf_counter()
    hist = qmodel.fit(x if len(x) > 1 else x[0], y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
                      callbacks=[Progress()])
    wall = time.perf_counter() - t
    strip(model, qmodel)
    macs = model_macs(model)
    run = len(hist.history.get("loss", []))
    return {"wall_s": round(wall, 2), "samples": int(len(y)), "epochs": run, "epochs_requested": epochs,
            "batch_size": batch_size, "learning_rate": lr, "forward_macs": macs,
            "flops": 3 * 2 * macs * int(len(y)) * run, "flops_basis": "3 x forward FLOPs x samples x epochs",
            "history": {k: [round(float(v), 5) for v in vs] for k, vs in hist.history.items()},
            "loss": f"sparse categorical cross-entropy ({'probabilities' if probs else 'logits'})",
            "method": "qat", "fake_quantized_layers": wrapped,
            "folded_batchnorm": [f"{c}+{b}" for c, b in pairs.items()], "train": str(train_spec)}


def check_options(art: Any, fmt: str, mode: str, train: Any, epochs: int, budget: Any) -> None:
    if art.format.value not in ("keras", "h5"):
        raise QATUsageError(f"`method` qat trains the model: it needs the Keras source (.keras/.h5), not a "
                            f"{art.format.value} file", hint="pass the .keras model, or drop `method` qat (PTQ)")
    if fmt != "tflite" or mode != "int8":
        raise QATUsageError("`method` qat exports full-int8 TFLite", hint="use `format` tflite `mode` int8")
    if train is None:
        raise QATUsageError("`method` qat needs labelled training data: pass `train` SPEC",
                            hint="e.g. `train` 'builtin:digits?split=train' `epochs` 3")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise QATUsageError(f"`epochs` {epochs}: at least 1")
    if budget.active:
        raise QATUsageError("`method` qat with an accuracy budget: give one or the other",
                            hint="a budget falls layers back to float; QAT keeps every layer int8")


def run(art, keras_model, work: Path, tmp: Path, mode, io, per_channel, ds, profile, notes, say, train, epochs, lr,
        eval_spec):
    """PTQ of the original and QAT fine-tuning + int8 export; the better on ``eval_spec`` goes to ``tmp``."""
    from edgeml._tf import keras as import_keras
    from edgeml.quantize.checks import top1_accuracy
    from edgeml.quantize.routes import tflite_route

    keras = import_keras()
    tuned = keras.models.clone_model(keras_model)
    tuned.set_weights(keras_model.get_weights())
    if getattr(keras_model, "loss", None) is not None:
        tuned.loss = keras_model.loss
    training = train_qat(tuned, train, epochs=epochs, lr=lr, progress=say)
    (work / "ptq").mkdir()
    (work / "qat").mkdir()
    ptq = work / "ptq.tflite"
    say("PTQ of the original model (the baseline QAT must beat)")
    float_path, left_ptq, recipe = tflite_route(art, keras_model, work / "ptq", ptq, mode, io, per_channel, ds,
                                                profile, notes, say)
    say("exporting the QAT-tuned model to full int8")
    tuned_float, left, _ = tflite_route(art, tuned, work / "qat", tmp, mode, io, per_channel, ds, profile, [], say)
    compare_to = tuned_float  # the fidelity gate: does the int8 model reproduce the float model it came from?
    recipe["method"] = "qat"
    training["export"] = "TFLite converter, full int8, activation ranges calibrated on `calib`"
    if eval_spec is not None:
        a_ptq = top1_accuracy(float_path, ptq, eval_spec, say)
        a_qat = top1_accuracy(float_path, tmp, eval_spec, say)
        training.update({"eval": a_qat["data"], "float_top1": a_qat["float_top1"], "ptq_top1": a_ptq["quantized_top1"],
                         "qat_top1": a_qat["quantized_top1"]})
        if a_ptq["quantized_top1"] > a_qat["quantized_top1"]:
            tmp.write_bytes(ptq.read_bytes())
            left, compare_to = left_ptq, float_path
            training["written"] = "ptq"
            notes.append(f"QAT ({100 * a_qat['quantized_top1']:.2f}%) did not beat PTQ "
                         f"({100 * a_ptq['quantized_top1']:.2f}%) on `eval`: wrote the PTQ model")
        else:
            training["written"] = "qat"
    else:
        training["written"] = "qat"
        notes.append("QAT result not compared with PTQ (no `eval` data)")
    if training["written"] == "qat":
        notes.append("outputs/fidelity compare the int8 model with the QAT-tuned float model; top-1 is against the "
                     "original float model")
    return compare_to, float_path, left, recipe, training


__all__ = ["QATUsageError", "check_options", "qat_clone", "run", "strip", "train_qat"]
