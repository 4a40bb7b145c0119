"""Weight-decay sweeps: identical starts, the pick rule and its reason."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from superconverge.finders import WDSweepResult, pick_weight_decay, wd_sweep


def data(n_batches: int = 60, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_batches * size, 10, generator=g)
    y = (x @ torch.randn(10, 4, generator=g)).argmax(1)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))


def make_sgd(model: nn.Module, wd: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=wd)


def test_pick_is_the_largest_weight_decay_that_keeps_a_high_lr():
    index, reason = pick_weight_decay([0, 1e-5, 1e-4, 1e-3], [0.30, 0.35, 0.20, 0.05], [True] * 4)
    assert index == 2
    assert reason == ("weight decay 0.0001 is the largest whose suggested peak LR (0.2) is within 2x of the "
                      "highest (0.35, at weight decay 1e-05); 0.001 lowers it to 0.05.")


def test_tolerance_widens_or_narrows_the_pick():
    wds, lrs = [0, 1e-4, 1e-3], [0.4, 0.3, 0.1]
    assert pick_weight_decay(wds, lrs, [True] * 3, tolerance=1.2)[0] == 0
    assert pick_weight_decay(wds, lrs, [True] * 3, tolerance=5)[0] == 2


def test_unreliable_curves_are_not_picked_and_are_named():
    index, reason = pick_weight_decay([0, 1e-4, 1e-3], [0.3, 0.3, 0.3], [True, True, False])
    assert index == 1 and "0.001 gave an unreliable curve" in reason


def test_when_no_curve_is_reliable_the_pick_says_it_is_a_guess():
    index, reason = pick_weight_decay([0, 1e-4], [0.3, 0.3], [False, False])
    assert index == 1 and "a guess" in reason


@pytest.mark.parametrize("args, match", [
    (([], [], []), "at least one"),
    (([0, 1], [0.1], [True]), "one suggestion"),
])
def test_pick_rejects_mismatched_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        pick_weight_decay(*args)


def test_sweep_starts_every_value_from_the_same_state_and_a_huge_decay_lowers_the_lr(tmp_path):
    sweep = wd_sweep(make_model, make_sgd, F.cross_entropy, data(), [0.0, 1e-4, 10.0], steps=60,
                     start_lr=1e-5, end_lr=10)
    assert isinstance(sweep, WDSweepResult)
    assert sweep.weight_decays == (0.0, 1e-4, 10.0)
    # the first loss comes before any update: same weights, batch, dropout draws => same value
    firsts = {r.losses[0] for r in sweep.results}
    assert len(firsts) == 1
    by_wd = dict(zip(sweep.weight_decays, sweep.results))
    assert by_wd[10.0].suggestion < by_wd[0.0].suggestion / 2  # lr * wd > 2 diverges on its own
    assert sweep.pick in (0.0, 1e-4)
    assert sweep.max_lr == sweep.best.suggestion
    assert "10 lowers it to" in sweep.reason
    json.dumps(sweep.to_dict(), allow_nan=False)
    assert sweep.plot(tmp_path / "wd.png").stat().st_size > 10_000


@pytest.mark.parametrize("wds, match", [([], "at least one"), ([0, 0], "distinct"), ([-1e-4], ">= 0")])
def test_sweep_rejects_bad_weight_decays(wds, match):
    with pytest.raises(ValueError, match=match):
        wd_sweep(make_model, make_sgd, F.cross_entropy, data(), wds, steps=20)
