"""The PyTorch adapter: :class:`Scheduler` and presets matching familiar schedulers."""

from superconverge.optim.adapter import Scheduler, resolve_key
from superconverge.optim.lookahead import Lookahead
from superconverge.optim.muon import Muon
from superconverge.optim.presets import (
    PRESETS,
    cosine_annealing_lr,
    cosine_annealing_warm_restarts,
    cyclic_lr,
    exponential_lr,
    fit_one_cycle,
    hf_wsd,
    linear_lr,
    multistep_lr,
    one_cycle_lr,
    polynomial_lr,
    reduce_lr_on_plateau,
    step_lr,
)

__all__ = [
    "Lookahead", "Muon", "PRESETS", "Scheduler", "cosine_annealing_lr", "cosine_annealing_warm_restarts", "cyclic_lr",
    "exponential_lr", "fit_one_cycle", "hf_wsd", "linear_lr", "multistep_lr", "one_cycle_lr",
    "polynomial_lr", "reduce_lr_on_plateau", "resolve_key", "step_lr",
]
