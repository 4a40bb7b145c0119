"""Summed-loss training equals averaged training at the reference batch."""

from __future__ import annotations

import pytest
from superconverge.studies.engine import train_run
from superconverge.train.recipe import TrainConfig


def test_summed_at_the_reference_batch_trains_like_averaged(tmp_path):
    config = TrainConfig(model="tiny", train_subset=100, batch_size=25, epochs=1, schedule="constant", max_lr=0.05,
                         threads=1, precision="fp32")  # bf16 rounding would swamp the 1e-4 comparison
    mean = train_run(config, {}, tmp_path / "mean", resume=False)
    summed = train_run(config, {"loss_reduction": "sum", "reference_batch": 25}, tmp_path / "sum", resume=False)
    assert summed["max_lr"] == pytest.approx(0.05 / 25)  # the per-example LR the optimizer saw
    assert summed["lr_mean_equivalent"] == mean["lr_mean_equivalent"] == 0.05
    assert summed["test_loss"] == pytest.approx(mean["test_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="SGD only"):
        train_run(config.replace(optimizer="adam"), {"loss_reduction": "sum"}, tmp_path / "adam", resume=False)
