"""Step-by-step parity with PyTorch's own schedulers over whole runs.

Each test builds two identical optimizers with two param groups, drives one with
``torch.optim.lr_scheduler`` and one with a superconverge preset, and compares every
group's lr (and momentum or Adam's beta1 where scheduled) at every step.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from superconverge import optim as sc
from superconverge.optim.adapter import Scheduler
from torch.optim import lr_scheduler as tl

REL = 1e-9
OPTIMIZERS = ["sgd", "adam"]


def make_optimizer(kind: str, lrs=(0.1, 0.03)) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    groups = [{"params": a.parameters(), "lr": lrs[0]}, {"params": b.parameters(), "lr": lrs[1]}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    return torch.optim.Adam(groups, lr=lrs[0], betas=(0.9, 0.999))


def momentum_of(group: dict) -> float:
    return group["momentum"] if "momentum" in group else group["betas"][0]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-15)


def compare(ref_opt, ref_sched, our_opt, our_sched, steps: int, momentum: bool = False) -> None:
    for t in range(steps):
        for g, (ga, gb) in enumerate(zip(ref_opt.param_groups, our_opt.param_groups)):
            assert close(ga["lr"], gb["lr"]), f"lr differs at step {t}, group {g}: {ga['lr']} vs {gb['lr']}"
            if momentum:
                ma, mb = momentum_of(ga), momentum_of(gb)
                assert close(ma, mb), f"momentum differs at step {t}, group {g}: {ma} vs {mb}"
        assert all(close(x, y) for x, y in zip(ref_sched.get_last_lr(), our_sched.get_last_lr()))
        if t == steps - 1:
            break
        ref_opt.step()
        ref_sched.step()
        our_opt.step()
        our_sched.step()


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(20, 400),
    pct=st.floats(0.05, 0.45),
    div=st.floats(2.0, 100.0),
    final_div=st.floats(10.0, 1e5),
    anneal=st.sampled_from(["cos", "linear"]),
    three_phase=st.booleans(),
    kind=st.sampled_from(OPTIMIZERS),
)
def test_one_cycle_matches_onecyclelr(total, pct, div, final_div, anneal, three_phase, kind):
    if pct * total <= 1.5:
        pct = 2.0 / total
    args = dict(max_lr=[0.4, 0.1], total_steps=total, pct_start=pct, div_factor=div,
                final_div_factor=final_div, anneal_strategy=anneal, three_phase=three_phase,
                base_momentum=[0.85, 0.8], max_momentum=[0.95, 0.9])
    a, b = make_optimizer(kind), make_optimizer(kind)
    compare(a, tl.OneCycleLR(a, **args), b, sc.one_cycle_lr(b, **args), total, momentum=True)


@settings(max_examples=30, deadline=None)
@given(
    up=st.integers(1, 40),
    down=st.one_of(st.none(), st.integers(1, 40)),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.9, 1.0),
    kind=st.sampled_from(OPTIMIZERS),
)
def test_cyclical_matches_cycliclr(up, down, mode, gamma, kind):
    args = dict(base_lr=[0.001, 0.002], max_lr=[0.1, 0.05], step_size_up=up, step_size_down=down,
                mode=mode, gamma=gamma, base_momentum=0.8, max_momentum=0.9)
    a, b = make_optimizer(kind), make_optimizer(kind)
    steps = 3 * (up + (down or up)) + 5
    compare(a, tl.CyclicLR(a, **args), b, sc.cyclic_lr(b, **args), steps, momentum=True)


@settings(max_examples=30, deadline=None)
@given(t0=st.integers(1, 30), t_mult=st.integers(1, 3), eta_min=st.floats(0.0, 0.01),
       kind=st.sampled_from(OPTIMIZERS))
def test_sgdr_matches_cosine_warm_restarts(t0, t_mult, eta_min, kind):
    a, b = make_optimizer(kind), make_optimizer(kind)
    ref = tl.CosineAnnealingWarmRestarts(a, T_0=t0, T_mult=t_mult, eta_min=eta_min)
    ours = sc.cosine_annealing_warm_restarts(b, T_0=t0, T_mult=t_mult, eta_min=eta_min)
    compare(a, ref, b, ours, 200)


@settings(max_examples=30, deadline=None)
@given(t_max=st.integers(1, 300), eta_min=st.floats(0.0, 0.01), kind=st.sampled_from(OPTIMIZERS))
def test_cosine_matches_cosineannealinglr(t_max, eta_min, kind):
    a, b = make_optimizer(kind), make_optimizer(kind)
    ref = tl.CosineAnnealingLR(a, T_max=t_max, eta_min=eta_min)
    ours = sc.cosine_annealing_lr(b, T_max=t_max, eta_min=eta_min)
    # PyTorch's curve turns back up after T_max; ours holds eta_min (documented).
    compare(a, ref, b, ours, t_max + 1)


@settings(max_examples=25, deadline=None)
@given(step_size=st.integers(1, 50), gamma=st.floats(0.05, 0.99), kind=st.sampled_from(OPTIMIZERS))
def test_step_matches_steplr(step_size, gamma, kind):
    a, b = make_optimizer(kind), make_optimizer(kind)
    compare(a, tl.StepLR(a, step_size, gamma), b, sc.step_lr(b, step_size, gamma), 300)


@settings(max_examples=25, deadline=None)
@given(ms=st.lists(st.integers(1, 200), min_size=1, max_size=5, unique=True),
       gamma=st.floats(0.05, 0.99), kind=st.sampled_from(OPTIMIZERS))
def test_multistep_matches_multisteplr(ms, gamma, kind):
    ms = sorted(ms)
    a, b = make_optimizer(kind), make_optimizer(kind)
    compare(a, tl.MultiStepLR(a, ms, gamma), b, sc.multistep_lr(b, ms, gamma), 250)


@settings(max_examples=25, deadline=None)
@given(gamma=st.floats(0.9, 0.999), kind=st.sampled_from(OPTIMIZERS))
def test_exponential_matches_exponentiallr(gamma, kind):
    a, b = make_optimizer(kind), make_optimizer(kind)
    compare(a, tl.ExponentialLR(a, gamma), b, sc.exponential_lr(b, gamma), 300)


@settings(max_examples=25, deadline=None)
@given(start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total=st.integers(1, 100),
       kind=st.sampled_from(OPTIMIZERS))
def test_linear_matches_linearlr(start, end, total, kind):
    a, b = make_optimizer(kind), make_optimizer(kind)
    ref = tl.LinearLR(a, start_factor=start, end_factor=end, total_iters=total)
    ours = sc.linear_lr(b, start_factor=start, end_factor=end, total_iters=total)
    compare(a, ref, b, ours, total + 20)


@settings(max_examples=25, deadline=None)
@given(total=st.integers(1, 100), power=st.floats(0.3, 3.0), kind=st.sampled_from(OPTIMIZERS))
def test_polynomial_matches_polynomiallr(total, power, kind):
    a, b = make_optimizer(kind), make_optimizer(kind)
    ref = tl.PolynomialLR(a, total_iters=total, power=power)
    ours = sc.polynomial_lr(b, total_iters=total, power=power)
    compare(a, ref, b, ours, total + 20)


@settings(max_examples=40, deadline=None)
@given(
    metrics=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=60),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    threshold=st.sampled_from([0.0, 1e-4, 0.05]),
    patience=st.integers(0, 4),
    cooldown=st.integers(0, 3),
    factor=st.floats(0.1, 0.9),
    min_lr=st.sampled_from([0.0, 0.01, [0.02, 0.0]]),
    kind=st.sampled_from(OPTIMIZERS),
)
def test_plateau_matches_reducelronplateau(metrics, mode, threshold_mode, threshold, patience,
                                          cooldown, factor, min_lr, kind):
    args = dict(mode=mode, factor=factor, patience=patience, threshold=threshold,
                threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr)
    a, b = make_optimizer(kind), make_optimizer(kind)
    ref, ours = tl.ReduceLROnPlateau(a, **args), sc.reduce_lr_on_plateau(b, **args)
    for i, m in enumerate(metrics):
        ref.step(m)
        ours.observe(m)
        for ga, gb in zip(a.param_groups, b.param_groups):
            assert close(ga["lr"], gb["lr"]), f"after metric {i}: {ga['lr']} vs {gb['lr']}"


def test_plateau_tracks_multiple_reductions_exactly():
    a, b = make_optimizer("sgd"), make_optimizer("sgd")
    ref = tl.ReduceLROnPlateau(a, patience=1, factor=0.5, cooldown=1)
    ours = sc.reduce_lr_on_plateau(b, patience=1, factor=0.5, cooldown=1)
    lrs = []
    for m in [1.0] * 20:
        ref.step(m)
        ours.observe(m)
        assert a.param_groups[0]["lr"] == pytest.approx(b.param_groups[0]["lr"], rel=REL)
        lrs.append(b.param_groups[0]["lr"])
    assert lrs[-1] < 0.1 * 0.5**5  # the test exercises real reductions, not a flat line


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_adapter_drives_beta1_for_adam(kind):
    opt = make_optimizer(kind)
    from superconverge.schedules import linear

    Scheduler(opt, {"momentum": linear(0.95, 0.85, 10)})
    assert momentum_of(opt.param_groups[0]) == pytest.approx(0.95)
    if kind == "adam":
        assert opt.param_groups[0]["betas"][1] == 0.999  # beta2 untouched
