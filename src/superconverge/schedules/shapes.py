"""Basic shapes: constant, annealing curves between two values, and step decays."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

from superconverge.schedules.base import (
    Schedule,
    require_finite,
    require_nonnegative,
    require_positive,
    require_sorted,
    require_steps,
)

Shape = Literal["linear", "cos", "exp", "poly", "sqrt"]
SHAPES: tuple[str, ...] = ("linear", "cos", "exp", "poly", "sqrt")


def interpolate(shape: str, start: float, end: float, pct: float, power: float = 1.0) -> float:
    """Value of a ``shape`` curve from ``start`` (pct=0) to ``end`` (pct=1).

    - linear: ``start + (end - start) * pct``
    - cos:    ``end + (start - end) / 2 * (1 + cos(pi * pct))``
    - exp:    ``start * (end / start) ** pct``
    - poly:   ``end + (start - end) * (1 - pct) ** power``
    - sqrt:   ``start + (end - start) * sqrt(pct)`` (the "1-sqrt" cooldown)
    """
    if shape == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    if shape == "linear":
        return (end - start) * pct + start
    if shape == "exp":
        return start * (end / start) ** pct
    if shape == "poly":
        return end + (start - end) * (1.0 - pct) ** power
    if shape == "sqrt":
        return start + (end - start) * math.sqrt(pct)
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


@dataclass(frozen=True)
class Constant(Schedule):
    """``value`` at every step."""

    value: float
    steps: float | None = None

    def at(self, step: float) -> float:
        return self.value

    @property
    def total_steps(self) -> float | None:
        return self.steps


@dataclass(frozen=True)
class Anneal(Schedule):
    """A curve from ``start`` to ``end`` over ``steps`` steps, then holds ``end``.

    ``value(t) = interpolate(shape, start, end, min(t / steps, 1))``
    """

    start: float
    end: float
    steps: float
    shape: Shape = "linear"
    power: float = 1.0

    def at(self, step: float) -> float:
        pct = step / self.steps if self.steps > 0 else 1.0
        if pct > 1.0:
            pct = 1.0
        if self.shape == "cos":  # the common case, inlined: this runs every optimizer step
            return self.end + (self.start - self.end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return interpolate(self.shape, self.start, self.end, pct, self.power)

    @property
    def total_steps(self) -> float:
        return self.steps


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """``initial * gamma ** t``, unbounded (PyTorch's ExponentialLR)."""

    initial: float
    gamma: float

    def at(self, step: float) -> float:
        return self.initial * self.gamma**step


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``initial * gamma ** floor(t / step_size)`` (PyTorch's StepLR)."""

    initial: float
    step_size: int
    gamma: float

    def at(self, step: float) -> float:
        return self.initial * self.gamma ** (int(step) // self.step_size)


@dataclass(frozen=True)
class MultiStep(Schedule):
    """``initial * gamma ** (number of milestones <= t)`` (PyTorch's MultiStepLR)."""

    initial: float
    milestones: tuple[float, ...]
    gamma: float

    def at(self, step: float) -> float:
        return self.initial * self.gamma ** bisect.bisect_right(self.milestones, step)


# -- factories: check arguments, return the value ------------------------------------


def constant(value: float, steps: int | None = None) -> Constant:
    """A constant ``value``; ``steps`` optionally bounds the run.

    >>> constant(0.1)(50)
    0.1
    """
    return Constant(require_finite("value", value), None if steps is None else require_steps("steps", steps))


def _anneal(shape: Shape, start: float, end: float, steps: int, power: float = 1.0) -> Anneal:
    return Anneal(require_finite("start", start), require_finite("end", end),
                  require_steps("steps", steps), shape, power)


def linear(start: float, end: float, steps: int) -> Anneal:
    """Linear from ``start`` to ``end`` over ``steps``: ``start + (end - start) * t / steps``.

    >>> linear(0.0, 1.0, 10)(5)
    0.5
    """
    return _anneal("linear", start, end, steps)


def cosine(start: float, end: float, steps: int) -> Anneal:
    """Half-cosine from ``start`` to ``end``: ``end + (start - end) * (1 + cos(pi * t / steps)) / 2``.

    ``end`` is the floor; SGDR's ``eta_min``. PyTorch's CosineAnnealingLR is
    ``cosine(base_lr, eta_min, T_max)`` (but holds at ``eta_min`` after ``T_max``).

    >>> round(cosine(1.0, 0.0, 10)(5), 6)
    0.5
    """
    return _anneal("cos", start, end, steps)


def exponential(start: float, end: float, steps: int) -> Anneal:
    """Geometric from ``start`` to ``end``: ``start * (end / start) ** (t / steps)``.

    Both values must be positive (the LR range test's sweep is this shape).

    >>> round(exponential(1e-7, 10.0, 8)(4), 12)
    0.001
    """
    require_positive("start", start)
    require_positive("end", end)
    return _anneal("exp", start, end, steps)


def polynomial(start: float, end: float, steps: int, power: float = 1.0) -> Anneal:
    """Polynomial decay: ``end + (start - end) * (1 - t / steps) ** power``.

    PyTorch's PolynomialLR is ``polynomial(base_lr, 0, total_iters, power)``.

    >>> polynomial(1.0, 0.0, 10, power=2.0)(5)
    0.25
    """
    require_positive("power", power)
    return _anneal("poly", start, end, steps, float(power))


def exponential_decay(initial: float, gamma: float) -> ExponentialDecay:
    """Multiply by ``gamma`` every step: ``initial * gamma ** t`` (unbounded).

    >>> exponential_decay(1.0, 0.5)(3)
    0.125
    """
    require_finite("initial", initial)
    require_positive("gamma", gamma)
    return ExponentialDecay(float(initial), float(gamma))


def step_decay(initial: float, step_size: int, gamma: float = 0.1) -> StepDecay:
    """Multiply by ``gamma`` every ``step_size`` steps: ``initial * gamma ** (t // step_size)``.

    >>> step_decay(1.0, 10, 0.1)(25)  # doctest: +ELLIPSIS
    0.01...
    """
    require_finite("initial", initial)
    require_nonnegative("gamma", gamma)
    return StepDecay(float(initial), require_steps("step_size", step_size), float(gamma))


def multistep(initial: float, milestones: list[int] | tuple[int, ...], gamma: float = 0.1) -> MultiStep:
    """Multiply by ``gamma`` at each milestone: ``initial * gamma ** #{m <= t}``.

    >>> multistep(1.0, [10, 20], 0.5)(15)
    0.5
    """
    require_finite("initial", initial)
    require_nonnegative("gamma", gamma)
    if len(milestones) == 0:
        raise ValueError("milestones must name at least one step")
    ms = require_sorted("milestones", milestones)
    if ms[0] < 0:
        raise ValueError(f"milestones must be >= 0, got {list(milestones)}")
    return MultiStep(float(initial), ms, float(gamma))
