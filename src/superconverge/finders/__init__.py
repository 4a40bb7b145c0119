"""Finders: the LR range test, a weight-decay sweep and the largest batch that fits.

The suggestions are pure functions of ``(lrs, losses)`` arrays (:mod:`.suggest`); the
finders run a model and leave it, its optimizer and every RNG exactly as they were.
"""

from superconverge.finders.batch_size import (
    SCALING_ADVICE,
    BatchSizeResult,
    Trial,
    find_batch_size,
    scale_for_batch,
    search_batch_size,
)
from superconverge.finders.lr_range import DataCycledWarning, LRFindResult, lr_find
from superconverge.finders.suggest import (
    Consensus,
    consensus,
    denoise,
    ema,
    minimum_div10,
    steepest,
    suggest_all,
    valley,
)
from superconverge.finders.weight_decay import WDSweepResult, pick_weight_decay, wd_sweep

__all__ = [
    "SCALING_ADVICE", "BatchSizeResult", "Consensus", "DataCycledWarning", "LRFindResult", "Trial",
    "WDSweepResult", "consensus", "denoise", "ema", "find_batch_size", "lr_find", "minimum_div10",
    "pick_weight_decay", "scale_for_batch", "search_batch_size", "steepest", "suggest_all", "valley",
    "wd_sweep",
]
