"""superconverge: LR range tests, 1cycle and every hyperparameter schedule for PyTorch.

The top-level import is light: it pulls in neither torch nor matplotlib. Import
``superconverge.schedules`` for the pure schedule math and ``superconverge.optim``
for the PyTorch adapter.
"""

__version__ = "0.1.0"
