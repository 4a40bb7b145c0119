"""Training engine: data, augmentation, models, the fit loop, checkpoints and runs.

The names below load on first use, so that ``superconverge.train.recipe`` (plain config
data, used by the command line) can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ArrayFeed": "superconverge.train.feed", "LoaderFeed": "superconverge.train.feed",
    "DivergedError": "superconverge.train.loop", "FitOptions": "superconverge.train.loop",
    "History": "superconverge.train.records", "evaluate": "superconverge.train.loop", "fit": "superconverge.train.loop",
    "fit_one_cycle": "superconverge.train.one_cycle",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'superconverge.train' has no attribute {name!r}")
