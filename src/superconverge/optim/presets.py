"""Presets that reproduce well-known schedulers value for value, as :class:`Scheduler` objects.

Each takes the same arguments as the scheduler it mirrors (PyTorch's names), so a
switch is a one-line change. Deliberate differences from PyTorch, all documented:

- Past the planned end, bounded schedules hold their final value (and warn) where
  PyTorch's CosineAnnealingLR turns back up and OneCycleLR raises.
- ``step()`` takes no ``epoch`` argument; ReduceLROnPlateau's metric goes to
  ``observe(metric)`` so that a warmup can run per step before it.
- Unsorted or repeated milestones are an error, not silently sorted or counted twice.

Each group's base LR is its ``initial_lr`` when a scheduler recorded one (torch's and
ours do; it is saved with the optimizer state), else its ``lr``. So a preset built after a
torch warmup in ``SequentialLR``, or after loading such an optimizer state, starts from
the base LR, not a scheduled one. Relative presets (``scale={"lr": "initial"}``) also keep
their factors in ``state_dict()``, which covers optimizer states saved without ``initial_lr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch.optim import Optimizer

from superconverge.optim.adapter import Scheduler, initial_value
from superconverge.schedules import published
from superconverge.schedules import (
    Constant,
    Join,
    cosine,
    cyclical,
    exponential_decay,
    fastai_one_cycle,
    linear,
    multistep,
    one_cycle,
    polynomial,
    reduce_on_plateau,
    sgdr,
    step_decay,
)
from superconverge.schedules.base import require_steps

PerGroup = float | Sequence[float]


def _per_group(name: str, value: PerGroup, optimizer: Optimizer) -> list[float]:
    n = len(optimizer.param_groups)
    if isinstance(value, (int, float)):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values for {n} param groups")
    return values


def _base_lrs(optimizer: Optimizer) -> list[float]:
    return [initial_value(g, ("lr", None)) for g in optimizer.param_groups]


def one_cycle_lr(
    optimizer: Optimizer,
    max_lr: PerGroup,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    cycle_momentum: bool = True,
    base_momentum: PerGroup = 0.85,
    max_momentum: PerGroup = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Scheduler:
    """PyTorch's ``OneCycleLR``, same arguments, same values."""
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise ValueError("give total_steps, or epochs and steps_per_epoch")
        total_steps = require_steps("epochs", epochs) * require_steps("steps_per_epoch", steps_per_epoch)
    peaks = _per_group("max_lr", max_lr, optimizer)
    lows = _per_group("base_momentum", base_momentum, optimizer)
    highs = _per_group("max_momentum", max_momentum, optimizer)
    policies = [
        one_cycle(total_steps, p, pct_start=pct_start, anneal=anneal_strategy, div_factor=div_factor,
                  final_div_factor=final_div_factor, three_phase=three_phase,
                  cycle_momentum=cycle_momentum, base_momentum=lo, max_momentum=hi)
        for p, lo, hi in zip(peaks, lows, highs)
    ]
    return Scheduler(optimizer, {k: [p[k] for p in policies] for k in policies[0]})


def cyclic_lr(
    optimizer: Optimizer,
    base_lr: PerGroup,
    max_lr: PerGroup,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool = True,
    base_momentum: PerGroup = 0.8,
    max_momentum: PerGroup = 0.9,
) -> Scheduler:
    """PyTorch's ``CyclicLR`` (built-in modes), same arguments, same values."""
    bases = _per_group("base_lr", base_lr, optimizer)
    peaks = _per_group("max_lr", max_lr, optimizer)
    lows = _per_group("base_momentum", base_momentum, optimizer)
    highs = _per_group("max_momentum", max_momentum, optimizer)
    policies = [
        cyclical(b, p, step_size_up, step_size_down, mode=mode, gamma=gamma,
                 cycle_momentum=cycle_momentum, base_momentum=lo, max_momentum=hi)
        for b, p, lo, hi in zip(bases, peaks, lows, highs)
    ]
    return Scheduler(optimizer, {k: [p[k] for p in policies] for k in policies[0]})


def cosine_annealing_warm_restarts(optimizer: Optimizer, T_0: int, T_mult: int = 1,
                                   eta_min: float = 0.0) -> Scheduler:
    """PyTorch's ``CosineAnnealingWarmRestarts`` stepped once per step, same values."""
    if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
        raise ValueError(f"T_mult must be an integer >= 1, got {T_mult!r}")
    lrs = _base_lrs(optimizer)
    return Scheduler(optimizer, {"lr": [sgdr(lr, T_0, t_mult=T_mult, eta_min=eta_min) for lr in lrs]})


