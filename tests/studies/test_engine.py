"""Summed-loss training: gradient of the sum, value of the mean, and equal to averaged training at the reference batch."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from superconverge.studies.engine import summed_cross_entropy, train_run
from superconverge.train.recipe import TrainConfig


def test_summed_cross_entropy_has_the_mean_as_value_and_the_sum_as_gradient():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 10, requires_grad=True), torch.randint(0, 10, (8,))
    loss = summed_cross_entropy()(logits, y)
    (grad_sum,) = torch.autograd.grad(loss, logits)
    (grad_mean,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item())
    torch.testing.assert_close(grad_sum, 8 * grad_mean)


def test_summed_at_the_reference_batch_trains_like_averaged(tmp_path):
    config = TrainConfig(model="tiny", train_subset=100, batch_size=25, epochs=1, schedule="constant", max_lr=0.05,
                         threads=1)
    mean = train_run(config, {}, tmp_path / "mean", resume=False)
    summed = train_run(config, {"loss_reduction": "sum", "reference_batch": 25}, tmp_path / "sum", resume=False)
    assert summed["max_lr"] == pytest.approx(0.05 / 25)  # the per-example LR the optimizer saw
    assert summed["lr_mean_equivalent"] == mean["lr_mean_equivalent"] == 0.05
    assert summed["test_loss"] == pytest.approx(mean["test_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="SGD only"):
        train_run(config.replace(optimizer="adam"), {"loss_reduction": "sum"}, tmp_path / "adam", resume=False)
