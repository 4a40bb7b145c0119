"""Composition: joins, warmup, repeats, scaling and extending a run."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from superconverge.schedules.base import (
    Schedule,
    require_finite,
    require_nonnegative,
    require_positive,
    require_steps,
)
from superconverge.schedules.shapes import Anneal

WarmupShape = Literal["linear", "cos", "exp"]


@dataclass(frozen=True)
class Join(Schedule):
    """Schedules run end to end: part ``i`` starts at ``starts[i-1]`` with its own step 0.

    ``value(t) = parts[i].at(t - starts[i-1])`` for ``starts[i-1] <= t < starts[i]``.
    ``run_steps`` overrides the planned length (default: last start + last part's length).
    """

    parts: tuple[Schedule, ...]
    starts: tuple[float, ...]
    run_steps: float | None = None

    def at(self, step: float) -> float:
        i = bisect.bisect_right(self.starts, step)
        offset = self.starts[i - 1] if i > 0 else 0.0
        return self.parts[i].at(step - offset)

    @property
    def total_steps(self) -> float | None:
        if self.run_steps is not None:
            return self.run_steps
        last = self.parts[-1].total_steps
        return None if last is None else (self.starts[-1] if self.starts else 0.0) + last


@dataclass(frozen=True)
class Scaled(Schedule):
    """``factor * schedule(t)``."""

    schedule: Schedule
    factor: float

    def at(self, step: float) -> float:
        return self.factor * self.schedule.at(step)

    @property
    def total_steps(self) -> float | None:
        return self.schedule.total_steps


@dataclass(frozen=True)
class Warped(Schedule):
    """A schedule read at a shifted, stretched clock: ``schedule(origin + rate * t)``."""

    schedule: Schedule
    origin: float
    rate: float
    run_steps: float | None = None

    def at(self, step: float) -> float:
        return self.schedule.at(self.origin + self.rate * step)

    @property
    def total_steps(self) -> float | None:
        return self.run_steps


@dataclass(frozen=True)
class Repeat(Schedule):
    """Cycles of ``unit``; cycle ``k`` lasts ``period * t_mult**k`` steps.

    Inside cycle ``k`` at local step ``s``:
    ``value = baseline + decay**k * (unit((s / len_k) * period) - baseline)``,
    so each cycle is the unit stretched to its length, its height above ``baseline``
    shrunk by ``decay`` per cycle. ``cycles=None`` repeats forever.
    """

    unit: Schedule
    period: float
    t_mult: float = 1.0
    decay: float = 1.0
    baseline: float = 0.0
    cycles: int | None = None

    def locate(self, step: float) -> tuple[int, float, float]:
        """(cycle index, local step, cycle length) of ``step``."""
        if self.t_mult == 1.0:
            k = int(step // self.period)
            if self.cycles is not None:
                k = min(k, self.cycles - 1)
            return k, step - k * self.period, self.period
        start, length, k = 0.0, self.period, 0
        while step >= start + length and (self.cycles is None or k < self.cycles - 1):
            start += length
            length *= self.t_mult
            k += 1
        return k, step - start, length

    def at(self, step: float) -> float:
        k, local, length = self.locate(step)
        unit_value = self.unit.at(min(local, length) * (self.period / length))
        if self.decay == 1.0:
            return unit_value
        return self.baseline + self.decay**k * (unit_value - self.baseline)

    @property
    def total_steps(self) -> float | None:
        if self.cycles is None:
            return None
        if self.t_mult == 1.0:
            return self.period * self.cycles
        return self.period * (self.t_mult**self.cycles - 1) / (self.t_mult - 1)


# -- factories ----------------------------------------------------------------------


def join(parts: Sequence[Schedule], steps: Sequence[float], total_steps: float | None = None) -> Join:
    """Run ``parts`` end to end; ``steps[i]`` is how long part ``i`` lasts before the next starts.

    ``steps`` has one entry per part except the last (which runs to its own end);
    ``total_steps`` sets the planned run length when the last part's own length does not.

    >>> from superconverge.schedules import linear, cosine
    >>> s = join([linear(0.01, 0.1, 10), cosine(0.1, 0.0, 90)], [10])
    >>> s.total_steps, s(10)
    (100.0, 0.1)
    """
    parts = tuple(parts)
    if not parts:
        raise ValueError("join needs at least one schedule")
    if len(steps) != len(parts) - 1:
        raise ValueError(
            f"join of {len(parts)} parts needs {len(parts) - 1} phase lengths "
            f"(every part but the last), got {len(steps)}"
        )
    for i, length in enumerate(steps):
        if not length > 0:
            raise ValueError(f"phase {i} of the join must last > 0 steps, got {length}")
    starts = tuple(itertools.accumulate(float(n) for n in steps))
    return Join(parts, starts, None if total_steps is None else float(total_steps))


def join_fractions(parts: Sequence[Schedule], fractions: Sequence[float], total_steps: int) -> Join:
    """Join phases that last given fractions of a ``total_steps`` run.

    Phase ``i`` spans ``[c_i * T, c_{i+1} * T)`` with ``c`` the running sum of
    ``fractions`` (which must sum to 1); each part is stretched to its span, so a part
    built over any length works. fastai's 1cycle is this join of two cosines.

    >>> from superconverge.schedules import cosine
    >>> s = join_fractions([cosine(0.004, 0.1, 1), cosine(0.1, 1e-6, 1)], [0.25, 0.75], 100)
    >>> round(s(25), 6)
    0.1
    """
    total = require_steps("total_steps", total_steps)
    if len(fractions) != len(parts) or not parts:
        raise ValueError(f"give one fraction per part: {len(parts)} parts, {len(fractions)} fractions")
    if any(not f > 0 for f in fractions):
        raise ValueError(f"fractions must be positive, got {list(fractions)}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must sum to 1, got {sum(fractions)}")
    stretched, lengths = [], []
    for part, f in zip(parts, fractions):
        span = f * total
        length = part.total_steps or span
        stretched.append(Warped(part, 0.0, length / span, span))
        lengths.append(span)
    starts = tuple(itertools.accumulate(lengths[:-1]))
    return Join(tuple(stretched), starts, float(total))


def warmup(
    schedule: Schedule,
    steps: int,
    *,
    shape: WarmupShape = "linear",
    start_factor: float = 0.01,
    start: float | None = None,
) -> Join:
    """Put a warmup of ``steps`` in front of ``schedule``, rising to its first value.

    The warmup goes from ``start`` (default ``start_factor * schedule(0)``) to
    ``schedule(0)`` along ``shape``; then ``schedule`` runs from its own step 0.

    >>> from superconverge.schedules import cosine
    >>> s = warmup(cosine(0.1, 0.0, 90), 10, start=0.0)
    >>> s(0), s(5), s(10), s.total_steps
    (0.0, 0.05, 0.1, 100.0)
    """
    n = require_steps("steps", steps)
    if shape not in ("linear", "cos", "exp"):
        raise ValueError(f"unknown warmup shape {shape!r}; choose linear, cos or exp")
    target = schedule.at(0)
    begin = start_factor * target if start is None else require_finite("start", start)
    if shape == "exp" and (begin <= 0 or target <= 0):
        raise ValueError(
            f"an exponential warmup needs positive start and target values, got {begin} -> {target}"
        )
    return Join((Anneal(begin, target, n, shape), schedule), (float(n),))


def repeat(
    unit: Schedule,
    period: float | None = None,
    *,
    t_mult: float = 1.0,
    decay: float = 1.0,
    baseline: float = 0.0,
    cycles: int | None = None,
) -> Repeat:
    """Repeat ``unit`` in cycles that grow by ``t_mult`` and shrink in height by ``decay``.

    ``period`` defaults to the unit's own length. See :class:`Repeat` for the formula.

    >>> from superconverge.schedules import cosine
    >>> s = repeat(cosine(1.0, 0.0, 10), t_mult=2)
    >>> s(10), s(30)
    (1.0, 1.0)
    """
    length = period if period is not None else unit.total_steps
    if length is None:
        raise ValueError("repeat needs a period: the unit schedule is unbounded")
    require_positive("period", length)
    if t_mult < 1:
        raise ValueError(f"t_mult must be >= 1 (cycles may only grow), got {t_mult}")
    require_nonnegative("decay", decay)
    if cycles is not None:
        cycles = require_steps("cycles", cycles)
    return Repeat(unit, float(length), float(t_mult), float(decay), float(baseline), cycles)


def scale(schedule: Schedule, factor: float) -> Scaled:
    """Multiply every value by ``factor``: ``factor * schedule(t)``.

    >>> from superconverge.schedules import linear
    >>> scale(linear(0.0, 1.0, 10), 0.5)(10)
    0.5
    """
    return Scaled(schedule, require_finite("factor", factor))


def extend(schedule: Schedule, at_step: int, total_steps: int) -> Join:
    """Continue a run past its planned end: re-plan the rest from ``at_step`` to ``total_steps``.

    Semantics: steps before ``at_step`` are unchanged; from there the remaining part
    of the curve (``at_step .. T``) is stretched evenly over ``at_step .. total_steps``:
    ``value(t) = schedule(at_step + (t - at_step) * (T - at_step) / (total_steps - at_step))``.
    The curve is continuous at ``at_step``, keeps its shape and still ends at its
    final value. A 1cycle planned for 30 epochs and extended at epoch 20 to 40 spends
    20 epochs on what would have been its last 10. If ``at_step`` is at or past the
    old end, the final value is held (nothing is left to stretch).

    >>> from superconverge.schedules import linear
    >>> s = extend(linear(1.0, 0.0, 10), at_step=5, total_steps=15)
    >>> s(5), s(10), s(15)
    (0.5, 0.25, 0.0)
    """
    old = schedule.total_steps
    if old is None:
        raise ValueError("an unbounded schedule needs no extending")
    at = require_steps("at_step", at_step) if at_step != 0 else 0
    new = require_steps("total_steps", total_steps)
    if new <= at:
        raise ValueError(f"total_steps ({new}) must be after at_step ({at})")
    rate = max(old - at, 0.0) / (new - at)
    tail = Warped(schedule, float(min(at, old)), rate, float(new - at))
    if at == 0:
        return Join((tail,), (), float(new))
    return Join((schedule, tail), (float(at),), float(new))