def cosine_annealing_lr(optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> Scheduler:
    """PyTorch's ``CosineAnnealingLR`` over one half-period (holds ``eta_min`` after ``T_max``)."""
    lrs = _base_lrs(optimizer)
    return Scheduler(optimizer, {"lr": [cosine(lr, eta_min, T_max) for lr in lrs]})


def step_lr(optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> Scheduler:
    """PyTorch's ``StepLR``."""
    return Scheduler(optimizer, {"lr": step_decay(1.0, step_size, gamma)}, scale={"lr": "initial"})


def multistep_lr(optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> Scheduler:
    """PyTorch's ``MultiStepLR`` (milestones strictly increasing)."""
    return Scheduler(optimizer, {"lr": multistep(1.0, list(milestones), gamma)}, scale={"lr": "initial"})


def exponential_lr(optimizer: Optimizer, gamma: float) -> Scheduler:
    """PyTorch's ``ExponentialLR``."""
    return Scheduler(optimizer, {"lr": exponential_decay(1.0, gamma)}, scale={"lr": "initial"})


def linear_lr(optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
              total_iters: int = 5) -> Scheduler:
    """PyTorch's ``LinearLR``: factor ``start -> end`` over ``total_iters``, then held."""
    if not 0 < start_factor <= 1:
        raise ValueError(f"start_factor must lie in (0, 1], got {start_factor}")
    if not 0 <= end_factor <= 1:
        raise ValueError(f"end_factor must lie in [0, 1], got {end_factor}")
    sched = Join((linear(start_factor, end_factor, total_iters), Constant(end_factor)), (float(total_iters),))
    return Scheduler(optimizer, {"lr": sched}, scale={"lr": "initial"})


def polynomial_lr(optimizer: Optimizer, total_iters: int = 5, power: float = 1.0) -> Scheduler:
    """PyTorch's ``PolynomialLR``: ``base * (1 - min(t, T) / T) ** power``."""
    sched = Join((polynomial(1.0, 0.0, total_iters, power), Constant(0.0)), (float(total_iters),))
    return Scheduler(optimizer, {"lr": sched}, scale={"lr": "initial"})


def reduce_lr_on_plateau(
    optimizer: Optimizer,
    mode: Literal["min", "max"] = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: Literal["rel", "abs"] = "rel",
    cooldown: int = 0,
    min_lr: PerGroup = 0.0,
    eps: float = 1e-8,
) -> Scheduler:
    """PyTorch's ``ReduceLROnPlateau``; feed the metric with ``observe(metric)``."""
    lrs = _base_lrs(optimizer)
    mins = _per_group("min_lr", min_lr, optimizer)
    plateaus = [
        reduce_on_plateau(lr, mode=mode, factor=factor, patience=patience, threshold=threshold,
                          threshold_mode=threshold_mode, cooldown=cooldown, min_value=m, eps=eps)
        for lr, m in zip(lrs, mins)
    ]
    return Scheduler(optimizer, {"lr": plateaus})


def fit_one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    lr_max: PerGroup,
    div: float = 25.0,
    div_final: float = 1e5,
    pct_start: float = 0.25,
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
) -> Scheduler:
    """fastai's ``fit_one_cycle`` (see :func:`superconverge.schedules.fastai_one_cycle`)."""
    peaks = _per_group("lr_max", lr_max, optimizer)
    policies = [fastai_one_cycle(total_steps, p, div=div, div_final=div_final, pct_start=pct_start,
                                 moms=moms) for p in peaks]
    return Scheduler(optimizer, {k: [p[k] for p in policies] for k in policies[0]})


def hf_wsd(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: Literal["linear", "cosine", "1-sqrt"] = "linear",
    decay_type: Literal["linear", "cosine", "1-sqrt"] = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> Scheduler:
    """Hugging Face's ``get_wsd_schedule``, relative to each group's own LR."""
    if num_cycles != 0.5:
        raise ValueError("only num_cycles=0.5 (one half-cosine down) is supported")
    sched = published.hf_wsd(num_warmup_steps, num_decay_steps, num_training_steps, num_stable_steps,
                             warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=min_lr_ratio)
    return Scheduler(optimizer, {"lr": sched}, scale={"lr": "initial"})


PRESETS = {
    "onecycle": one_cycle_lr, "cyclic": cyclic_lr,
    "cosine-warm-restarts": cosine_annealing_warm_restarts, "cosine-annealing": cosine_annealing_lr,
    "step": step_lr, "multistep": multistep_lr, "exponential": exponential_lr, "linear": linear_lr,
    "polynomial": polynomial_lr, "plateau": reduce_lr_on_plateau, "fastai-one-cycle": fit_one_cycle,
    "hf-wsd": hf_wsd,
}
