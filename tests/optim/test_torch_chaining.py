"""The Scheduler inside torch's SequentialLR and ChainedScheduler, step by step against torch alone.

The Scheduler writes absolute values, so in a ChainedScheduler it owns its keys: a torch
scheduler chained after it on the same key would multiply from its value, one before it is
overwritten. The chain below therefore has torch drive ``lr`` and the Scheduler ``momentum``.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch.optim.lr_scheduler import ChainedScheduler, CosineAnnealingLR, LinearLR, SequentialLR

from superconverge.optim import Scheduler, cosine_annealing_lr
from superconverge.schedules import cosine, cyclical, linear

WARMUP, COSINE = 5, 20
BASES = (0.1, 0.02)


def sgd():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    return torch.optim.SGD([{"params": a.parameters(), "lr": BASES[0]},
                            {"params": b.parameters(), "lr": BASES[1]}], momentum=0.9)


def torch_warmup_cosine(opt):
    return SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=WARMUP),
                              CosineAnnealingLR(opt, T_max=COSINE)], milestones=[WARMUP])


OURS_AFTER_WARMUP = {  # [torch LinearLR, our cosine]: three ways to build the cosine
    "absolute per group": lambda opt: Scheduler(opt, {"lr": [cosine(b, 0.0, COSINE) for b in BASES]}),
    "relative to initial_lr": lambda opt: Scheduler(opt, {"lr": cosine(1.0, 0.0, COSINE)}, scale={"lr": "initial"}),
    "cosine_annealing_lr preset": lambda opt: cosine_annealing_lr(opt, T_max=COSINE),
}


def lrs(opt, sched, steps):
    out = []
    for _ in range(steps):
        out.extend(g["lr"] for g in opt.param_groups)
        opt.step()
        sched.step()
    return out + [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("ours", OURS_AFTER_WARMUP.values(), ids=OURS_AFTER_WARMUP.keys())
def test_sequential_torch_warmup_then_our_cosine(ours):
    ref = sgd()
    expected = lrs(ref, torch_warmup_cosine(ref), WARMUP + COSINE)
    opt = sgd()
    warm = LinearLR(opt, start_factor=0.1, total_iters=WARMUP)
    assert lrs(opt, SequentialLR(opt, [warm, ours(opt)], milestones=[WARMUP]), WARMUP + COSINE) == pytest.approx(
        expected, rel=1e-9, abs=1e-15)


def test_sequential_our_warmup_then_torch_cosine():
    ref = sgd()
    expected = lrs(ref, torch_warmup_cosine(ref), WARMUP + COSINE)
    opt = sgd()
    warm = Scheduler(opt, {"lr": linear(0.1, 1.0, WARMUP)}, scale={"lr": "initial"})
    sched = SequentialLR(opt, [warm, CosineAnnealingLR(opt, T_max=COSINE)], milestones=[WARMUP])
    assert lrs(opt, sched, WARMUP + COSINE) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("at", [3, WARMUP, 12])
def test_sequential_resumes_from_its_state_dict(at):
    def build(opt):
        return SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=WARMUP),
                                  OURS_AFTER_WARMUP["relative to initial_lr"](opt)], milestones=[WARMUP])

    ref = sgd()
    expected = lrs(ref, build(ref), WARMUP + COSINE)
    opt = sgd()
    sched = build(opt)
    first = lrs(opt, sched, at)[:-2]
    buf = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    opt2 = sgd()
    resumed = build(opt2)
    opt2.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert first + lrs(opt2, resumed, WARMUP + COSINE - at) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_chained_with_torch_lr_schedulers_and_our_momentum():
    def torch_chain(opt):
        return [LinearLR(opt, start_factor=0.1, total_iters=WARMUP), CosineAnnealingLR(opt, T_max=COSINE)]

    ref = sgd()
    expected = lrs(ref, ChainedScheduler(torch_chain(ref)), COSINE)
    opt = sgd()
    momentum = cyclical(0.85, 0.95, COSINE // 2)["lr"]  # a triangle from 0.85 up to 0.95 and back
    ours = Scheduler(opt, {"momentum": momentum})
    chain = ChainedScheduler([*torch_chain(opt), ours])
    seen = []
    for step in range(COSINE):
        assert opt.param_groups[1]["momentum"] == pytest.approx(momentum(step))
        seen.extend(g["lr"] for g in opt.param_groups)
        opt.step()
        chain.step()
    seen.extend(g["lr"] for g in opt.param_groups)
    assert seen == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert ours.last_epoch == COSINE
