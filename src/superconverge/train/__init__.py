"""Training engine: data, augmentation, models, the fit loop, checkpoints and runs."""

from superconverge.train.feed import ArrayFeed, LoaderFeed
from superconverge.train.loop import DivergedError, FitOptions, History, evaluate, fit
from superconverge.train.one_cycle import fit_one_cycle

__all__ = ["ArrayFeed", "DivergedError", "FitOptions", "History", "LoaderFeed", "evaluate", "fit", "fit_one_cycle"]
