"""Pure schedule math: immutable values mapping an optimizer step to a hyperparameter value.

Nothing here imports torch, so the same schedules serve NumPy or JAX code.

>>> from superconverge.schedules import one_cycle
>>> policy = one_cycle(total_steps=1000, max_lr=0.1)
>>> sorted(policy)
['lr', 'momentum']
"""

from superconverge.schedules.base import PastEnd, PastEndError, PastEndWarning, Schedule
from superconverge.schedules.compose import (
    Join,
    Repeat,
    Scaled,
    Warped,
    extend,
    join,
    join_fractions,
    repeat,
    scale,
    warmup,
)
from superconverge.schedules.cycles import (
    InverseSqrtDecay,
    Modulated,
    cosine_with_floor,
    cyclical,
    inverse_sqrt,
    one_cycle,
    sgdr,
    trapezoid,
    wsd,
)
from superconverge.schedules.plateau import (
    PlateauState,
    ReduceOnPlateau,
    observe,
    reduce_on_plateau,
    start,
)
from superconverge.schedules.published import fastai_one_cycle, hf_wsd
from superconverge.schedules.shapes import (
    Anneal,
    Constant,
    ExponentialDecay,
    MultiStep,
    StepDecay,
    constant,
    cosine,
    exponential,
    exponential_decay,
    interpolate,
    linear,
    multistep,
    polynomial,
    step_decay,
)

__all__ = [
    "Anneal", "Constant", "ExponentialDecay", "InverseSqrtDecay", "Join", "Modulated",
    "MultiStep", "PastEnd", "PastEndError", "PastEndWarning", "PlateauState",
    "ReduceOnPlateau", "Repeat", "Schedule", "Scaled", "StepDecay", "Warped",
    "constant", "cosine", "cosine_with_floor", "cyclical", "exponential",
    "exponential_decay", "extend", "fastai_one_cycle", "hf_wsd", "interpolate", "inverse_sqrt", "join",
    "join_fractions",
    "linear", "multistep", "observe", "one_cycle", "polynomial", "reduce_on_plateau",
    "repeat", "scale", "sgdr", "start", "step_decay", "trapezoid", "warmup", "wsd",
]
