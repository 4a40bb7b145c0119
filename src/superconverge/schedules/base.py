"""The schedule protocol: an immutable value mapping a step to a float.

Every schedule is a frozen dataclass deriving from :class:`Schedule`. It implements
``at(step)``, the pure curve (it holds its final value past the end), and may
declare ``total_steps``, the length of the run it was planned for. Calling the
schedule, ``sched(step)``, is ``at(step)`` plus the past-end policy: a step beyond
``total_steps`` warns once (:class:`PastEndWarning`) or, in strict mode, raises.

Steps count optimizer steps from 0. A run of ``total_steps = T`` uses steps
``0 .. T-1``; step ``T`` is where a scheduler stands after the last optimizer step,
so it is still inside the run and never warns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

PastEnd = Literal["hold", "warn", "raise"]


class PastEndWarning(UserWarning):
    """A schedule was asked for a step beyond the run it was planned for."""


class PastEndError(ValueError):
    """Strict mode: a schedule was asked for a step beyond its run."""


class Schedule:
    """Base of all schedules: ``sched(step) -> float``; subclasses are frozen dataclasses."""

    __slots__ = ()

    def at(self, step: float) -> float:
        """The curve's value at ``step``, with no past-end check."""
        raise NotImplementedError

    @property
    def total_steps(self) -> float | None:
        """Length of the planned run in steps, or ``None`` for an unbounded schedule."""
        return None

    def __call__(self, step: int, past_end: PastEnd = "warn") -> float:
        check_step(self, step, past_end)
        return self.at(step)

    def values(self, steps: int | None = None) -> list[float]:
        """Values at steps ``0 .. steps-1`` (default: the whole planned run)."""
        n = steps if steps is not None else _default_length(self)
        return [self.at(t) for t in range(n)]

    def __mul__(self, factor: float) -> Schedule:
        from superconverge.schedules.compose import scale

        return scale(self, factor)

    __rmul__ = __mul__


def _default_length(sched: Schedule) -> int:
    total = sched.total_steps
    if total is None:
        raise ValueError(
            f"{type(sched).__name__} is unbounded; pass the number of steps to values(steps)"
        )
    return int(math.ceil(total))


def check_step(sched: Schedule, step: float, past_end: PastEnd = "warn") -> None:
    """Apply the past-end policy for ``step``; a negative step is always an error."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}; steps count optimizer steps from 0")
    total = sched.total_steps
    if total is None or step <= total or past_end == "hold":
        return
    message = (
        f"step {step} is past the end of a {_fmt(total)}-step schedule {short_repr(sched)}; "
        "it holds its final value. Extend the run with schedules.extend(...) "
        "if the extra steps are intended."
    )
    if past_end == "raise":
        raise PastEndError(message)
    # The message names the schedule but not the step, so Python's warning
    # registry shows it once per schedule and call site, not once per step.
    warnings.warn(
        f"a {_fmt(total)}-step schedule {short_repr(sched)} was asked for a step past its end; "
        "it holds its final value. Extend the run with schedules.extend(...) if intended.",
        PastEndWarning,
        stacklevel=3,
    )


def short_repr(sched: Schedule, limit: int = 120) -> str:
    text = repr(sched)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# -- argument checks shared by the factories --------------------------------------


def require_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def require_nonnegative(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def require_finite(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def require_steps(name: str, value: object) -> int:
    """A step count: a positive integer (floats such as 10.0 are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be a whole number of steps, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def require_fraction(name: str, value: float) -> float:
    """A fraction strictly inside (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def require_momentum(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"{name} must lie in [0, 1), got {value!r}; momentum (or Adam's beta1) of 1 "
            "or more never forgets and diverges"
        )
    return float(value)


def require_sorted(name: str, values: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")
    return out
