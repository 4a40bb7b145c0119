"""``finders.probe``: short 1cycle probes at a few peaks, picked by held-out loss, leaving everything as it was."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from superconverge.finders.probe import candidates, probe


def task(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4096, 8, generator=gen)
    y = (x[:, 0] - x[:, 2] > 0).long()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.85, weight_decay=5e-4)
    return model, opt, [(x[i:i + 64], y[i:i + 64]) for i in range(0, 4096, 64)]


def test_candidates_step_down_from_the_suggestion():
    assert candidates(0.9) == pytest.approx((0.9, 0.3, 0.1))
    assert candidates(1.0, n=2, spread=10) == pytest.approx((1.0, 0.1))
    with pytest.raises(ValueError, match="positive suggestion"):
        candidates(0.0)


def test_the_pick_is_the_lowest_held_out_loss_and_a_diverging_peak_loses():
    model, opt, data = task()
    found = probe(model, opt, F.cross_entropy, data, [1e4, 0.3, 1e-4], steps=40)
    assert found.losses[0] == math.inf or found.losses[0] > found.losses[1]
    assert found.losses[2] > found.losses[1]  # far too low barely moves the weights
    assert found.pick == 0.3 and found.steps == 40
    assert found.to_dict()["pick"] == 0.3


def test_everything_is_restored_bitwise():
    model, opt, data = task()
    opt.step()  # some optimizer state to keep
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    rng = torch.get_rng_state()
    probe(model, opt, F.cross_entropy, data, [0.5, 0.05], steps=20)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups] == groups
    assert torch.equal(torch.get_rng_state(), rng)


def test_every_probe_sees_the_same_batches_so_the_result_repeats():
    model, opt, data = task()
    first = probe(model, opt, F.cross_entropy, data, [0.3, 0.1], steps=20)
    again = probe(model, opt, F.cross_entropy, data, [0.3, 0.1], steps=20)
    assert first == again


def test_too_little_data_is_a_clear_error():
    model, opt, data = task()
    with pytest.raises(ValueError, match="probing needs 54 batches"):
        probe(model, opt, F.cross_entropy, data[:10], [0.1], steps=50)
