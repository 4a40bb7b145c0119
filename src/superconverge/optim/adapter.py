"""The bridge to PyTorch: write scheduled values into an optimizer's param groups.

:class:`Scheduler` is a ``torch.optim.lr_scheduler.LRScheduler``: call ``step()``
once per optimizer step. It writes the absolute value of every scheduled key into
every param group at each step and never reads values back, so resuming needs only
the step number (and the plateau states, for metric-driven keys).

It also runs inside torch's ``SequentialLR`` and ``ChainedScheduler``: it records each
group's ``initial_lr`` as torch's schedulers do, and ``last_epoch`` can be set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from superconverge.schedules.base import PastEnd, Schedule
from superconverge.schedules.plateau import PlateauState, ReduceOnPlateau, observe, start

Driver = Union[Schedule, ReduceOnPlateau]
Scale = Union[Sequence[float], Literal["initial"]]

# Keys whose values must stay in [0, 1): momentum and Adam's betas.
_MOMENTUM_LIKE = ("momentum", "beta1", "beta2")


def resolve_key(group: Mapping[str, Any], key: str, index: int) -> tuple[str, int | None]:
    """Where ``key`` lives in a param group: ``(group key, tuple index or None)``.

    ``momentum`` maps to ``betas[0]`` for Adam-family optimizers; ``beta1``/``beta2``
    name the betas directly.
    """
    if key == "momentum":
        if "momentum" in group:
            if group["momentum"] == 0:
                raise ValueError(_momentum_off(index, "momentum=0", "SGD(params, lr, momentum=0.9)"))
            return "momentum", None
        if "betas" in group:
            if group["betas"][0] == 0:
                raise ValueError(_momentum_off(index, "betas[0] (beta1) = 0", "Adam(params, lr, betas=(0.9, 0.999))"))
            return "betas", 0
        raise ValueError(
            f"param group {index} has neither 'momentum' nor 'betas', so momentum cannot be "
            "scheduled; use an optimizer with momentum (SGD(momentum=0.9), Adam, AdamW, NAdam) "
            "or drop the momentum schedule (cycle_momentum=False)."
        )
    if key in ("beta1", "beta2"):
        if "betas" not in group:
            raise ValueError(f"param group {index} has no 'betas'; {key} needs an Adam-family optimizer")
        if key == "beta1" and group["betas"][0] == 0:
            raise ValueError(_momentum_off(index, "betas[0] (beta1) = 0", "Adam(params, lr, betas=(0.9, 0.999))"))
        return "betas", 0 if key == "beta1" else 1
    if key not in group:
        numeric = sorted(k for k, v in group.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise ValueError(
            f"param group {index} has no key {key!r}; schedulable keys here: {', '.join(numeric)}"
        )
    value = group[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise ValueError(f"param group {index} key {key!r} holds {value!r}, not a number to schedule")
    return key, None


def _momentum_off(index: int, built: str, example: str) -> str:
    return (
        f"param group {index} was built with {built}; scheduling momentum would switch it on silently. "
        f"In Python, build the optimizer with momentum > 0 (e.g. {example}) or schedule no momentum; "
        "on the command line, pass --set cycle_momentum=false, or a momentum > 0 (--set momentum=0.9)."
    )


def initial_value(group: Mapping[str, Any], where: tuple[str, int | None]) -> float:
    """A group's starting value of a key: for ``lr`` the ``initial_lr`` a scheduler recorded, if any.

    torch's schedulers record ``initial_lr`` before they write, and ``SequentialLR`` resets
    ``lr`` to it; reading it keeps a scheduler built after a torch warmup relative to the base LR.
    """
    key, idx = where
    if key == "lr" and "initial_lr" in group:
        return float(group["initial_lr"])
    value = group[key] if idx is None else group[key][idx]
    return float(value)


def _write(group: dict[str, Any], key: str, idx: int | None, value: float) -> None:
    if idx is not None:
        betas = group[key]
        group[key] = (value, betas[1]) if idx == 0 else (betas[0], value)
    elif isinstance(group[key], torch.Tensor):
        group[key].fill_(value)
    else:
        group[key] = value


class Scheduler(LRScheduler):
    """Drive any numeric param-group keys with schedules, once per optimizer step.

    ``schedules`` maps a key (``lr``, ``momentum``, ``weight_decay``, ``beta1``, ...) to
    a schedule or a :class:`ReduceOnPlateau` for all groups, or to a list with one per
    group. ``scale`` multiplies per group: a list of factors (discriminative LRs) or
    ``"initial"`` for each group's value at construction (for ``lr``: its ``initial_lr``
    if a scheduler recorded one), so relative schedules keep every group's own base
    value. Those factors are saved in :meth:`state_dict` and restored on load, so a
    resume gives the same values whether the optimizer state was loaded before or after
    building the Scheduler. ``start_step`` resumes at a given step.

    value written into group ``g`` at step ``t``: ``scale[g] * schedule[g](t)``

    >>> import torch
    >>> from superconverge.schedules import one_cycle
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
    >>> sched = Scheduler(opt, one_cycle(total_steps=100, max_lr=0.1))
    >>> round(opt.param_groups[0]["lr"], 6), opt.param_groups[0]["momentum"]
    (0.004, 0.95)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedules: Mapping[str, Driver | Sequence[Driver]],
        *,
        scale: Mapping[str, Scale] | None = None,
        past_end: PastEnd = "warn",
        start_step: int = 0,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a torch.optim.Optimizer")
        if not schedules:
            raise ValueError("give at least one key to schedule, e.g. {'lr': one_cycle(...)['lr']}")
        if past_end not in ("hold", "warn", "raise"):
            raise ValueError(f"past_end must be 'hold', 'warn' or 'raise', got {past_end!r}")
        self.optimizer = optimizer
        self.past_end = past_end
        groups = optimizer.param_groups
        n = len(groups)
        scale = dict(scale or {})
        unknown = set(scale) - set(schedules)
        if unknown:
            raise ValueError(f"scale names keys that are not scheduled: {sorted(unknown)}")
        self._where: dict[str, list[tuple[str, int | None]]] = {}
        self._drivers: dict[str, list[Driver]] = {}
        self._plateau: dict[str, list[PlateauState]] = {}
        self._unscaled: dict[str, list[Driver]] = {}  # drivers of scale="initial" keys, before their factors
        self._initial: dict[str, list[float]] = {}  # the factors read for those keys
        for key, driver in schedules.items():
            where = [resolve_key(g, key, i) for i, g in enumerate(groups)]
            drivers = _per_group(key, driver, n)
            factors = _factors(key, scale.get(key), groups, where)
            if isinstance(scale.get(key), str):
                self._unscaled[key], self._initial[key] = drivers, factors  # type: ignore[assignment]
            if factors is not None:
                drivers = [_scaled(d, f) for d, f in zip(drivers, factors)]
            self._where[key] = where
            self._drivers[key] = drivers
            if any(isinstance(d, ReduceOnPlateau) for d in drivers):
                if not all(isinstance(d, ReduceOnPlateau) for d in drivers):
                    raise ValueError(f"{key}: mix of plateau and time schedules across groups")
                self._plateau[key] = [start(d) for d in drivers]  # type: ignore[arg-type]
        self._plan = self._make_plan()
        bounds = [d.total_steps for k, ds in self._drivers.items() if k not in self._plateau for d in ds]
        finite = [b for b in bounds if b is not None]  # type: ignore[union-attr]
        self._horizon = min(finite) if finite else None
        if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
            raise ValueError(f"start_step must be a whole number >= 0, got {start_step!r}")
        for g in groups:  # as torch's schedulers do: SequentialLR resets lr to it
            g.setdefault("initial_lr", g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"])
        self.base_lrs = [initial_value(g, ("lr", None)) for g in groups]
        self.step_count = start_step
        self._apply()

    # -- the LRScheduler interface -------------------------------------------------

    @property
    def last_epoch(self) -> int:  # type: ignore[override]
        """PyTorch's name for the current step index; setting it moves there and writes its values.

        ``SequentialLR`` undoes each scheduler's first step with ``last_epoch -= 1``, so ``-1``
        is accepted: not started yet, nothing is written until the next ``step()``.
        """
        return self.step_count

    @last_epoch.setter
    def last_epoch(self, step: int) -> None:
        if isinstance(step, bool) or not isinstance(step, int) or step < -1:
            raise ValueError(f"last_epoch must be a whole number >= -1, got {step!r}")
        self.step_count = step
        self._apply()

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one optimizer step and write that step's values.

        ``step(0)`` restarts at step 0: torch 2.1 to 2.8's ``SequentialLR`` calls it when
        this scheduler's turn comes. Any other epoch is refused.
        """
        if epoch is not None:
            if isinstance(epoch, bool) or epoch != 0:
                raise TypeError("step() takes no epoch; superconverge schedules count optimizer steps "
                                "(only step(0), which SequentialLR uses to start it, is accepted)")
            self.last_epoch = 0
            return
        self.step_count += 1
        self._apply()

    def _update_lr(self, epoch: int | None = None) -> None:
        # torch >= 2.9's SequentialLR calls _update_lr(0) instead of step(0) when this scheduler's turn comes
        if epoch is None:
            self.step()
        else:
            self.last_epoch = epoch

    def observe(self, metric: float) -> None:
        """Feed a validation metric to the plateau-driven keys, then rewrite values."""
        if not self._plateau:
            raise ValueError("observe() needs a reduce_on_plateau schedule; none is scheduled")
        value = float(metric.item() if isinstance(metric, torch.Tensor) else metric)
        for key, states in self._plateau.items():
            drivers = self._drivers[key]
            self._plateau[key] = [
                observe(d, s, value, self.step_count) for d, s in zip(drivers, states)  # type: ignore[arg-type]
            ]
        self._apply()

    @property
    def metric_driven(self) -> bool:
        """Whether some key follows a plateau and so wants ``observe(metric)``."""
        return bool(self._plateau)

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        return list(self._last_lr)

    last_values: dict[str, list[float]]
    """Every scheduled key's per-group values written at the current step."""

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return self.values_at(self.step_count).get("lr", list(self._last_lr))

    def values_at(self, step: int) -> dict[str, list[float]]:
        """Every scheduled key's per-group values at ``step`` (no optimizer change)."""
        out: dict[str, list[float]] = {}
        for key, drivers in self._drivers.items():
            states = self._plateau.get(key)
            if states is not None:
                out[key] = [d.at(step, s) for d, s in zip(drivers, states)]  # type: ignore[union-attr]
            else:
                out[key] = [d(step, self.past_end) for d in drivers]  # type: ignore[call-arg]
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (ints, floats, strings), so ``torch.load(weights_only=True)`` reads it."""
        return {
            "step_count": self.step_count,
            "plateau": {k: [s.to_dict() for s in v] for k, v in self._plateau.items()},
            "keys": sorted(self._drivers),
            "initial": {k: list(v) for k, v in self._initial.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if "step_count" not in state_dict:
            raise ValueError("not a superconverge Scheduler state_dict: it has no 'step_count'")
        keys = sorted(state_dict.get("keys", sorted(self._drivers)))
        if keys != sorted(self._drivers):
            raise ValueError(
                f"the saved scheduler drove {keys} but this one drives {sorted(self._drivers)}; "
                "build the Scheduler with the same keys before loading"
            )
        plateau = state_dict.get("plateau", {})
        if sorted(plateau) != sorted(self._plateau):
            raise ValueError("the saved and current schedulers disagree on which keys follow a plateau")
        self._restore_initial(state_dict.get("initial", {}))  # absent in older state dicts: keep what was read
        self.step_count = int(state_dict["step_count"])
        self._plateau = {k: [PlateauState.from_dict(dict(s)) for s in v] for k, v in plateau.items()}
        self._apply()

    # -- internals -------------------------------------------------------------------

    def _restore_initial(self, saved: Mapping[str, Sequence[float]]) -> None:
        """Rescale the ``scale="initial"`` keys by the saved factors, not the ones read at construction.

        An optimizer state loaded before this Scheduler was built holds scheduled values,
        not base values; the saved factors are the ones the run started from.
        """
        if not saved:
            return
        if sorted(saved) != sorted(self._initial):
            raise ValueError(
                f"the saved scheduler scaled {sorted(saved)} by their initial values but this one scales "
                f"{sorted(self._initial)}; build the Scheduler with the same scale before loading"
            )
        factors = {k: [float(f) for f in v] for k, v in saved.items()}
        for key, fs in factors.items():
            if len(fs) != len(self._unscaled[key]) or not all(math.isfinite(f) for f in fs):
                raise ValueError(f"the saved initial factors of {key}, {fs}, do not fit this optimizer")
        for key, fs in factors.items():
            self._initial[key] = fs
            self._drivers[key] = [_scaled(d, f) for d, f in zip(self._unscaled[key], fs)]
        self._plan = self._make_plan()

    def _make_plan(self) -> list[tuple[str, Any, list[tuple[int, str, int | None]], bool]]:
        """(key, driver, [(group index, group key, tuple index)], momentum-like) per distinct driver.

        A schedule shared by several groups is evaluated once per step.
        """
        plan = []
        for key, drivers in self._drivers.items():
            if key in self._plateau:
                continue
            by_id: dict[int, tuple[Any, list[tuple[int, str, int | None]]]] = {}
            for g, (driver, (name, idx)) in enumerate(zip(drivers, self._where[key])):
                by_id.setdefault(id(driver), (driver, []))[1].append((g, name, idx))
            plan.extend((key, d, targets, key in _MOMENTUM_LIKE) for d, targets in by_id.values())
        return plan

    def _apply(self) -> None:
        step = self.step_count
        if step < 0:  # not started (inside SequentialLR before its turn): leave the groups alone
            return
        if self._horizon is not None and step > self._horizon:
            for key, drivers in self._drivers.items():  # warns once, or raises in strict mode
                if key not in self._plateau:
                    for d in drivers:
                        d(step, self.past_end)  # type: ignore[call-arg]
        groups = self.optimizer.param_groups
        values: dict[str, list[float]] = {}
        for key, driver, targets, momentum_like in self._plan:
            value = driver.at(step)
            if momentum_like and not 0.0 <= value < 1.0:
                raise ValueError(f"{key} schedule gives {value} at step {step}; it must lie in [0, 1)")
            row = values.setdefault(key, [0.0] * len(groups))
            for g, name, idx in targets:
                row[g] = value
                _write(groups[g], name, idx, value)
        for key, states in self._plateau.items():
            row = values.setdefault(key, [0.0] * len(groups))
            for g, (driver, state) in enumerate(zip(self._drivers[key], states)):
                row[g] = value = driver.at(step, state)  # type: ignore[call-arg]
                _write(groups[g], *self._where[key][g], value)
        self.last_values = values
        self._last_lr = values["lr"] if "lr" in values else [float(g["lr"]) for g in groups]


def _per_group(key: str, driver: Driver | Sequence[Driver], n: int) -> list[Driver]:
    if isinstance(driver, (Schedule, ReduceOnPlateau)):
        return [driver] * n
    drivers = list(driver)
    if len(drivers) != n:
        raise ValueError(
            f"{key}: got {len(drivers)} schedules for {n} param groups; give one per group or one for all"
        )
    for d in drivers:
        if not isinstance(d, (Schedule, ReduceOnPlateau)):
            raise TypeError(f"{key}: {d!r} is not a schedule")
    return drivers


def _factors(key: str, scale: Scale | None, groups: list[dict[str, Any]],
             where: list[tuple[str, int | None]]) -> list[float] | None:
    if scale is None:
        return None
    if isinstance(scale, str):
        if scale != "initial":
            raise ValueError(f"scale for {key} must be a list of factors or 'initial', got {scale!r}")
        return [initial_value(g, w) for g, w in zip(groups, where)]
    factors = [float(f) for f in scale]
    if len(factors) != len(groups):
        raise ValueError(f"scale for {key}: {len(factors)} factors for {len(groups)} param groups")
    if any(not math.isfinite(f) for f in factors):
        raise ValueError(f"scale for {key} must be finite, got {factors}")
    return factors


def _scaled(driver: Driver, factor: float) -> Driver:
    if isinstance(driver, ReduceOnPlateau):
        return driver.scaled(factor)
    from superconverge.schedules.compose import scale

    return scale(driver, factor)
