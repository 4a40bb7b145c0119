"""A study as data: a TOML spec (claim, base config, grid or arms, seeds, scales, verdict) and its runs.

A spec names a claim from the literature and the runs that test it. ``[base]`` holds
:class:`~superconverge.train.recipe.TrainConfig` keys shared by every run; named
``[[arms]]`` override them; ``[grid]`` (key -> list of values) is crossed with every arm
(an arm may carry its own ``grid`` table too). ``[scale.smoke|cpu|paper]`` overlay the
spec: their ``base`` and ``grid`` tables merge in, ``arms.NAME`` tables merge into that
arm, ``seeds`` replaces. Expanding a spec gives one :class:`Run` per (arm, grid point,
seed), each identified by a hash of what it computes.

>>> spec = resolve(load_raw("cyclical-momentum"), "smoke")
>>> runs = expand(spec)
>>> sorted({r.arm for r in runs})
['const-0.85', 'const-0.9', 'const-0.95', 'cyclical']
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from superconverge.studies.schema import (KINDS, NOT_HASHED, SCALES, STUDY_KEYS, TOP_KEYS, SpecError, check_config_keys,
                                          check_grid, check_keys, check_metric, check_verdict, hint, metrics_produced)
from superconverge.train.recipe import FIELDS, from_dict

__all__ = ["SCALES", "Arm", "Run", "Spec", "SpecError", "builtin_names", "expand", "load_raw", "load_spec",
           "resolve"]




@dataclass(frozen=True)
class Arm:
    name: str
    overrides: dict[str, Any]
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A spec resolved at one scale."""

    name: str
    claim: str
    design: str
    source: str
    kind: str
    scale: str
    seeds: int
    base: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    arms: tuple[Arm, ...]
    verdict: tuple[dict[str, Any], ...]
    metrics: tuple[str, ...]  # the columns of the report's table

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the store keeps and the report reads)."""
        return {"name": self.name, "claim": self.claim, "design": self.design, "source": self.source,
                "kind": self.kind, "scale": self.scale, "seeds": self.seeds, "base": self.base,
                "grid": {k: list(v) for k, v in self.grid.items()},
                "arms": [{"name": a.name, "overrides": a.overrides, "grid": {k: list(v) for k, v in a.grid.items()}}
                         for a in self.arms],
                "verdict": list(self.verdict), "metrics": list(self.metrics)}

    def experiment_hash(self) -> str:
        """Hash of what the runs compute (not the prose, verdict or seed count): a study directory's identity."""
        d = self.to_dict()
        return _hash({k: d[k] for k in ("name", "kind", "scale", "base", "grid", "arms")})


@dataclass(frozen=True)
class Run:
    """One training run of a study: an arm at one grid point and seed."""

    hash: str
    arm: str
    label: str  # arm plus its grid point, e.g. "sweep batch_size=128 max_lr=0.4"
    seed: int
    config: dict[str, Any]  # TrainConfig keys
    extras: dict[str, Any]  # study keys (measure, loss_reduction, ...)
    position: int  # order of execution


