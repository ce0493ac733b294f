"""Prune options set away from their defaults that the chosen route would not apply are refused (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeml.cli import cli as main
from edgeml.errors import UsageError
from edgeml.options import PruneOptions
from edgeml.prune import prune


def test_prune_options_refuse_criterion_when_magnitude():
    with pytest.raises(UsageError, match="`criterion` bn: ranks channels"):
        PruneOptions(out="p.keras", sparsity=0.5, criterion="bn")


@pytest.mark.parametrize("kw, names", [({"epochs": 2}, "`epochs`"),
                                       ({"batch_size": 8, "lr": 0.01}, "`batch_size`, `lr`"),
                                       ({"schedule": "constant"}, "`schedule`")])
def test_prune_options_refuse_finetuning_options_when_no_train(kw, names):
    with pytest.raises(UsageError, match=f"{names}: fine-tuning options, but no `train`"):
        PruneOptions(out="p.keras", sparsity=0.5, **kw)


def test_prune_options_refuse_schedule_when_channel():
    with pytest.raises(UsageError, match="`schedule` constant: ramps magnitude sparsity"):
        PruneOptions(out="p.keras", sparsity=0.5, method="channel", train="builtin:digits", schedule="constant")


def test_prune_options_keep_finetuning_options_when_train():
    o = PruneOptions(out="p.keras", sparsity=0.5, method="channel", criterion="bn", train="builtin:digits", epochs=2)
    assert (o.epochs, o.criterion) == (2, "bn")


@pytest.mark.parametrize("kw, name", [({"val": "builtin:digits"}, "`val`"), ({"train": "builtin:digits"}, "`train`")])
def test_prune_warns_training_data_ignored_when_onnx(tiny_onnx, tmp_path, kw, name):
    r = prune(tiny_onnx, out=tmp_path / "p.onnx", sparsity=0.5, **kw)
    assert any(w.startswith(f"{name} is ignored for ONNX input") for w in r.warnings) and "accuracy" not in r.after


def test_prune_cli_refuses_criterion_when_magnitude_exit_2(tiny_onnx, tmp_path):
    r = CliRunner().invoke(main, ["prune", str(tiny_onnx), "-o", str(tmp_path / "p.onnx"), "--sparsity", "0.5",
                                  "--criterion", "l2"])
    assert r.exit_code == 2, r.output
    assert "error: --criterion l2: ranks channels for --method channel" in r.output
