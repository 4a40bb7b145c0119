"""What a study spec may contain, and the checks that hold a spec to it.

The keys a spec's tables accept, the kinds of study, measures and verdict checks, the
metrics a run produces, and :class:`SpecError`, whose messages say what to change.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from superconverge.studies.verdict import DERIVED
from superconverge.train.recipe import FIELDS

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
# of run.summarize and engine.train_run
RUN_METRICS = ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "epochs", "steps", "steps_per_epoch",
               "train_seconds", "wall_seconds", "max_lr", "lr_mean_equivalent", "wd_mean_equivalent", "threads")
MEASURED = {"lr_find": ("lr_find_min_loss", "lr_find_suggestion"), "forgetting": ("recent_loss", "earlier_loss")}
EXPECTS = ("higher", "lower", "not-lower", "not-higher")
# The seeds of run k are 0..k-1; hashing ignores per-machine settings so results carry over.
NOT_HASHED = ("threads", "device", "progress")


class SpecError(ValueError):
    """A study spec that cannot be used; the message says what to change."""


def check_verdict(check: dict[str, Any], arms: set[str], produced: tuple[str, ...], study: str) -> dict[str, Any]:
    if not isinstance(check, dict):
        raise SpecError(f"study {study}: a [[verdict]] check must be a table, got {check!r}")
    kind = check.get("check", "compare")
    if kind not in CHECKS:
        raise SpecError(f"study {study}: unknown verdict check {kind!r}{hint(kind, CHECKS)}")
    for key in check:
        if key not in VERDICT_KEYS[kind]:
            raise SpecError(f"study {study}: unknown key {key!r} in a {kind} [[verdict]] check"
                            f"{hint(key, VERDICT_KEYS[kind])}; known: {', '.join(VERDICT_KEYS[kind])}")
    for key in ("metric", "a_metric", "b_metric"):
        if key in check:
            check_metric(check[key], produced, f"a [[verdict]] check of study {study}")
    for key in ("a", "b", "arm"):
        if key in check and check[key] not in arms:
            raise SpecError(f"study {study}: verdict names arm {check[key]!r}, which does not exist"
                            f"{hint(check[key], sorted(arms))}; arms: {', '.join(sorted(arms))}")
    if kind == "compare":
        if "a" not in check or not ("metric" in check or "a_metric" in check):
            raise SpecError(f"study {study}: a compare check needs 'a' and 'metric' (and 'b' or 'b_metric')")
        if check.get("expect") not in EXPECTS:
            raise SpecError(f"study {study}: expect must be one of {', '.join(EXPECTS)}, got {check.get('expect')!r}")
    return {"check": kind, **check}


def metrics_produced(tables: list[dict[str, Any]]) -> tuple[str, ...]:
    """The metric names a run of this study has: stored, derived, config values and its measures' results."""
    measures = {m for table in tables for m in table.get("measure", [])}
    return RUN_METRICS + tuple(DERIVED) + tuple(n for m in MEASURES if m in measures for n in MEASURED[m]) + FIELDS


def check_metric(metric: Any, produced: tuple[str, ...], where: str) -> None:
    if metric not in produced:
        known = RUN_METRICS + tuple(DERIVED) + tuple(n for m in MEASURES for n in MEASURED[m] if n in produced)
        measured = [m for m in MEASURES if metric in MEASURED[m]]
        why = f" (runs need measure = [{measured[0]!r}] for it)" if measured else hint(metric, produced)
        raise SpecError(f"unknown metric {metric!r} in {where}{why}; runs produce {', '.join(known)} "
                        "and their config values")


def check_keys(table: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    if not isinstance(table, dict):
        raise SpecError(f"{what}: expected a table, got {table!r}")
    for key in table:
        if key not in allowed:
            raise SpecError(f"unknown {what} {key!r}{hint(key, allowed)}; known: {', '.join(allowed)}")


def check_config_keys(table: dict[str, Any], where: str) -> None:
    for key in table:
        if key not in FIELDS and key not in STUDY_KEYS:
            raise SpecError(f"unknown config key {key!r} in {where}{hint(key, FIELDS + STUDY_KEYS)}")
    for measure in table.get("measure", []):
        if measure not in MEASURES:
            raise SpecError(f"unknown measure {measure!r} in {where}{hint(measure, MEASURES)}")


def check_grid(grid: dict[str, Any], where: str) -> dict[str, tuple[Any, ...]]:
    if not isinstance(grid, dict):
        raise SpecError(f"{where} must be a table of key = [values]")
    check_config_keys(grid, where)
    out = {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}: {key} must be a non-empty list of values, got {values!r}")
        out[key] = tuple(values)
    return out


def hint(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
