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
from typing import Any, Literal

from superconverge.studies.verdict import DERIVED
from superconverge.train.recipe import FIELDS, from_dict

Scale = Literal["smoke", "cpu", "paper"]
SCALES: tuple[str, ...] = ("smoke", "cpu", "paper")
KINDS = ("train", "wd-finder", "forgetting", "batch-size")
TOP_KEYS = ("name", "claim", "design", "source", "kind", "seeds", "base", "grid", "arms", "scale", "verdict",
            "metrics")
# Keys a study may set beside TrainConfig's: they change how a run is executed or measured.
STUDY_KEYS = ("measure", "loss_reduction", "batch_scaling", "reference_batch", "lr_find_steps",
              "lr_find_start", "lr_find_end")
MEASURES = ("lr_find", "forgetting")
CHECKS = ("compare", "wd-pick", "best-lr-trend")
VERDICT_KEYS = {"compare": ("check", "a", "b", "metric", "a_metric", "b_metric", "expect", "margin"),
                "wd-pick": ("check", "metric", "margin", "tolerance", "lr_ratio"),
                "best-lr-trend": ("check", "arm", "metric", "batch_size")}
# Numeric metrics every run stores: train.run's summary and the study engine's additions. A metric
# may also be derived from the history (verdict.DERIVED) or be a config value (verdict.metric).
RUN_METRICS = ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "epochs", "steps", "steps_per_epoch",
               "train_seconds", "wall_seconds", "max_lr", "lr_mean_equivalent", "wd_mean_equivalent", "threads")  # of run.summarize and engine.train_run
MEASURED = {"lr_find": ("lr_find_min_loss", "lr_find_suggestion"), "forgetting": ("recent_loss", "earlier_loss")}
EXPECTS = ("higher", "lower", "not-lower", "not-higher")
# The seeds of run k are 0..k-1; hashing ignores per-machine settings so results carry over.
NOT_HASHED = ("threads", "device", "progress")


