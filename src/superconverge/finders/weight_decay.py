"""Weight decay by LR range tests (Smith 2018): one sweep per value, keep the largest that still trains fast.

"Run the learning rate finder for a few values of weight decay, and pick the largest one
that will still let us train at a high maximum learning rate" (Gugger, after Smith). Each
sweep starts from the same weights with the same RNG state and the same batches, so the
curves differ only by weight decay.

The pick: among the sweeps with a reliable curve, the largest weight decay whose suggested
peak LR is within ``tolerance`` (2x) of the highest suggestion. Suggestions of one setting
scatter by about +-0.1 to 0.2 decades between runs, so 2x separates a real loss of LR from noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superconverge.finders.lr_range import Data, LossFn, LRFindResult, lr_find


@dataclass(frozen=True)
class WDSweepResult:
    """One LR range test per weight decay, the pick and why."""

    weight_decays: tuple[float, ...]
    results: tuple[LRFindResult, ...]
    pick: float  # the chosen weight decay
    max_lr: float  # the suggested 1cycle peak LR at that weight decay
    reason: str

    @property
    def best(self) -> LRFindResult:
        """The LR range test at the chosen weight decay."""
        return self.results[self.weight_decays.index(self.pick)]

    def to_dict(self) -> dict[str, Any]:
        return {"weight_decays": list(self.weight_decays), "pick": self.pick, "max_lr": self.max_lr,
                "reason": self.reason, "results": [r.to_dict() for r in self.results]}

    def plot(self, path: str | Path, *, title: str = "LR range test per weight decay") -> Path:
        """The sweeps' smoothed curves overlaid, the pick drawn bold."""
        from superconverge.finders.plots import plot_lr_find

        return plot_lr_find(self.results, path, title=title, labels=[f"wd {wd:g}" for wd in self.weight_decays],
                            highlight=self.weight_decays.index(self.pick))


def pick_weight_decay(weight_decays: Sequence[float], suggestions: Sequence[float], reliable: Sequence[bool],
                      *, tolerance: float = 2.0) -> tuple[int, str]:
    """(index of the pick, reason): the largest weight decay whose LR is within ``tolerance`` x of the best.

    >>> pick_weight_decay([0, 1e-4, 1e-3], [0.5, 0.4, 0.1], [True, True, True])[0]
    1
    """
    if not len(weight_decays) == len(suggestions) == len(reliable) or not weight_decays:
        raise ValueError("give one suggestion and one reliability flag per weight decay, and at least one")
    if not tolerance >= 1:
        raise ValueError(f"tolerance must be >= 1 (a factor on the LR), got {tolerance}")
    usable = [i for i, ok in enumerate(reliable) if ok]
    note = ""
    if not usable:
        usable = list(range(len(weight_decays)))
        note = " No curve was reliable, so this pick is a guess: run more steps or a larger batch."
    top = max(usable, key=lambda i: suggestions[i])
    allowed = [i for i in usable if suggestions[i] >= suggestions[top] / tolerance]
    pick = max(allowed, key=lambda i: weight_decays[i])
    reason = (f"weight decay {weight_decays[pick]:g} is the largest whose suggested peak LR "
              f"({suggestions[pick]:.3g}) is within {tolerance:g}x of the highest ({suggestions[top]:.3g}, "
              f"at weight decay {weight_decays[top]:g})")
    larger = sorted((i for i in range(len(weight_decays)) if weight_decays[i] > weight_decays[pick]),
                    key=lambda i: weight_decays[i])
    rejected = [f"{weight_decays[i]:g} " + (f"lowers it to {suggestions[i]:.3g}" if i in usable
                                            else "gave an unreliable curve") for i in larger]
    if rejected:
        reason += "; " + ", ".join(rejected)
    return pick, reason + "." + note


def wd_sweep(
    make_model: Callable[[], nn.Module],
    make_optimizer: Callable[[nn.Module, float], torch.optim.Optimizer],
    loss_fn: LossFn,
    data: Data,
    weight_decays: Sequence[float],
    *,
    tolerance: float = 2.0,
    **lr_find_kwargs: Any,
) -> WDSweepResult:
    """Run :func:`lr_find` once per weight decay from identical weights; pick as the seeds prescribe.

    ``make_optimizer(model, weight_decay)`` builds the optimizer; other keyword arguments go
    to :func:`lr_find` (``steps``, ``start_lr``, ``end_lr``, ...).

    >>> import torch
    >>> x = torch.randn(256, 4); y = (x.sum(1) > 0).long()
    >>> sweep = wd_sweep(lambda: torch.nn.Linear(4, 2),
    ...                  lambda m, wd: torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=wd),
    ...                  torch.nn.functional.cross_entropy, [(x, y)] * 60, [0.0, 1e-4], steps=60)
    >>> sweep.pick in (0.0, 1e-4)
    True
    """
    wds = [float(w) for w in weight_decays]
    if not wds:
        raise ValueError("give at least one weight decay, e.g. [0, 1e-5, 1e-4, 1e-3]")
    if any(w < 0 for w in wds) or len(set(wds)) != len(wds):
        raise ValueError(f"weight decays must be distinct and >= 0, got {wds}")
    # One model: lr_find puts weights, buffers and RNGs back after each sweep, so every
    # sweep starts from the very same state and differs only in weight decay.
    model = make_model()
    results = tuple(lr_find(model, make_optimizer(model, wd), loss_fn, data, **lr_find_kwargs) for wd in wds)
    index, reason = pick_weight_decay(wds, [r.suggestion for r in results], [r.reliable for r in results],
                                      tolerance=tolerance)
    return WDSweepResult(tuple(wds), results, wds[index], results[index].suggestion, reason)
