"""Lint a policy before training: mistakes that run without error but waste the run."""

from __future__ import annotations

import math
from collections.abc import Mapping

from superconverge.schedules.base import Schedule
from superconverge.schedules.compose import Join, Scaled, Warped


def optimizer_steps(epochs: int, steps_per_epoch: int, accumulate: int = 1) -> int:
    """Optimizer steps in a run: ``epochs * ceil(steps_per_epoch / accumulate)``.

    With gradient accumulation the optimizer steps once per ``accumulate`` batches,
    and once more on an epoch's last, partial group of batches.

    >>> optimizer_steps(10, 98, accumulate=4)
    250
    """
    for name, value in [("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("accumulate", accumulate)]:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return epochs * math.ceil(steps_per_epoch / accumulate)


def lint(policy: Mapping[str, Schedule], run_steps: int | None = None) -> list[str]:
    """Warnings about a policy: a zero start, phases cut off by the next, a wrong horizon.

    >>> from superconverge.schedules import linear
    >>> lint({"lr": linear(0.0, 0.1, 100)}, run_steps=120)[0]
    'lr starts at 0: the first optimizer step does nothing; start the warmup above 0'
    """
    warnings: list[str] = []
    for key, sched in policy.items():
        if sched.at(0) == 0 and key == "lr":
            warnings.append(f"{key} starts at 0: the first optimizer step does nothing; start the warmup above 0")
        warnings.extend(f"{key}: {w}" for w in _overlaps(sched))
        total = sched.total_steps
        if run_steps is not None and total is not None and not math.isclose(total, run_steps):
            if total < run_steps:
                warnings.append(
                    f"{key} is planned for {total:g} steps but the run has {run_steps} optimizer steps: "
                    f"the last {run_steps - total:g} steps hold its final value"
                )
            else:
                warnings.append(
                    f"{key} is planned for {total:g} steps but the run has only {run_steps} optimizer "
                    f"steps: it is cut off before it finishes (check epochs, batches per epoch and "
                    f"gradient accumulation)"
                )
    return warnings


def _overlaps(sched: Schedule) -> list[str]:
    while isinstance(sched, (Scaled, Warped)):
        sched = sched.schedule
    if not isinstance(sched, Join):
        return []
    out = []
    bounds = (0.0, *sched.starts)
    for i, part in enumerate(sched.parts):
        if i + 1 < len(sched.parts):
            slot = bounds[i + 1] - bounds[i]
            length = part.total_steps
            if length is not None and length > slot + 1e-9 and not _continues(sched.parts[i + 1], part, slot):
                out.append(
                    f"phase {i} lasts {length:g} steps but phase {i + 1} starts after {slot:g}: "
                    f"the phases overlap and phase {i} is cut off"
                )
        out.extend(_overlaps(part))
    return list(dict.fromkeys(out))  # an extended schedule holds its original twice


def _continues(nxt: Schedule, part: Schedule, cut: float) -> bool:
    """Whether ``nxt`` picks ``part`` up where it was cut off, as :func:`extend` joins it."""
    return isinstance(nxt, Warped) and nxt.schedule == part and math.isclose(nxt.origin, cut, abs_tol=1e-9)
