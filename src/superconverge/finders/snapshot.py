"""Everything a measurement run may change, copied and put back bit for bit.

:func:`snapshot` copies parameter values and gradients, buffers, every module's train/eval
mode, the optimizer's state and param-group values, and every RNG (torch, CUDA, NumPy,
Python). :func:`restore` writes them back in place: the same tensor objects, the same
param-group dicts, so references a caller holds stay valid. Keys the run added to a param
group (a scheduler's ``initial_lr``) are removed again.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> saved, before = snapshot(model, opt), model.weight.detach().clone()
>>> model(torch.ones(1, 2)).sum().backward(); opt.step()
>>> restore(model, opt, saved)
>>> torch.equal(model.weight, before), model.weight.grad is None, len(opt.state)
(True, True, 0)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from superconverge.train.checkpoint import rng_state, set_rng_state



def _tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter the sweep may change: the model's and any extra ones the optimizer holds."""
    seen: dict[int, torch.Tensor] = {id(p): p for p in model.parameters()}
    for group in optimizer.param_groups:
        seen.update((id(p), p) for p in group["params"])
    return list(seen.values())


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Copies of everything a training step can change (see the module docstring)."""
    params = _tensors(model, optimizer)
    return {
        "params": [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone()) for p in params],
        "buffers": {name: b.detach().clone() for name, b in model.named_buffers()},
        "modes": [(m, m.training) for m in model.modules()],
        # keys stay the live parameters; only the values are copied
        "state": {p: copy.deepcopy(s) for p, s in optimizer.state.items()},
        "groups": [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
        "rng": rng_state(),
    }


@torch.no_grad()
def restore(model: nn.Module, optimizer: torch.optim.Optimizer, snap: dict[str, Any]) -> None:
    """Put back what :func:`snapshot` copied, in place."""
    for p, value, grad in snap["params"]:
        p.copy_(value)
        p.grad = grad
    for name, b in model.named_buffers():
        if name in snap["buffers"]:
            b.copy_(snap["buffers"][name])
    for m, mode in snap["modes"]:
        m.training = mode
    optimizer.state.clear()
    optimizer.state.update(snap["state"])
    for group, saved in zip(optimizer.param_groups, snap["groups"]):
        for key in [k for k in group if k != "params" and k not in saved]:
            del group[key]  # e.g. 'initial_lr' added by a scheduler during the sweep
        for key, value in saved.items():
            if isinstance(value, torch.Tensor) and isinstance(group.get(key), torch.Tensor):
                group[key].copy_(value)  # keep the tensor the user may hold
            else:
                group[key] = value
    set_rng_state(snap["rng"])
