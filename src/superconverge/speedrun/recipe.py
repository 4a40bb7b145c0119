"""A speedrun recipe as data: the network, the schedule, the batch, augmentation and precision.

Recipes live as TOML files in ``superconverge/speedrun/recipes/``; :func:`load_recipe`
reads one by name or from a path, and rejects unknown keys with the closest known one.
Learning rates and weight decays are in PyTorch's SGD units for the *mean* loss over
a batch; ``bias_lr_scale`` multiplies the LR (and divides the weight decay) of biases.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from superconverge.validate import check_types

Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a speedrun trains; see ``docs/SPEEDRUN.md`` for why each value."""

    name: str = "custom"
    description: str = ""
    # network: a frozen 2x2 patch-whitening conv, then three conv-pool-BN-GELU blocks
    widths: tuple[int, int, int] = (64, 256, 256)
    convs: tuple[int, int, int] = (2, 2, 2)  # 3x3 convs per block (the first is followed by the max-pool)
    whiten_width: int = 24  # output channels of the whitening layer (2 per eigenvector)
    whiten_eps: float = 5e-4  # filters scaled by 1/sqrt(eigenvalue + whiten_eps): caps the gain of near-null directions
    whiten_bias_epochs: float = 3.0  # train the whitening bias only this long
    bn_momentum: float = 0.4  # PyTorch convention: weight of the new batch statistics
    logit_scale: float = 1 / 9
    # optimisation
    epochs: int = 10
    batch_size: int = 1024
    lr: float = 1.5  # peak LR for the mean loss
    momentum: float = 0.85
    nesterov: bool = True
    weight_decay: float = 1.33e-3
    bias_lr_scale: float = 64.0
    # "muon": conv filters take orthogonalised, norm-preserving steps (superconverge.optim.Muon)
    # at muon_lr and muon_momentum; the head, biases and whitening bias stay with SGD as above
    optimizer: Literal["sgd", "muon"] = "sgd"
    muon_lr: float = 0.1  # cpu94's value at batch 512; 0.2 and 0.24 were worse on the held-out split (docs/SPEEDRUN.md)
    muon_momentum: float = 0.6
    muon_ns_steps: int = 5  # Newton-Schulz iterations per orthogonalised update
    label_smoothing: float = 0.2
    # LR: linear 1cycle from lr/div_factor up to lr at pct_start, then down to lr*final_fraction
    pct_start: float = 0.23
    div_factor: float = 5.0
    final_fraction: float = 0.07
    # Lookahead every k steps (0: off) pulling towards slow weights with decay c * (t/T)^3
    lookahead_every: int = 5
    lookahead_decay: float = 0.95**5
    # data
    translate: int = 2  # pixels of reflection padding for the random crop
    low_res_epochs: int = 0  # progressive resizing: the first epochs see images downscaled to...
    low_res: int = 24  # ...this many pixels a side; the net is size-agnostic
    low_res_mode: Literal["resize", "crop"] = "resize"  # downscale the whole image, or cut a random window
    mid_res_epochs: int = 0  # then this many epochs at...
    mid_res: int = 28  # ...this many pixels a side, before the rest at full resolution
    flip: Literal["alternate", "random", "none"] = "alternate"
    cutout: int = 0
    # from skip_from_epoch on, each epoch leaves out this fraction of the training images, those with the
    # lowest loss when last seen (never one image two epochs running; 0: off): superconverge.train.selection
    skip_easy: float = 0.0
    skip_from_epoch: int = 1
    tta: bool = True  # also report accuracy averaged over each image and its mirror
    tta_translate: int = 0  # and over two copies shifted this many pixels (0: off); when on, the headline figure
    tta_translate_below: float = 0.0  # only for images whose flip-TTA logit gap is below this (0: every image)
    tta_translate_weight: float = 0.5  # each shifted view's weight in the logit sum (the unshifted views': 1)
    # machine
    precision: Precision = "auto"
    channels_last: bool = True
    compile: bool = False  # torch.compile the network (compile time counts as training time)
    flush_denormal: bool = False  # CPU: treat denormal floats as zero (FTZ/DAZ), restored afterwards

    def __post_init__(self) -> None:
        try:
            check_types(self)
        except ValueError as err:
            raise ValueError(f"recipe {self.name!r}: {err}") from None
        problems = []
        if len(self.convs) != 3 or any(not 1 <= n <= 8 for n in self.convs):
            problems.append(f"convs must be 3 counts of 3x3 convs per block, each 1-8, got {list(self.convs)}")
        if not 1 <= self.muon_ns_steps <= 10:
            problems.append(f"muon_ns_steps must be 1-10 Newton-Schulz iterations, got {self.muon_ns_steps}")
        if len(self.widths) != 3 or any(w < 1 for w in self.widths):
            problems.append(f"widths must be three positive ints, got {self.widths}")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not 0 < self.pct_start < 1:
            problems.append(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.lr <= 0 or self.div_factor <= 0 or self.final_fraction < 0:
            problems.append("lr and div_factor must be > 0 and final_fraction >= 0")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.low_res_epochs < self.epochs or not 8 <= self.low_res <= 32:
            problems.append(f"low_res_epochs must be in [0, epochs) and low_res in [8, 32], got "
                            f"{self.low_res_epochs} and {self.low_res}")
        if self.mid_res_epochs < 0 or self.low_res_epochs + self.mid_res_epochs >= self.epochs \
                or not 8 <= self.mid_res <= 32:
            problems.append(f"mid_res_epochs must be >= 0 with low_res_epochs + mid_res_epochs < epochs, and mid_res "
                            f"in [8, 32], got {self.mid_res_epochs} (+ {self.low_res_epochs} of {self.epochs}) and "
                            f"{self.mid_res}")
        if self.low_res_mode not in ("resize", "crop"):
            problems.append(f"low_res_mode must be 'resize' or 'crop', got {self.low_res_mode!r}")
        if self.lookahead_every < 0 or not 0 <= self.lookahead_decay <= 1:
            problems.append("lookahead_every must be >= 0 and lookahead_decay in [0, 1]")
        if self.optimizer not in ("sgd", "muon") or self.muon_lr <= 0 or not 0 <= self.muon_momentum < 1:
            problems.append(f"optimizer must be 'sgd' or 'muon', muon_lr > 0 and muon_momentum in [0, 1), got "
                            f"{self.optimizer!r}, {self.muon_lr}, {self.muon_momentum}")
        if self.flip not in ("alternate", "random", "none"):
            problems.append(f"flip must be 'alternate', 'random' or 'none', got {self.flip!r}")
        if self.whiten_width % 2 or not 2 <= self.whiten_width <= 24:
            problems.append(f"whiten_width must be even and in [2, 24] (2 x 12 patch dims), got {self.whiten_width}")
        if not 0 < self.whiten_eps < math.inf:
            problems.append(f"whiten_eps must be > 0 and finite (it caps the whitening gain at 1/sqrt(whiten_eps)), "
                            f"got {self.whiten_eps}")
        if not self.tta_translate_below >= 0:
            problems.append(f"tta_translate_below must be >= 0 (0: translated views for every image), got "
                            f"{self.tta_translate_below}")
        if not 0 < self.tta_translate_weight < math.inf:
            problems.append(f"tta_translate_weight must be > 0 and finite (each shifted view's weight against 1 for "
                            f"the unshifted pair's), got {self.tta_translate_weight}")
        if not 0 <= self.tta_translate <= 4 or (self.tta_translate and not self.tta):
            problems.append(f"tta_translate must be in [0, 4] pixels and needs tta = true, got "
                            f"{self.tta_translate} with tta = {self.tta}")
        if not 0 <= self.skip_easy <= 0.5 or self.skip_from_epoch < 1:
            problems.append(f"skip_easy must be in [0, 0.5] and skip_from_epoch >= 1 (epoch 0 has no losses yet), got "
                            f"{self.skip_easy} and {self.skip_from_epoch}")
        if problems:
            raise ValueError(f"recipe {self.name!r}: " + "; ".join(problems))

    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` applied (validated, unknown keys rejected)."""
        return from_dict({**to_dict(self), **changes})


FIELDS = {f.name: f for f in dataclasses.fields(Recipe)}


def to_dict(recipe: Recipe) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()}


def from_dict(values: dict[str, Any]) -> Recipe:
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown recipe key(s): {', '.join(hints)}; known keys: {', '.join(FIELDS)}")
    values = dict(values)
    for key in ("widths", "convs"):  # TOML lists -> the tuples the recipe compares and hashes by
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return Recipe(**values)


def builtin_names() -> list[str]:
    folder = resources.files("superconverge.speedrun") / "recipes"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name (``cpu94``, ``airbench94``) or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"no recipe file at {path}")
        text = path.read_text()
    else:
        names = builtin_names()
        if str(name_or_path) not in names:
            close = difflib.get_close_matches(str(name_or_path), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown recipe {name_or_path!r}; {hint}built-in recipes: {', '.join(names)}")
        text = (resources.files("superconverge.speedrun") / "recipes" / f"{name_or_path}.toml").read_text()
    return from_dict(tomllib.loads(text))
