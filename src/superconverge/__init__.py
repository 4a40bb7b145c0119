"""superconverge: LR range tests, 1cycle and every hyperparameter schedule for PyTorch.

The top-level import is light: it pulls in neither torch nor matplotlib. Import
``superconverge.schedules`` for the pure schedule math and ``superconverge.optim``
for the PyTorch adapter. ``superconverge.lr_find`` imports the finders (and torch)
on first use.
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"lr_find": "superconverge.finders"}  # name -> module, imported on first access


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    raise AttributeError(f"module 'superconverge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
