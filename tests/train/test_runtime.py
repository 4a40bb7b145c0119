"""Optimizers by name."""

from __future__ import annotations

import pytest
import torch

from superconverge.train.runtime import build_optimizer


@pytest.mark.parametrize(
    "name, cls, flags",
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999), "decoupled_weight_decay": False}),
        ("AdamW", torch.optim.AdamW, {"betas": (0.9, 0.999), "decoupled_weight_decay": True}),
        ("nadam", torch.optim.NAdam, {"betas": (0.9, 0.999), "decoupled_weight_decay": False}),
    ],
)
def test_build_optimizer_gives_the_torch_optimizer_and_its_flags(name, cls, flags):
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(name, params, lr=0.1, momentum=0.8, weight_decay=0.01)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.1 and group["weight_decay"] == 0.01
    assert {k: group[k] for k in flags} == flags


def test_build_optimizer_names_the_closest_choice():
    with pytest.raises(ValueError, match="unknown optimizer 'nadamw'; did you mean 'nadam'"):
        build_optimizer("nadamw", [torch.nn.Parameter(torch.zeros(3))], lr=0.1)
