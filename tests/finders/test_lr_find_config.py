"""The finders on a TrainConfig: they sweep with the loss and units the training run uses."""

from __future__ import annotations

import pytest

from superconverge.finders.recipe import lr_find_config, tune
from superconverge.train.recipe import TrainConfig
from superconverge.train.run import load_data

# fp32: exact comparisons ("auto" is bf16 on CPUs that have it); 640 images: 20 batches of 32, no cycling
SMALL = TrainConfig(model="tiny", train_subset=640, batch_size=32, weight_decay=0.0, precision="fp32", threads=2)


def test_a_summed_loss_gives_max_lr_per_example_as_train_reads_it():
    b = SMALL.batch_size
    mean = lr_find_config(SMALL, momentum=SMALL.base_momentum, data=load_data("sample"), steps=20, start_lr=1e-4,
                          end_lr=10.0)
    tuned = tune(SMALL.replace(loss_reduction="sum"), weight_decays=[0.0], batch_size=b, steps=20,
                 start_lr=1e-4 / b, end_lr=10.0 / b)
    # summed gradients are b x the averaged ones (b a power of two: exactly), so the same steps at 1/b the LR
    assert tuned.sweep.best.losses == pytest.approx(mean.losses, rel=1e-6)
    assert tuned.config.loss_reduction == "sum"
    assert tuned.config.max_lr == pytest.approx(mean.suggestion / b, rel=1e-6)
    assert f"max_lr = {tuned.config.max_lr:.4g}: 1cycle's peak per example" in tuned.comment
