"""Optimizers by name."""

from __future__ import annotations

import pytest
import torch

from superconverge.optim import Scheduler
from superconverge.schedules import one_cycle
from superconverge.train.recipe import LRFREE_OPTIMIZERS
from superconverge.train.runtime import OPTIMIZERS, build_optimizer

TORCH_OPTIMIZERS = [name for name in OPTIMIZERS if name not in LRFREE_OPTIMIZERS]  # the lrfree extra's: test_lrfree


@pytest.mark.parametrize(
    "name, cls, flags",
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        # momentum is the Adam family's beta1
        ("adam", torch.optim.Adam, {"betas": (0.8, 0.999), "decoupled_weight_decay": False}),
        ("AdamW", torch.optim.AdamW, {"betas": (0.8, 0.999), "decoupled_weight_decay": True}),
        ("nadam", torch.optim.NAdam, {"betas": (0.8, 0.999), "decoupled_weight_decay": False}),
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


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
def test_cycled_momentum_drives_what_momentum_built(name):
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(name, params, lr=0.1, momentum=0.95, beta2=0.99)
    sched = Scheduler(opt, one_cycle(10, 0.1))
    for _ in range(3):
        sched.step()
    group = opt.param_groups[0]
    written = group["momentum"] if "momentum" in group else group["betas"][0]
    assert written == pytest.approx(one_cycle(10, 0.1)["momentum"](3))
    assert group.get("betas", (None, 0.99))[1] == 0.99


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "nadam"])
def test_momentum_zero_refuses_a_momentum_schedule_for_every_optimizer(name):
    opt = build_optimizer(name, [torch.nn.Parameter(torch.zeros(3))], lr=0.1, momentum=0.0)
    with pytest.raises(ValueError, match="scheduling momentum would switch it on silently.*--set cycle_momentum=false"):
        Scheduler(opt, one_cycle(10, 0.1))
