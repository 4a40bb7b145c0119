"""Schedules as other libraries publish them: fastai's 1cycle and Hugging Face's WSD.

Pure policies; :mod:`superconverge.optim.presets` binds them to an optimizer.
"""

from __future__ import annotations

from typing import Literal

from superconverge.schedules.base import Schedule, require_positive, require_steps
from superconverge.schedules.compose import join, join_fractions
from superconverge.schedules.shapes import Anneal, Constant

HFShape = Literal["linear", "cosine", "1-sqrt"]


def fastai_one_cycle(
    total_steps: int,
    lr_max: float,
    *,
    div: float = 25.0,
    div_final: float = 1e5,
    pct_start: float = 0.25,
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
) -> dict[str, Schedule]:
    """fastai's ``fit_one_cycle``: two cosines joined at ``pct_start`` of the run.

    At step ``i`` of ``T`` the progress is ``i / T``; LR goes ``lr_max/div -> lr_max ->
    lr_max/div_final``, momentum ``moms[0] -> moms[1] -> moms[2]``.

    >>> p = fastai_one_cycle(100, 1.0)
    >>> [round(p["lr"](t), 9) for t in (0, 25)], round(p["momentum"](25), 9)
    ([0.04, 1.0], 0.85)
    """
    T = require_steps("total_steps", total_steps)
    peak = require_positive("lr_max", lr_max)
    fr = [pct_start, 1.0 - pct_start]

    def two_cosines(a: float, b: float, c: float) -> Schedule:
        return join_fractions([Anneal(a, b, 1.0, "cos"), Anneal(b, c, 1.0, "cos")], fr, T)

    return {"lr": two_cosines(peak / div, peak, peak / div_final), "momentum": two_cosines(*moms)}


def hf_wsd(
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    *,
    warmup_type: HFShape = "linear",
    decay_type: HFShape = "cosine",
    min_lr_ratio: float = 0.0,
) -> Schedule:
    """Hugging Face's ``get_wsd_schedule`` as a multiplier of the base LR.

    Warmup ``min_lr_ratio -> 1``, stable at 1, decay ``1 -> min_lr_ratio``, then held.

    >>> s = hf_wsd(10, 10, num_training_steps=100)
    >>> s(5), s(50), s(100)
    (0.5, 1.0, 0.0)
    """
    if num_stable_steps is None:
        if num_training_steps is None:
            raise ValueError("give num_training_steps or num_stable_steps")
        num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps
    if num_stable_steps < 0:
        raise ValueError(
            f"warmup ({num_warmup_steps}) + decay ({num_decay_steps}) steps exceed the "
            f"{num_training_steps} training steps: the phases overlap"
        )
    # HF's "1-sqrt" warmup, 1 - sqrt(1 - p), is our poly shape with power 1/2.
    warm = {"linear": ("linear", 1.0), "cosine": ("cos", 1.0), "1-sqrt": ("poly", 0.5)}
    decay = {"linear": ("linear", 1.0), "cosine": ("cos", 1.0), "1-sqrt": ("sqrt", 1.0)}
    if warmup_type not in warm or decay_type not in decay:
        raise ValueError("warmup_type and decay_type must be 'linear', 'cosine' or '1-sqrt'")
    lo = min_lr_ratio
    phases = [
        (num_warmup_steps, Anneal(lo, 1.0, max(1, num_warmup_steps), *warm[warmup_type])),
        (num_stable_steps, Constant(1.0)),
        (num_decay_steps, Anneal(1.0, lo, max(1, num_decay_steps), *decay[decay_type])),
    ]
    kept = [(n, part) for n, part in phases if n > 0]
    total = sum(n for n, _ in kept)
    return join([part for _, part in kept] + [Constant(lo)], [n for n, _ in kept], total or None)