def builtin_names() -> list[str]:
    """Names of the studies shipped with the package."""
    folder = resources.files("superconverge.studies") / "specs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_raw(name_or_path: str | Path) -> dict[str, Any]:
    """The TOML of a built-in study (by name) or of a spec file (by path)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise SpecError(f"study spec file {path} does not exist")
        text, where = path.read_text(), str(path)
    else:
        names = builtin_names()
        if str(name_or_path) not in names:
            close = difflib.get_close_matches(str(name_or_path), names, n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"unknown study {str(name_or_path)!r}{suggestion} Known studies: {', '.join(names)}")
        text = (resources.files("superconverge.studies") / "specs" / f"{name_or_path}.toml").read_text()
        where = f"built-in study {name_or_path}"
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{where} is not valid TOML: {err}") from err


def load_spec(name_or_path: str | Path, scale: str) -> Spec:
    """Read and resolve a study at ``scale`` (smoke, cpu or paper)."""
    return resolve(load_raw(name_or_path), scale)


def resolve(raw: dict[str, Any], scale: str) -> Spec:
    """Check a raw spec and overlay its ``[scale.<scale>]`` table."""
    check_keys(raw, TOP_KEYS, "top-level key")
    for key in ("name", "claim", "design"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SpecError(f"the spec needs a non-empty string {key!r}")
    name = raw["name"]
    if scale not in SCALES:
        raise SpecError(f"unknown scale {scale!r}{hint(scale, SCALES)}; choose one of {', '.join(SCALES)}")
    scales = raw.get("scale", {})
    check_keys(scales, SCALES, f"scale of study {name}")
    arms_raw = raw.get("arms", [{"name": "base"}])
    if not arms_raw:
        raise SpecError(f"study {name}: arms is empty, so the study has no runs; give at least one [[arms]] "
                        "table, or drop arms for a single arm named 'base'")
    merged = {"base": dict(raw.get("base", {})), "grid": dict(raw.get("grid", {})), "seeds": raw.get("seeds", 1),
              "arms": {a.get("name"): dict(a) for a in arms_raw}}
    if len(merged["arms"]) != len(arms_raw) or None in merged["arms"]:
        raise SpecError(f"study {name}: every [[arms]] entry needs a unique 'name'")
    overlay = scales.get(scale, {})
    check_keys(overlay, ("base", "grid", "arms", "seeds"), f"[scale.{scale}] key")
    merged["base"].update(overlay.get("base", {}))
    merged["grid"].update(overlay.get("grid", {}))
    merged["seeds"] = overlay.get("seeds", merged["seeds"])
    for arm_name, changes in overlay.get("arms", {}).items():
        if arm_name not in merged["arms"]:
            raise SpecError(f"[scale.{scale}.arms.{arm_name}] names no arm{hint(arm_name, list(merged['arms']))}")
        merged["arms"][arm_name] = _deep_merge(merged["arms"][arm_name], changes)
    check_config_keys(merged["base"], f"[base] of study {name}")
    if "grid" in raw and not raw["grid"]:
        raise SpecError(f"[grid] of study {name} is empty: give at least one key = [values], or drop it")
    grid = check_grid(merged["grid"], f"[grid] of study {name}")
    arms = []
    for arm_name, table in merged["arms"].items():
        overrides = {k: v for k, v in table.items() if k not in ("name", "grid")}
        check_config_keys(overrides, f"arm {arm_name!r} of study {name}")
        if "grid" in table and not table["grid"]:
            raise SpecError(f"the grid of arm {arm_name!r} of study {name} is empty: give at least one key = [values]")
        arm_grid = check_grid(table.get("grid", {}), f"grid of arm {arm_name!r}")
        arms.append(Arm(arm_name, overrides, arm_grid))
    seeds = merged["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SpecError(f"study {name}: seeds must be a positive integer, got {seeds!r}")
    kind = raw.get("kind", "train")
    if kind not in KINDS:
        raise SpecError(f"study {name}: unknown kind {kind!r}{hint(kind, KINDS)}; choose one of {', '.join(KINDS)}")
    produced = metrics_produced([merged["base"], *(a.overrides for a in arms)])
    verdict = tuple(check_verdict(v, {a.name for a in arms}, produced, name) for v in raw.get("verdict", []))
    if not verdict:
        raise SpecError(f"study {name}: needs at least one [[verdict]] check")
    metrics = tuple(raw.get("metrics", ["test_accuracy", "test_loss", "train_seconds"]))
    for metric in metrics:
        check_metric(metric, produced, f"metrics of study {name}")
    return Spec(name, raw["claim"].strip(), raw["design"].strip(), raw.get("source", "").strip(), kind, scale,
                seeds, merged["base"], grid, tuple(arms), verdict, metrics)


def expand(spec: Spec, seeds: int | None = None) -> list[Run]:
    """Every run of ``spec`` (arms x grid x seeds), checked by building its TrainConfig."""
    n_seeds = spec.seeds if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise SpecError(f"seeds must be a positive integer, got {n_seeds!r}")
    runs: list[Run] = []
    seen: dict[str, str] = {}
    for seed in range(n_seeds):  # seed-major: a study stopped early has every arm at seed 0 first
        for arm in spec.arms:
            grid = {**spec.grid, **arm.grid}
            for point in itertools.product(*grid.values()):
                values = {**spec.base, **arm.overrides, **dict(zip(grid, point)), "seed": seed}
                config, extras = _split(values)
                config = _apply_batch_scaling(config, extras)
                try:
                    from_dict(config)
                except (ValueError, TypeError) as err:
                    raise SpecError(f"study {spec.name}, arm {arm.name!r}: {err}") from err
                label = " ".join([arm.name] + [f"{k}={_short(v)}" for k, v in zip(grid, point)])
                digest = _hash({"config": {k: v for k, v in config.items() if k not in NOT_HASHED},
                                "extras": extras})
                if digest in seen:
                    raise SpecError(f"study {spec.name}: runs {seen[digest]!r} and {label!r} (seed {seed}) "
                                    "compute the same thing; make the arms differ")
                seen[digest] = label
                runs.append(Run(digest, arm.name, label, seed, config, extras, len(runs)))
    return runs


def _split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({k: v for k, v in values.items() if k in FIELDS},
            {k: v for k, v in sorted(values.items()) if k in STUDY_KEYS})


def _apply_batch_scaling(config: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    """Scale LR by k = batch/reference (linear: k, sqrt: sqrt k) and WD so lr*wd per epoch is unchanged.

    Per epoch the weight shrinks by about steps * lr * wd, and steps fall as 1/k; so WD
    is multiplied by k / lr_factor ("linear" keeps WD, "sqrt" multiplies it by sqrt k).
    "none" changes neither: the naive control.
    """
    rule = extras.get("batch_scaling")
    if rule is None or rule == "none":
        return config
    if rule not in ("linear", "sqrt"):
        raise SpecError(f"batch_scaling must be linear, sqrt or none, got {rule!r}")
    ref = extras.get("reference_batch", 128)
    k = config.get("batch_size", 512) / ref
    factor = k if rule == "linear" else math.sqrt(k)
    base_lr, base_wd = config.get("max_lr", 0.8), config.get("weight_decay", 5e-4)
    return {**config, "max_lr": base_lr * factor, "weight_decay": base_wd * k / factor}


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
