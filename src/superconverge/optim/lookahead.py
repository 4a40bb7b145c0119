"""Lookahead (Zhang et al. 2019) as a post-step hook on any optimizer, with a scheduled pull.

Every ``every`` optimizer steps, slow weights move towards the fast ones and the fast
ones restart from there:

    slow <- decay(t) * slow + (1 - decay(t)) * fast ;  fast <- slow

``decay`` is any function of the step (a superconverge schedule works); 0 makes the hook
a no-op, values near 1 average strongly. :meth:`Lookahead.finish` copies the slow
weights into the model at the end. Floating-point buffers (BatchNorm statistics) are
averaged with the weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Lookahead:
    """Attach with ``Lookahead(model, optimizer, decay)``; call ``finish()`` after training."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, decay: Callable[[int], float],
                 every: int = 5) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.decay, self.every, self.steps = decay, every, 0
        self.tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        self.slow = [t.detach().clone() for t in self.tensors]
        self._handle = optimizer.register_step_post_hook(lambda *_: self._after_step())

    @torch.no_grad()
    def _after_step(self) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.pull(self.decay(self.steps))

    @torch.no_grad()
    def pull(self, decay: float) -> None:
        """One lookahead update with the given ``decay``."""
        if not 0 <= decay <= 1:
            raise ValueError(f"lookahead decay must be in [0, 1], got {decay}")
        for slow, fast in zip(self.slow, self.tensors):
            slow.lerp_(fast, 1 - decay)
            fast.copy_(slow)

    def finish(self) -> None:
        """Put the slow weights in the model and detach from the optimizer."""
        self.pull(1.0)
        self._handle.remove()
