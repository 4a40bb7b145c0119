"""Where and how a run computes: device, precision, threads, optimizers by name."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
from collections.abc import Iterable, Iterator
from typing import Literal

import torch
from torch import nn

from superconverge.train.recipe import LRFREE_OPTIMIZERS, OPTIMIZERS

Precision = Literal["auto", "bf16", "fp16", "fp32"]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no GPU is visible; use --device cpu or auto")
    return device


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """``auto``: bf16 autocast where the hardware computes bf16 natively, fp16 on older GPUs, else fp32.

    On a CPU without native bf16 (no AVX-512 BF16 or AMX), bf16 autocast is emulated and
    several times slower than fp32 (docs/BENCHMARKS.md), so ``auto`` keeps fp32 there.
    """
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("fp16 autocast is for GPUs; use bf16 or fp32 on the CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """The autocast context for a forward pass (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (``None`` leaves torch's choice), restoring it after."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MissingPackageError(ImportError, ValueError):
    """An optimizer's optional package is not installed (a ValueError too: the command line's bad input)."""


def build_optimizer(
    name: str,
    params: Iterable[nn.Parameter] | Iterable[dict],
    *,
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    beta2: float = 0.999,
) -> torch.optim.Optimizer:
    """SGD (momentum), Nesterov SGD, Adam, AdamW, NAdam, or one of the lrfree extra's optimizers, by name.

    ``momentum`` is SGD's momentum and the Adam family's ``beta1`` (``betas = (momentum, beta2)``),
    the key a momentum schedule drives in each. The torch optimizers need ``lr``; the lrfree
    ones take their package's default when it is left out (``pip install 'superconverge[lrfree]'``):

    - ``sgd-schedulefree``, ``adamw-schedulefree`` (``schedulefree``): lr 1.0 and 0.0025, no warmup
      (their authors recommend one: schedule the LR with a warmup in front of a constant). They are
      returned in train mode; :func:`~superconverge.train.loop.fit` switches them to eval mode
      (the averaged weights) to evaluate, see :func:`is_schedule_free`.
    - ``prodigy`` (``prodigyopt``), ``dadapt-adam`` (``dadaptation``): lr 1.0, a multiplier of the step
      size they estimate. Weight decay as each package has it: decoupled (AdamW's) in prodigy, L2
      (Adam's) in dadapt-adam.

    The other settings are the packages' defaults, which ``momentum=0.9, beta2=0.999`` match.

    >>> build_optimizer("adamw", [torch.nn.Parameter(torch.zeros(1))], lr=1e-3, momentum=0.85).defaults["betas"]
    (0.85, 0.999)
    """
    key = name.lower()
    if key not in OPTIMIZERS:
        close = difflib.get_close_matches(key, OPTIMIZERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown optimizer {name!r}; {hint}choices: {', '.join(OPTIMIZERS)}")
    if key in LRFREE_OPTIMIZERS:
        return _build_lrfree(key, params, lr, momentum, weight_decay, beta2)
    if lr is None:
        raise ValueError(f"the {key} optimizer needs a learning rate (lr)")
    if key in ("sgd", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=key == "nesterov")
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam}[key]
    return cls(params, lr=lr, betas=(momentum, beta2), weight_decay=weight_decay)


def _build_lrfree(key: str, params: Iterable[nn.Parameter] | Iterable[dict], lr: float | None, momentum: float,
                  weight_decay: float, beta2: float) -> torch.optim.Optimizer:
    package, cls_name = LRFREE_OPTIMIZERS[key].split(".")
    try:
        cls = getattr(importlib.import_module(package), cls_name)
    except ImportError as err:
        raise MissingPackageError(f"the {key} optimizer needs the {package} package ({err}): "
                                  f"pip install 'superconverge[lrfree]' (or pip install {package})",
                                  name=package) from err
    settings: dict = {"weight_decay": weight_decay} if lr is None else {"lr": lr, "weight_decay": weight_decay}
    if key == "sgd-schedulefree":
        settings["momentum"] = momentum
    else:
        settings["betas"] = (momentum, beta2)
    with contextlib.redirect_stdout(io.StringIO()):  # prodigy prints a notice about its weight decay
        optimizer = cls(params, **settings)
    if is_schedule_free(optimizer):
        optimizer.train()  # ready to step, as every other optimizer is; before any step this only sets a flag
    return optimizer


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` keeps two sets of weights and must be told which to hold (``schedulefree``).

    Such an optimizer steps in train mode (the weights gradients are taken at) and is evaluated
    in eval mode (the averaged weights): ``optimizer.train()`` / ``optimizer.eval()`` swap them.
    Recognised by those two methods, so any of the package's optimizers qualifies.

    >>> is_schedule_free(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    False
    """
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))
