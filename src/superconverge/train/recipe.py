"""A training run as data: :class:`TrainConfig`, read from TOML or flags, and the policy it implies.

The config is flat (one key per setting) so a TOML file, the ``superconverge train``
flags and ``superconverge tune``'s output all share the same names. Units: ``max_lr`` is
the peak learning rate per optimizer step for the whole batch (loss averaged over it).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superconverge import schedules as S
from superconverge.schedules.base import Schedule
from superconverge.validate import check_types, did_you_mean

# The optimizers of the lrfree extra (pip install 'superconverge[lrfree]'): name -> package.Class,
# imported only when one is built. Each takes its package's default lr when none is given.
LRFREE_OPTIMIZERS = {
    "sgd-schedulefree": "schedulefree.SGDScheduleFree",  # lr 1.0, no warmup (warmup_epochs adds one)
    "adamw-schedulefree": "schedulefree.AdamWScheduleFree",  # lr 0.0025
    "prodigy": "prodigyopt.Prodigy",  # lr 1.0 multiplies the step size it estimates
    "dadapt-adam": "dadaptation.DAdaptAdam",  # lr 1.0, as prodigy
}
SCHEDULE_FREE = ("sgd-schedulefree", "adamw-schedulefree")  # average their weights in place of a schedule
OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw", "nadam", *LRFREE_OPTIMIZERS)  # the names build_optimizer takes
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
    optimizer: str = "sgd"  # one of OPTIMIZERS
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
    plateau_metric: str = "val_loss"  # what a plateau schedule watches: val_* read the holdout split
    holdout: int | None = None  # training images held out for val_*; None: 10 % when a plateau schedule needs them
    test_subset: int | None = None  # evaluate on the first N test images (quick runs)
    plots: bool = True  # draw curves.png and schedule.png into the run directory
    # (step, epochs planned before) of each `train --resume --epochs N` that extended the run
    extensions: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        check_types(self)
        object.__setattr__(self, "extensions", tuple(tuple(e) for e in self.extensions))  # TOML gives lists
        problems = [f"{name} {rule}, got {value!r}" for name, ok, rule, value in _rules(self) if not ok]
        if problems:
            raise ValueError("; ".join(problems))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}{did_you_mean(self.schedule, SCHEDULES)}; "
                             f"choices: {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}{did_you_mean(self.optimizer, OPTIMIZERS)}; "
                             f"choices: {', '.join(OPTIMIZERS)}")
        if self.optimizer in SCHEDULE_FREE and self.schedule != "constant":
            raise ValueError(f"{self.optimizer} averages its weights in place of an LR schedule, so it takes "
                             f"schedule = 'constant' (--schedule constant; warm up with --set warmup_epochs=N), "
                             f"not {self.schedule}; max_lr is its LR")
        if self.optimizer in LRFREE_OPTIMIZERS and self.schedule in CYCLE_MOMENTUM:
            # a cycle is made for an LR a range test found; it would cycle the multiplier (and beta1) instead
            raise ValueError(f"{self.optimizer} estimates its own step size, which max_lr multiplies (its package's "
                             f"default: 1.0), so the {self.schedule} schedule would cycle that multiplier: use "
                             f"--schedule constant or cosine (its authors' advice), with --max-lr 1.0")
        if self.plateau_metric not in PLATEAU_METRICS:
            raise ValueError(f"plateau_metric must be one of {', '.join(PLATEAU_METRICS)}, got "
                             f"{self.plateau_metric!r}{did_you_mean(self.plateau_metric, PLATEAU_METRICS)}")
        valid = schedule_args_for(self.schedule)
        unknown = sorted(set(self.schedule_args) - set(valid))
        if unknown:
            takes = f"it takes only {', '.join(valid)}" if valid else "it takes none; its settings are config keys"
            raise ValueError(f"unknown schedule_args key {unknown[0]!r} for the {self.schedule} schedule"
                             f"{did_you_mean(unknown[0], valid)}; {takes}")
        if self.momentum == 0 and self.cycle_momentum and self.schedule in CYCLE_MOMENTUM:
            raise ValueError(f"momentum=0 builds the optimizer without momentum, but the {self.schedule} "
                             f"schedule cycles it between base_momentum and max_momentum; set "
                             f"cycle_momentum=false to train without momentum, or momentum > 0")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
PLATEAU_METRICS = ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss")
CYCLE_MOMENTUM = ("one-cycle", "fastai-one-cycle", "cyclical")  # schedules that cycle momentum


def _rules(c: TrainConfig) -> list[tuple[str, bool, str, Any]]:
    """(key, holds, rule, value) for every range a value must lie in."""
    return [
        ("epochs", c.epochs >= 1, "must be a positive whole number", c.epochs),
        ("batch_size", c.batch_size >= 1, "must be a positive whole number", c.batch_size),
        ("accumulate", c.accumulate >= 1, "must be a positive whole number", c.accumulate),
        ("max_lr", 0 < c.max_lr < math.inf, "must be a positive number", c.max_lr),
        ("train_subset", c.train_subset is None or c.train_subset >= 1, "must be a positive whole number",
         c.train_subset),
        ("test_subset", c.test_subset is None or c.test_subset >= 1, "must be a positive whole number", c.test_subset),
        ("holdout", c.holdout is None or c.holdout >= 0, "must be a whole number >= 0", c.holdout),
        ("div_factor", 0 < c.div_factor < math.inf, "must be a positive number", c.div_factor),
        ("final_div_factor", 0 < c.final_div_factor < math.inf, "must be a positive number", c.final_div_factor),
        ("anneal", c.anneal in ("cos", "linear"), "must be 'cos' or 'linear'", c.anneal),
        ("base_momentum", 0 <= c.base_momentum < 1, "must lie in [0, 1)", c.base_momentum),
        ("max_momentum", 0 <= c.max_momentum < 1, "must lie in [0, 1)", c.max_momentum),
        ("momentum", 0 <= c.momentum < 1, "must lie in [0, 1) (Adam: beta1)", c.momentum),
        ("weight_decay", 0 <= c.weight_decay < math.inf, "must be a number >= 0", c.weight_decay),
        ("warmup_epochs", 0 <= c.warmup_epochs < math.inf, "must be a number >= 0", c.warmup_epochs),
        ("label_smoothing", 0 <= c.label_smoothing < 1, "must lie in [0, 1)", c.label_smoothing),
        ("loss_reduction", c.loss_reduction in ("mean", "sum"), "must be 'mean' or 'sum'", c.loss_reduction),
        ("grad_clip", c.grad_clip is None or 0 < c.grad_clip < math.inf,
         "must be a positive number (a maximum gradient norm), or left out", c.grad_clip),
        ("ema_decay", c.ema_decay is None or 0 < c.ema_decay < 1, "must lie in (0, 1), e.g. 0.999, or be left out",
         c.ema_decay),
        ("crop_padding", c.crop_padding >= 0, "must be a whole number >= 0", c.crop_padding),
        ("cutout", c.cutout >= 0, "must be a whole number >= 0", c.cutout),
        ("precision", c.precision in ("auto", "bf16", "fp16", "fp32"), "must be auto, bf16, fp16 or fp32",
         c.precision),
        ("threads", c.threads is None or c.threads >= 1, "must be >= 1", c.threads),
        ("seed", c.seed >= 0, "must be a whole number >= 0", c.seed),
        ("extensions", all(a >= 0 for a, _ in c.extensions) and
         all(x < y for x, y in zip([e for _, e in c.extensions], [e for _, e in c.extensions[1:]] + [c.epochs])),
         "must list (step, epochs planned before) with growing epochs below epochs", list(c.extensions)),
        ("checkpoint_every", c.checkpoint_every >= 0, "must be a whole number >= 0 (0: at epoch ends only)",
         c.checkpoint_every),
    ]


def schedule_args_for(schedule: str) -> tuple[str, ...]:
    """The ``schedule_args`` keys that ``schedule`` reads (the rest of its settings are config keys)."""
    def forwarded(factory: Any, taken: set[str]) -> list[str]:
        return [p for p in inspect.signature(factory).parameters if p not in taken]

    return {
        "cyclical": ("base_lr", "step_size_up", *forwarded(S.cyclical, {
            "base_lr", "max_lr", "step_size_up", "cycle_momentum", "base_momentum", "max_momentum"})),
        "trapezoid": ("warmup_fraction", "decay_fraction", *forwarded(S.trapezoid, {
            "total_steps", "warmup_steps", "decay_steps", "peak"})),
        "plateau": tuple(forwarded(S.reduce_on_plateau, {"initial", "warmup_steps"})),
        "step": ("step_epochs", "gamma"),
        "multistep": ("milestones", "gamma"),
        "cosine": ("floor", "floor_ratio"),
        "sgdr": ("t0_epochs", "t_mult", "eta_min"),
    }.get(schedule, ())


def from_dict(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from a mapping; an unknown key is an error that names the closest known one."""
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        k = unknown[0]
        raise ValueError(f"unknown config key {k!r}{did_you_mean(k, FIELDS)}; known keys: {', '.join(FIELDS)}")
    return dataclasses.replace(base or TrainConfig(), **data)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The keys a config file sets (not yet checked: :func:`from_dict` does that)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from err


def load_toml(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a config written by hand, by ``superconverge tune`` or into a run directory.

    Keys the file does not set come from ``base`` (default: :class:`TrainConfig`'s defaults).
    """
    return from_dict(read_toml(path), base)


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
    total = (c.extensions[0][1] if c.extensions else c.epochs) * steps_per_epoch  # as first planned
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
        if not c.cycle_momentum:
            del policy["momentum"]
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
        # an accuracy improves upwards: cutting the LR while it rises is the classic misuse
        args.setdefault("mode", "max" if c.plateau_metric.endswith("accuracy") else "min")
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
    if "momentum" not in policy and c.optimizer in ("sgd", "nesterov") and c.momentum > 0:
        policy["momentum"] = S.constant(c.momentum)
    ends = [epochs for _, epochs in c.extensions[1:]] + [c.epochs]
    for (at, _), end in zip(c.extensions, ends):  # each extension re-plans what was left of the curves
        policy = {k: S.extend(v, at, end * steps_per_epoch) if isinstance(v, Schedule) and v.total_steps is not None
                  else v for k, v in policy.items()}
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