class SpecError(ValueError):
    """A study spec that cannot be used; the message says what to change."""


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
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"unknown study {str(name_or_path)!r}{hint} Known studies: {', '.join(names)}")
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
    _check_keys(raw, TOP_KEYS, "top-level key")
    for key in ("name", "claim", "design"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SpecError(f"the spec needs a non-empty string {key!r}")
    name = raw["name"]
    if scale not in SCALES:
        raise SpecError(f"unknown scale {scale!r}{_hint(scale, SCALES)}; choose one of {', '.join(SCALES)}")
    scales = raw.get("scale", {})
    _check_keys(scales, SCALES, f"scale of study {name}")
    arms_raw = raw.get("arms", [{"name": "base"}])
    if not arms_raw:
        raise SpecError(f"study {name}: arms is empty, so the study has no runs; give at least one [[arms]] "
                        "table, or drop arms for a single arm named 'base'")
    merged = {"base": dict(raw.get("base", {})), "grid": dict(raw.get("grid", {})), "seeds": raw.get("seeds", 1),
              "arms": {a.get("name"): dict(a) for a in arms_raw}}
    if len(merged["arms"]) != len(arms_raw) or None in merged["arms"]:
        raise SpecError(f"study {name}: every [[arms]] entry needs a unique 'name'")
    overlay = scales.get(scale, {})
    _check_keys(overlay, ("base", "grid", "arms", "seeds"), f"[scale.{scale}] key")
    merged["base"].update(overlay.get("base", {}))
    merged["grid"].update(overlay.get("grid", {}))
    merged["seeds"] = overlay.get("seeds", merged["seeds"])
    for arm_name, changes in overlay.get("arms", {}).items():
        if arm_name not in merged["arms"]:
            raise SpecError(f"[scale.{scale}.arms.{arm_name}] names no arm{_hint(arm_name, list(merged['arms']))}")
        merged["arms"][arm_name] = _deep_merge(merged["arms"][arm_name], changes)
    _check_config_keys(merged["base"], f"[base] of study {name}")
    if "grid" in raw and not raw["grid"]:
        raise SpecError(f"[grid] of study {name} is empty: give at least one key = [values], or drop it")
    grid = _check_grid(merged["grid"], f"[grid] of study {name}")
    arms = []
    for arm_name, table in merged["arms"].items():
        overrides = {k: v for k, v in table.items() if k not in ("name", "grid")}
        _check_config_keys(overrides, f"arm {arm_name!r} of study {name}")
        if "grid" in table and not table["grid"]:
            raise SpecError(f"the grid of arm {arm_name!r} of study {name} is empty: give at least one key = [values]")
        arm_grid = _check_grid(table.get("grid", {}), f"grid of arm {arm_name!r}")
        arms.append(Arm(arm_name, overrides, arm_grid))
    seeds = merged["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SpecError(f"study {name}: seeds must be a positive integer, got {seeds!r}")
    kind = raw.get("kind", "train")
    if kind not in KINDS:
        raise SpecError(f"study {name}: unknown kind {kind!r}{_hint(kind, KINDS)}; choose one of {', '.join(KINDS)}")
    produced = _metrics_produced(merged["base"], arms)
    verdict = tuple(_check_verdict(v, {a.name for a in arms}, produced, name) for v in raw.get("verdict", []))
    if not verdict:
        raise SpecError(f"study {name}: needs at least one [[verdict]] check")
    metrics = tuple(raw.get("metrics", ["test_accuracy", "test_loss", "train_seconds"]))
    for metric in metrics:
        _check_metric(metric, produced, f"metrics of study {name}")
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


def _check_verdict(check: dict[str, Any], arms: set[str], produced: tuple[str, ...], study: str) -> dict[str, Any]:
    if not isinstance(check, dict):
        raise SpecError(f"study {study}: a [[verdict]] check must be a table, got {check!r}")
    kind = check.get("check", "compare")
    if kind not in CHECKS:
        raise SpecError(f"study {study}: unknown verdict check {kind!r}{_hint(kind, CHECKS)}")
    for key in check:
        if key not in VERDICT_KEYS[kind]:
            raise SpecError(f"study {study}: unknown key {key!r} in a {kind} [[verdict]] check"
                            f"{_hint(key, VERDICT_KEYS[kind])}; known: {', '.join(VERDICT_KEYS[kind])}")
    for key in ("metric", "a_metric", "b_metric"):
        if key in check:
            _check_metric(check[key], produced, f"a [[verdict]] check of study {study}")
    for key in ("a", "b", "arm"):
        if key in check and check[key] not in arms:
            raise SpecError(f"study {study}: verdict names arm {check[key]!r}, which does not exist"
                            f"{_hint(check[key], sorted(arms))}; arms: {', '.join(sorted(arms))}")
    if kind == "compare":
        if "a" not in check or not ("metric" in check or "a_metric" in check):
            raise SpecError(f"study {study}: a compare check needs 'a' and 'metric' (and 'b' or 'b_metric')")
        if check.get("expect") not in EXPECTS:
            raise SpecError(f"study {study}: expect must be one of {', '.join(EXPECTS)}, got {check.get('expect')!r}")
    return {"check": kind, **check}


def _metrics_produced(base: dict[str, Any], arms: list[Arm]) -> tuple[str, ...]:
    """The metric names a run of this study has: stored, derived, config values and its measures' results."""
    measures = {m for table in [base, *(a.overrides for a in arms)] for m in table.get("measure", [])}
    return RUN_METRICS + tuple(DERIVED) + tuple(n for m in MEASURES if m in measures for n in MEASURED[m]) + FIELDS


def _check_metric(metric: Any, produced: tuple[str, ...], where: str) -> None:
    if metric not in produced:
        known = RUN_METRICS + tuple(DERIVED) + tuple(n for m in MEASURES for n in MEASURED[m] if n in produced)
        measured = [m for m in MEASURES if metric in MEASURED[m]]
        why = f" (runs need measure = [{measured[0]!r}] for it)" if measured else _hint(metric, produced)
        raise SpecError(f"unknown metric {metric!r} in {where}{why}; runs produce {', '.join(known)} "
                        "and their config values")


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    if not isinstance(table, dict):
        raise SpecError(f"{what}: expected a table, got {table!r}")
    for key in table:
        if key not in allowed:
            raise SpecError(f"unknown {what} {key!r}{_hint(key, allowed)}; known: {', '.join(allowed)}")


def _check_config_keys(table: dict[str, Any], where: str) -> None:
    for key in table:
        if key not in FIELDS and key not in STUDY_KEYS:
            raise SpecError(f"unknown config key {key!r} in {where}{_hint(key, FIELDS + STUDY_KEYS)}")
    for measure in table.get("measure", []):
        if measure not in MEASURES:
            raise SpecError(f"unknown measure {measure!r} in {where}{_hint(measure, MEASURES)}")


def _check_grid(grid: dict[str, Any], where: str) -> dict[str, tuple[Any, ...]]:
    if not isinstance(grid, dict):
        raise SpecError(f"{where} must be a table of key = [values]")
    _check_config_keys(grid, where)
    out = {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}: {key} must be a non-empty list of values, got {values!r}")
        out[key] = tuple(values)
    return out


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _hint(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
