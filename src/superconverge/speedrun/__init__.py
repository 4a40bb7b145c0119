"""The CPU speedrun: CIFAR-10 from scratch to the 94%-class accuracy as fast as this machine allows.

A :class:`Recipe` (TOML in ``recipes/``) says what to train; :func:`speedrun` trains it with
the package's own fit loop and schedules and returns accuracy, times and FLOPs.
"""

from superconverge.speedrun.recipe import Recipe, builtin_names, load_recipe
from superconverge.speedrun.run import holdout_split, speedrun

__all__ = ["Recipe", "builtin_names", "holdout_split", "load_recipe", "speedrun"]
