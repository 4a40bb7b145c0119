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
>>> round(float(w.norm()) ** 2)  # normalised to sqrt(out)
16
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

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

    Weight decay applies to the SGD groups only: an orthogonalised, normalised weight has
    a fixed norm, so decaying it would do nothing; asking for it on an orthogonalised group
    is an error.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict], lr: float = 0.02,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5, normalize: bool = True,
                 weight_decay: float = 0.0, orthogonalize: bool = True) -> None:
        if lr < 0 or not 0 <= momentum < 1 or ns_steps < 1 or weight_decay < 0:
            raise ValueError(f"need lr >= 0, momentum in [0, 1), ns_steps >= 1 and weight_decay >= 0, got "
                             f"{lr}, {momentum}, {ns_steps}, {weight_decay}")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      normalize=normalize, weight_decay=weight_decay, orthogonalize=orthogonalize))
        for group in self.param_groups:
            for p in group["params"]:
                if group["orthogonalize"] and group["weight_decay"]:
                    raise ValueError("weight_decay applies to groups with orthogonalize=False only; set it "
                                     "there (orthogonalised weights keep their norm with normalize=True)")
                if group["orthogonalize"] and p.dim() < 2:
                    raise ValueError(f"Muon orthogonalises weights of 2+ dimensions; put this {p.dim()}-D "
                                     "parameter (a bias or a norm's scale) in a group with orthogonalize=False")

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
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
                p.add_(orthogonalize(update, group["ns_steps"]), alpha=-lr * max(1.0, rows / fan_in) ** 0.5)
                if group["normalize"]:
                    p.mul_(rows**0.5 / (p.norm() + 1e-12))
        return loss
