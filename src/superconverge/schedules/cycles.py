"""Ready policies: 1cycle, cyclical LR, warm restarts, cosine with a floor, trapezoid, inverse sqrt.

Policies that drive several hyperparameters (1cycle and cyclical LR with their
inverse momentum curves) return a dict ``{"lr": ..., "momentum": ...}`` that the
PyTorch adapter takes as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from superconverge.schedules.base import (
    Schedule,
    require_finite,
    require_fraction,
    require_momentum,
    require_nonnegative,
    require_positive,
    require_steps,
)
from superconverge.schedules.compose import Join, join, repeat
from superconverge.schedules.shapes import Anneal, Constant, ExponentialDecay, Shape

Anneal2 = Literal["cos", "linear"]
CyclicMode = Literal["triangular", "triangular2", "exp_range"]


def one_cycle(
    total_steps: int,
    max_lr: float,
    *,
    pct_start: float = 0.3,
    anneal: Anneal2 = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> dict[str, Schedule]:
    """The 1cycle policy (Smith 2018) with its inverse momentum curve, in PyTorch's conventions.

    Two phases: LR ``max_lr / div_factor -> max_lr`` over steps ``0 .. pct_start*T - 1``,
    then ``max_lr -> initial / final_div_factor`` until step ``T - 1``, the last step
    of the run. Momentum goes ``max -> base -> max`` in step. ``three_phase`` goes back
    down to the initial LR symmetrically, then anneals to the minimum (momentum flat).

    >>> s = one_cycle(100, 0.1)
    >>> round(s["lr"](0), 6), round(s["lr"](29), 6), s["momentum"](29)
    (0.004, 0.1, 0.85)
    """
    T = require_steps("total_steps", total_steps)
    peak = require_positive("max_lr", max_lr)
    pct = require_fraction("pct_start", pct_start)
    div = require_positive("div_factor", div_factor)
    final_div = require_positive("final_div_factor", final_div_factor)
    if anneal not in ("cos", "linear"):
        raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")
    up = pct * T - 1  # PyTorch's phase boundary: the peak is at step pct*T - 1
    if up <= 0:
        raise ValueError(
            f"pct_start * total_steps = {pct * T:g} leaves no warm-up steps; "
            f"raise pct_start or total_steps so that pct_start * total_steps > 1"
        )
    initial = peak / div
    low = initial / final_div
    if three_phase:
        last = T - 1 - 2 * up
        if last <= 0:
            raise ValueError(
                f"three_phase with pct_start={pct} leaves no steps for the final anneal; "
                "use pct_start below 0.5"
            )
        lr_parts = [(initial, peak, up), (peak, initial, up), (initial, low, last)]
    else:
        lr_parts = [(initial, peak, up), (peak, low, T - 1 - up)]
    lengths = [length for _, _, length in lr_parts[:-1]]
    policy: dict[str, Schedule] = {"lr": join([Anneal(a, b, n, anneal) for a, b, n in lr_parts], lengths, T)}
    if cycle_momentum:
        lo = require_momentum("base_momentum", base_momentum)
        hi = require_momentum("max_momentum", max_momentum)
        mom = [(hi, lo), (lo, hi)] + ([(hi, hi)] if three_phase else [])
        policy["momentum"] = join([Anneal(a, b, n, anneal) for (a, b), (_, _, n) in zip(mom, lr_parts)],
                                  lengths, T)
    return policy


@dataclass(frozen=True)
class Modulated(Schedule):
    """``baseline + envelope(t) * (schedule(t) - baseline)``: a height that changes over time."""

    schedule: Schedule
    envelope: Schedule
    baseline: float

    def at(self, step: float) -> float:
        return self.baseline + self.envelope.at(step) * (self.schedule.at(step) - self.baseline)

    @property
    def total_steps(self) -> float | None:
        return self.schedule.total_steps


def cyclical(
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    *,
    mode: CyclicMode = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> dict[str, Schedule]:
    """Cyclical LR (Smith 2017): triangles between ``base_lr`` and ``max_lr``, forever.

    ``lr(t) = base + (max - base) * tri(t) * h(t)`` with ``tri`` rising over
    ``step_size_up`` and falling over ``step_size_down``; ``h = 1`` (triangular),
    ``0.5 ** cycle`` (triangular2) or ``gamma ** t`` (exp_range). Momentum moves
    inversely between ``max_momentum`` and ``base_momentum``.

    >>> s = cyclical(0.001, 0.01, 10)
    >>> s["lr"](10), s["lr"](20), s["momentum"](10)
    (0.01, 0.001, 0.8)
    """
    lo, hi = require_positive("base_lr", base_lr), require_positive("max_lr", max_lr)
    up = require_steps("step_size_up", step_size_up)
    down = up if step_size_down is None else require_steps("step_size_down", step_size_down)
    if mode not in ("triangular", "triangular2", "exp_range"):
        raise ValueError(f"mode must be triangular, triangular2 or exp_range, got {mode!r}")
    require_positive("gamma", gamma)

    def cycle(bottom: float, top: float) -> Schedule:
        tri = Join((Anneal(bottom, top, up), Anneal(top, bottom, down)), (float(up),))
        if mode == "triangular2":
            return repeat(tri, up + down, decay=0.5, baseline=bottom)
        cycles = repeat(tri, up + down)
        if mode == "exp_range":
            return Modulated(cycles, ExponentialDecay(1.0, float(gamma)), bottom)
        return cycles

    policy: dict[str, Schedule] = {"lr": cycle(lo, hi)}
    if cycle_momentum:
        m_lo = require_momentum("base_momentum", base_momentum)
        m_hi = require_momentum("max_momentum", max_momentum)
        policy["momentum"] = cycle(m_hi, m_lo)
    return policy


def sgdr(
    max_lr: float, t_0: int, *, t_mult: int = 1, eta_min: float = 0.0, decay: float = 1.0,
    cycles: int | None = None,
) -> Schedule:
    """Cosine annealing with warm restarts (Loshchilov & Hutter 2017).

    In cycle ``k`` of length ``T_k = t_0 * t_mult**k``, at ``T_cur`` steps into it:
    ``eta_min + decay**k * (max_lr - eta_min) * (1 + cos(pi * T_cur / T_k)) / 2``.

    >>> s = sgdr(0.1, 10, t_mult=2)
    >>> s(0), s(10), round(s(20), 6)
    (0.1, 0.1, 0.05)
    """
    peak = require_positive("max_lr", max_lr)
    floor = require_nonnegative("eta_min", eta_min)
    n = require_steps("t_0", t_0)
    unit = Anneal(peak, floor, float(n), "cos")
    return repeat(unit, n, t_mult=t_mult, decay=decay, baseline=floor, cycles=cycles)


def cosine_with_floor(peak: float, total_steps: int, *, floor: float | None = None,
                      floor_ratio: float = 0.01) -> Anneal:
    """Cosine decay from ``peak`` to a floor: ``floor + (peak - floor) * (1 + cos(pi t / T)) / 2``.

    The floor defaults to ``floor_ratio * peak``: annealing all the way to 0 wastes the
    last steps at a learning rate too small to move the weights.

    >>> cosine_with_floor(0.1, 100)(100)
    0.001
    """
    top = require_positive("peak", peak)
    low = floor_ratio * top if floor is None else require_nonnegative("floor", floor)
    if low >= top:
        raise ValueError(f"the floor ({low}) must be below the peak ({top})")
    return Anneal(top, low, float(require_steps("total_steps", total_steps)), "cos")


def trapezoid(
    total_steps: int,
    warmup_steps: int,
    decay_steps: int,
    *,
    peak: float = 1.0,
    start_ratio: float = 0.0,
    min_ratio: float = 0.0,
    warmup_shape: Shape = "linear",
    decay_shape: Shape = "linear",
) -> Join:
    """Trapezoid, a.k.a. warmup-stable-decay: rise, hold ``peak``, fall.

    ``peak * start_ratio -> peak`` over ``warmup_steps``, ``peak`` until
    ``T - decay_steps``, then ``peak -> peak * min_ratio`` over the last ``decay_steps``.
    The default ``peak = 1.0`` makes it a multiplier: give the adapter
    ``scale={"lr": "initial"}`` and each param group keeps its own base LR.

    >>> s = trapezoid(100, 10, 20)
    >>> s(5), s(50), s(90)
    (0.5, 1.0, 0.5)
    """
    T = require_steps("total_steps", total_steps)
    W = int(require_nonnegative("warmup_steps", warmup_steps))
    D = int(require_nonnegative("decay_steps", decay_steps))
    top = require_positive("peak", peak)
    if W + D > T:
        raise ValueError(
            f"warmup_steps + decay_steps = {W + D} overlap in a run of {T} steps; "
            f"they must add up to at most total_steps"
        )
    parts: list[Schedule] = []
    lengths: list[float] = []
    if W:
        parts.append(Anneal(top * start_ratio, top, float(W), warmup_shape))
        lengths.append(float(W))
    if T - W - D:
        parts.append(Constant(top))
        lengths.append(float(T - W - D))
    if D:
        parts.append(Anneal(top, top * min_ratio, float(D), decay_shape))
        lengths.append(float(D))
    return join(parts, lengths[:-1], T)


wsd = trapezoid


@dataclass(frozen=True)
class InverseSqrtDecay(Schedule):
    """``peak * sqrt(timescale / (t + timescale))``: 1/sqrt(t) decay, ``peak`` at ``t = 0``."""

    peak: float
    timescale: float

    def at(self, step: float) -> float:
        return self.peak / math.sqrt((step + self.timescale) / self.timescale)


def inverse_sqrt(peak: float, warmup_steps: int, *, timescale: float | None = None,
                 start: float = 0.0) -> Schedule:
    """Linear warmup to ``peak``, then ``peak * sqrt(timescale / (t - warmup + timescale))``.

    ``timescale`` defaults to ``warmup_steps`` (the Transformer's ``1/sqrt(step)``
    after warmup). Unbounded.

    >>> s = inverse_sqrt(1.0, 100)
    >>> s(50), s(100), s(400)
    (0.5, 1.0, 0.5)
    """
    top = require_positive("peak", peak)
    W = require_steps("warmup_steps", warmup_steps)
    scale_ = require_positive("timescale", timescale if timescale is not None else W)
    return Join((Anneal(require_finite("start", start), top, float(W)), InverseSqrtDecay(top, scale_)),
                (float(W),))
