"""Library parameters -> CLI flags, in one table. Library messages name a parameter in backticks
(`` `calib` ``, `` `input_shapes` ``), as a Python caller passes it; the CLI's error renderer rewrites each
one to the flag a shell user types (``--calib``, ``--input-shape``). Names not in the table stay as written."""

from __future__ import annotations

import re

PARAM_FLAGS: dict[str, str] = {
    "batch_size": "--batch-size",
    "calib": "--calib",
    "criterion": "--criterion",
    "data": "--data",
    "deploy": "--deploy",
    "epochs": "--epochs",
    "eval": "--eval",
    "exclude": "--exclude",
    "executor": "--executor",
    "fallback": "--fallback",
    "float16": "--float16",
    "force": "--force",
    "format": "--format",
    "input_shapes": "--input-shape",
    "io": "--io",
    "keep_best": "--keep-best",
    "lr": "--lr",
    "max_accuracy_drop": "--max-accuracy-drop",
    "method": "--method",
    "min_fidelity": "--min-fidelity",
    "min_time": "--min-time",
    "mode": "--mode",
    "num_cpus": "--num-cpus",
    "out": "-o",
    "per_channel": "--per-channel",
    "precision": "--precision",
    "prune": "--prune",
    "ray_address": "--ray-address",
    "runs": "--runs",
    "schedule": "--schedule",
    "scope": "--scope",
    "sparsity": "--sparsity",
    "strict": "--strict",
    "target": "--target",
    "timeout": "--timeout",
    "to": "--to",
    "train": "--train",
    "train_flops": "--train-flops",
    "train_gpu_hours": "--train-gpu-hours",
    "train_power_w": "--train-power-w",
    "train_samples": "--train-samples",
    "val": "--val",
    "warmup": "--warmup",
}

_PARAM = re.compile(r"`([a-z][a-z0-9_]*)`")


def to_flags(text: str) -> str:
    """``text`` with every backticked parameter of the table replaced by its CLI flag."""
    return _PARAM.sub(lambda m: PARAM_FLAGS.get(m[1], m[0]), text)
