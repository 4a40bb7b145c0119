"""Reduce-on-plateau as explicit state: ``observe(plateau, state, metric, step) -> state``.

The policy (:class:`ReduceOnPlateau`) is an immutable value; everything that changes
lives in :class:`PlateauState`, a small value a checkpoint stores as a plain dict.
A time-based lead-in (a warmup) may run before the metric takes over, which
PyTorch's ReduceLROnPlateau cannot be chained with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

from superconverge.schedules.base import (
    Schedule,
    require_nonnegative,
    require_positive,
)
from superconverge.schedules.shapes import Anneal

Mode = Literal["min", "max"]
ThresholdMode = Literal["rel", "abs"]


@dataclass(frozen=True)
class ReduceOnPlateau:
    """Multiply the value by ``factor`` when the metric stops improving for ``patience`` checks.

    Improvement (mode ``min``, ``rel``): ``metric < best * (1 - threshold)``;
    (``min``, ``abs``): ``metric < best - threshold``; mirrored for ``max``.
    On the ``patience + 1``-th check without improvement:
    ``value <- max(value * factor, min_value)`` unless that changes it by ``eps`` or less;
    then ``cooldown`` checks are ignored. During the first ``lead_in_steps`` steps the
    value follows ``lead_in`` and metrics are not counted.
    """

    initial: float
    mode: Mode = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: ThresholdMode = "rel"
    cooldown: int = 0
    min_value: float = 0.0
    eps: float = 1e-8
    lead_in: Schedule | None = None
    lead_in_steps: int = 0

    def at(self, step: float, state: PlateauState) -> float:
        """The value at ``step`` given the current state."""
        if self.lead_in is not None and step < self.lead_in_steps:
            return self.lead_in.at(step)
        return state.value

    def scaled(self, factor: float) -> ReduceOnPlateau:
        """The same policy for a param group whose values are ``factor`` times larger."""
        lead = None if self.lead_in is None else _scale(self.lead_in, factor)
        return replace(self, initial=self.initial * factor, lead_in=lead)


def _scale(sched: Schedule, factor: float) -> Schedule:
    from superconverge.schedules.compose import scale

    return scale(sched, factor)


@dataclass(frozen=True)
class PlateauState:
    """What a plateau policy has seen: current value, best metric, counters."""

    value: float
    best: float
    bad_checks: int = 0
    cooldown_left: int = 0
    checks: int = 0
    reductions: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> PlateauState:
        return cls(**data)  # type: ignore[arg-type]


def start(plateau: ReduceOnPlateau) -> PlateauState:
    """The state before any metric has been seen."""
    return PlateauState(value=plateau.initial, best=math.inf if plateau.mode == "min" else -math.inf)


def improved(plateau: ReduceOnPlateau, metric: float, best: float) -> bool:
    """Whether ``metric`` beats ``best`` by more than the threshold."""
    t = plateau.threshold
    if plateau.mode == "min":
        return metric < (best * (1.0 - t) if plateau.threshold_mode == "rel" else best - t)
    return metric > (best * (1.0 + t) if plateau.threshold_mode == "rel" else best + t)


def observe(plateau: ReduceOnPlateau, state: PlateauState, metric: float, step: int = 0) -> PlateauState:
    """The state after seeing ``metric`` at ``step`` (ignored during the lead-in).

    >>> p = reduce_on_plateau(0.1, patience=1, factor=0.5)
    >>> s = start(p)
    >>> for loss in [1.0, 1.0, 1.0]:
    ...     s = observe(p, s, loss)
    >>> s.value
    0.05
    """
    metric = float(metric)
    if math.isnan(metric):
        raise ValueError("the plateau metric is NaN; the run has diverged or the metric is broken")
    if plateau.lead_in is not None and step < plateau.lead_in_steps:
        return state
    if improved(plateau, metric, state.best):
        best, bad = metric, 0
    else:
        best, bad = state.best, state.bad_checks + 1
    cooldown = state.cooldown_left
    if cooldown > 0:
        cooldown -= 1
        bad = 0  # bad checks during cooldown do not count
    value, reductions = state.value, state.reductions
    if bad > plateau.patience:
        new = max(value * plateau.factor, plateau.min_value)
        if value - new > plateau.eps:
            value, reductions = new, reductions + 1
        cooldown, bad = plateau.cooldown, 0
    return PlateauState(value, best, bad, cooldown, state.checks + 1, reductions)


def reduce_on_plateau(
    initial: float,
    *,
    mode: Mode = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: ThresholdMode = "rel",
    cooldown: int = 0,
    min_value: float = 0.0,
    eps: float = 1e-8,
    warmup_steps: int = 0,
    warmup_shape: Literal["linear", "cos", "exp"] = "linear",
    warmup_start_factor: float = 0.01,
) -> ReduceOnPlateau:
    """Reduce-on-plateau from ``initial``, optionally after a warmup of ``warmup_steps``.

    ``mode="max"`` for metrics that should grow (accuracy): tracking accuracy with
    ``mode="min"`` cuts the LR while the model is still improving.

    >>> p = reduce_on_plateau(0.1, mode="max", warmup_steps=100)
    >>> p.at(50, start(p)), p.at(100, start(p))
    (0.0505, 0.1)
    """
    require_positive("initial", initial)
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
    if not 0 < factor < 1:
        raise ValueError(f"factor must lie strictly between 0 and 1, got {factor!r}")
    for name, value in [("patience", patience), ("cooldown", cooldown), ("warmup_steps", warmup_steps)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    require_nonnegative("threshold", threshold)
    require_nonnegative("min_value", min_value)
    require_nonnegative("eps", eps)
    lead = None
    if warmup_steps:
        lead = Anneal(warmup_start_factor * initial, float(initial), float(warmup_steps), warmup_shape)
    return ReduceOnPlateau(float(initial), mode, float(factor), patience, float(threshold),
                           threshold_mode, cooldown, float(min_value), float(eps), lead, warmup_steps)
