"""A training run as data: :class:`TrainConfig`, read from TOML or flags, and the policy it implies.

The config is flat (one key per setting) so a TOML file, the ``superconverge train``
flags and ``superconverge tune``'s output all share the same names. Units: ``max_lr`` is
the peak learning rate per optimizer step for the whole batch (loss averaged over it).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superconverge import schedules as S
from superconverge.schedules.base import Schedule

SCHEDULES = ("one-cycle", "fastai-one-cycle", "step", "multistep", "cosine", "constant", "trapezoid",
             "sgdr", "plateau", "cyclical")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; defaults are the 1cycle recipe with cyclical momentum."""

    model: str = "resnet20"
    data: str = "sample"  # "sample" (shipped), "download", or a path to CIFAR-10 in any form
    train_subset: int | None = None  # first N training images of a class-balanced order
    epochs: int = 30
    batch_size: int = 512
    optimizer: str = "sgd"  # sgd, nesterov, adam, adamw, nadam
    schedule: str = "one-cycle"
    max_lr: float = 0.8  # peak LR (one-cycle), initial LR (step, cosine, plateau, constant)
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"
    three_phase: bool = False
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    momentum: float = 0.9  # constant momentum (or Adam's beta1) when not cycled
    weight_decay: float = 5e-4
    schedule_args: dict[str, Any] = field(default_factory=dict)  # extra settings of the schedule
    warmup_epochs: float = 0.0  # linear warmup in front of step/cosine/constant/plateau schedules
    label_smoothing: float = 0.0
    loss_reduction: str = "mean"  # "sum": gradients summed over the batch; max_lr is then per example
    grad_clip: float | None = None
    ema_decay: float | None = None
    accumulate: int = 1
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    precision: str = "auto"
    channels_last: bool = True
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    checkpoint_every: int = 0
    plateau_metric: str = "test_loss"
    test_subset: int | None = None  # evaluate on the first N test images (quick runs)
    plots: bool = True  # draw curves.png and schedule.png into the run directory

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accumulate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.max_lr, (int, float)) and self.max_lr > 0):
            raise ValueError(f"max_lr must be a positive number, got {self.max_lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}{_suggest(self.schedule, SCHEDULES)}; "
                             f"choices: {', '.join(SCHEDULES)}")
        if self.loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {self.loss_reduction!r}")
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"train_subset must be a positive integer, got {self.train_subset}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _suggest(name: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def from_dict(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from a mapping; an unknown key is an error that names the closest known one."""
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        k = unknown[0]
        raise ValueError(f"unknown config key {k!r}{_suggest(k, FIELDS)}; known keys: {', '.join(FIELDS)}")
    return dataclasses.replace(base or TrainConfig(), **data)


def load_toml(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a config written by hand, by ``superconverge tune`` or into a run directory.

    Keys the file does not set come from ``base`` (default: :class:`TrainConfig`'s defaults).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from err
    return from_dict(data, base)


def to_toml(config: TrainConfig, comment: str = "") -> str:
    """TOML text that :func:`load_toml` reads back to the same config."""
    lines = [f"# {line}" for line in comment.splitlines()]
    tables = {}
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            tables[key] = value
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables.items():
        lines.append(f"\n[{key}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def build_policy(config: TrainConfig, steps_per_epoch: int) -> dict[str, Schedule | S.ReduceOnPlateau]:
    """The schedules a config asks for, over ``epochs * steps_per_epoch`` optimizer steps."""
    c, args = config, dict(config.schedule_args)
    total = c.epochs * steps_per_epoch
    warm = round(c.warmup_epochs * steps_per_epoch)
    policy: dict[str, Schedule | S.ReduceOnPlateau]
    if c.schedule == "one-cycle":
        policy = dict(S.one_cycle(total, c.max_lr, pct_start=c.pct_start, anneal=c.anneal,  # type: ignore[arg-type]
                                  div_factor=c.div_factor, final_div_factor=c.final_div_factor,
                                  three_phase=c.three_phase, cycle_momentum=c.cycle_momentum,
                                  base_momentum=c.base_momentum, max_momentum=c.max_momentum))
    elif c.schedule == "fastai-one-cycle":
        policy = dict(S.fastai_one_cycle(total, c.max_lr, pct_start=c.pct_start, div=c.div_factor,
                                         div_final=c.final_div_factor,
                                         moms=(c.max_momentum, c.base_momentum, c.max_momentum)))
    elif c.schedule == "cyclical":
        policy = dict(S.cyclical(args.pop("base_lr", c.max_lr / c.div_factor), c.max_lr,
                                 args.pop("step_size_up", max(1, total // 2)),
                                 cycle_momentum=c.cycle_momentum, base_momentum=c.base_momentum,
                                 max_momentum=c.max_momentum, **args))
    elif c.schedule == "trapezoid":
        w = args.pop("warmup_fraction", 0.1)
        d = args.pop("decay_fraction", 0.2)
        policy = {"lr": S.trapezoid(total, round(w * total), round(d * total), peak=c.max_lr, **args)}
    elif c.schedule == "plateau":
        policy = {"lr": S.reduce_on_plateau(c.max_lr, warmup_steps=warm, **args)}
        warm = 0
    else:
        body = total - warm
        if body < 1:
            raise ValueError(f"warmup_epochs={c.warmup_epochs} leaves no steps for the {c.schedule} schedule")
        lr = _decay(c.schedule, c.max_lr, body, steps_per_epoch, args)
        policy = {"lr": S.warmup(lr, warm, start_factor=0.1) if warm else lr}
        warm = 0
    if warm:
        raise ValueError(f"warmup_epochs applies to step, multistep, cosine, constant, sgdr and plateau, "
                         f"not to {c.schedule}, which has its own warmup")
    if "momentum" not in policy and c.optimizer in ("sgd", "nesterov"):
        policy["momentum"] = S.constant(c.momentum)
    return policy


def _decay(name: str, lr: float, steps: int, per_epoch: int, args: dict[str, Any]) -> Schedule:
    """Decay schedules whose milestones are given in epochs (as users state them)."""
    if name == "step":
        return S.step_decay(lr, round(args.get("step_epochs", 30) * per_epoch), args.get("gamma", 0.1))
    if name == "multistep":
        epochs = args.get("milestones", [])
        return S.multistep(lr, [round(e * per_epoch) for e in epochs], args.get("gamma", 0.1))
    if name == "cosine":
        floor = args.get("floor", lr * args.get("floor_ratio", 0.0))
        return S.cosine_with_floor(lr, steps, floor=floor)
    if name == "sgdr":
        return S.sgdr(lr, round(args.get("t0_epochs", 1) * per_epoch), t_mult=args.get("t_mult", 2),
                      eta_min=args.get("eta_min", 0.0))
    return S.constant(lr, steps)
