"""Muon: SGD momentum whose update is orthogonalised, for the weight matrices of hidden layers.

Each step (Jordan et al. 2024) takes the momentum's update direction ``u`` (Nesterov:
``g + mu * m``) of a weight viewed as a matrix ``(out, in * k * k)`` and replaces it with
the nearest semi-orthogonal matrix, approximately ``U V^T`` of its SVD ``U S V^T``, from a
few Newton-Schulz iterations; every direction of the update then moves at the same rate:

    X <- u / |u|_F ;  repeat: A = X X^T ;  X <- a X + (b A + c A A) X
    w <- w - lr * sqrt(max(1, out / fan_in)) * X

Biases, norms and a classifier head go in param groups with ``orthogonalize=False``: those
take plain SGD steps (momentum, Nesterov, weight decay as ``torch.optim.SGD``), so one
optimizer, and one schedule, drives the whole network. With ``normalize``
each weight is rescaled after the step to Frobenius norm ``sqrt(out)`` (each output filter
of unit norm on average): a weight followed by BatchNorm is scale-free, and a fixed norm
keeps its effective step size from shrinking as the norm would otherwise grow.

>>> import torch
>>> w = torch.nn.Parameter(torch.randn(16, 8, 3, 3))
>>> opt = Muon([w], lr=0.1)
>>> w.grad = torch.randn_like(w)
>>> opt.step()
>>> round(float(w.detach().norm()) ** 2)  # normalised to sqrt(out)
16
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch

# Quintic iteration coefficients chosen to push all singular values of X quickly into
# [~0.7, ~1.2] (not exactly 1: speed matters more than precision for an update direction).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(update: torch.Tensor, steps: int = 5, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Approximately ``U V^T`` of a matrix's SVD ``U S V^T``, by ``steps`` Newton-Schulz iterations.

    Works on the 2-D view ``(rows, rest)`` in ``dtype``: by default bfloat16 where the hardware
    computes it natively (a GPU, or a CPU with AVX-512 BF16 or AMX; the iteration tolerates
    it), else float32 (emulated bf16 matmuls are hundreds of times slower). Returns the
    input's shape and dtype.
    """
    a, b, c = NS_COEFFICIENTS
    x = update.reshape(len(update), -1).to(dtype or _fast_dtype(update.device))
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = x.T
    return x.reshape(update.shape).to(update.dtype)


@functools.cache
def _fast_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16
    from superconverge.train.runtime import cpu_has_native_bf16

    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


class Muon(torch.optim.Optimizer):
    """Orthogonalised momentum for weights of 2+ dimensions; SGD for groups with ``orthogonalize=False``.

    Weight decay on an orthogonalised group is decoupled (``w <- (1 - lr * wd) w`` before the
    step) and needs ``normalize=False``: a normalised weight has a fixed norm, so decaying it
    would do nothing, and asking for it is an error.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 0.02,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5, normalize: bool = True,
                 weight_decay: float = 0.0, orthogonalize: bool = True) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      normalize=normalize, weight_decay=weight_decay, orthogonalize=orthogonalize))

    def add_param_group(self, param_group: dict) -> None:
        """Add a group, checking its settings (also for groups added after construction)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        lr, mu, steps, wd = group["lr"], group["momentum"], group["ns_steps"], group["weight_decay"]
        if lr < 0 or not 0 <= mu < 1 or steps < 1 or wd < 0:
            raise ValueError(f"need lr >= 0, momentum in [0, 1), ns_steps >= 1 and weight_decay >= 0, got "
                             f"{lr}, {mu}, {steps}, {wd}")
        if group["orthogonalize"] and group["normalize"] and wd:
            raise ValueError("weight_decay does nothing to an orthogonalised weight with normalize=True (its "
                             "norm is fixed); set normalize=False for decoupled decay, or drop it")
        for p in group["params"] if group["orthogonalize"] else ():
            if p.dim() < 2:
                raise ValueError(f"Muon orthogonalises weights of 2+ dimensions; put this {p.dim()}-D "
                                 "parameter (a bias or a norm's scale) in a group with orthogonalize=False")

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu, lr = group["momentum"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not group["orthogonalize"] and group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.detach().clone()  # as torch.optim.SGD's first step
                else:
                    state["momentum_buffer"].mul_(mu).add_(grad)
                buf = state["momentum_buffer"]
                update = grad.add(buf, alpha=mu) if group["nesterov"] else buf
                if not group["orthogonalize"]:
                    p.add_(update, alpha=-lr)
                    continue
                rows, fan_in = len(p), p[0].numel()
                if group["weight_decay"]:  # decoupled; normalize is False here (checked when added)
                    p.mul_(1 - lr * group["weight_decay"])
                p.add_(orthogonalize(update, group["ns_steps"]), alpha=-lr * max(1.0, rows / fan_in) ** 0.5)
                if group["normalize"]:
                    p.mul_(rows**0.5 / (p.norm() + 1e-12))
        return loss
