"""Metrics of stored runs and the verdict checks of a study: pure functions of plain records.

A record is one row of the store as a dict (``arm``, ``label``, ``seed``, ``config``,
``status``, ``metrics``, ``history``). No torch here: the report imports this module.

A ``compare`` check contrasts a metric of arm ``a`` with arm ``b`` (or two metrics of one
arm) over seeds. With ``d`` the difference in the expected direction and ``se`` its
standard error (paired by seed when both arms have the same seeds, else Welch's):

- ``higher``/``lower`` (by at least ``margin``): supported if ``d - t se > 0`` and
  ``d >= margin``; not supported if ``d + t se < margin``; else inconclusive.
- ``not-lower``/``not-higher`` (within ``margin``): supported if ``d - t se > -margin``;
  not supported if ``d + t se < -margin``; else inconclusive.

``t`` is Student's two-sided 95% quantile for ``seeds - 1`` degrees of freedom (12.7 for
2 seeds, 4.3 for 3, 2.8 for 5), so few seeds need large effects. One seed gives no
spread: every check is inconclusive on one seed. So is a check whose arms never learned
(mean test accuracy below ``CHANCE + 0.05``): differences between untrained models are noise.

>>> recs = [{"arm": arm, "label": arm, "seed": s, "status": "done", "config": {}, "history": {},
...          "metrics": {"test_accuracy": acc}} for arm, s, acc in
...         [("a", 0, 0.90), ("a", 1, 0.91), ("a", 2, 0.92), ("b", 0, 0.85), ("b", 1, 0.87), ("b", 2, 0.86)]]
>>> evaluate({"a": "a", "b": "b", "metric": "test_accuracy", "expect": "higher", "margin": 0.0}, recs).outcome
'supported'
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
CHANCE = 0.1  # CIFAR-10's ten classes
# Student's t, two-sided 95%, by degrees of freedom (1..10); about 2 beyond
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t95(dof: int) -> float:
    return T95[dof - 1] if dof <= len(T95) else 2.0 + 2.5 / dof


@dataclass(frozen=True)
class CheckResult:
    """One verdict check: its outcome and a sentence with the numbers behind it."""

    outcome: str
    text: str


def _epochs(record: Record) -> list[dict[str, float]]:
    return (record.get("history") or {}).get("epochs", [])


def _curve(record: Record, key: str = "test_accuracy") -> list[float]:
    return [e[key] for e in _epochs(record) if e.get(key) is not None]


def val_noise(record: Record) -> float:
    """Mean absolute change of test accuracy between successive epochs, over the second half of training."""
    acc = _curve(record)
    tail = acc[len(acc) // 2 - 1:] if len(acc) >= 4 else acc
    steps = [abs(b - a) for a, b in zip(tail, tail[1:])]
    return statistics.fmean(steps) if steps else math.nan


DERIVED: dict[str, Callable[[Record], float]] = {
    "best_test_accuracy": lambda r: max(_curve(r), default=math.nan),
    "mean_test_accuracy": lambda r: statistics.fmean(_curve(r)) if _curve(r) else math.nan,
    "val_noise": val_noise,
    "final_lr": lambda r: ((r.get("history") or {}).get("steps") or [{}])[-1].get("lr", math.nan),
}


def metric(record: Record, name: str) -> float:
    """A run's value of ``name``: a stored metric, a config value, or derived from its history."""
    if name in DERIVED:
        return DERIVED[name](record)
    for source in (record.get("metrics") or {}, record.get("config") or {}):
        value = source.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return math.nan


def by_seed(records: Sequence[Record], arm_or_label: str, name: str) -> dict[int, float]:
    """{seed: value} over finished runs of an arm (or a label), skipping missing values."""
    out = {}
    for r in records:
        if r["status"] == "done" and arm_or_label in (r["arm"], r["label"]):
            value = metric(r, name)
            if math.isfinite(value):
                out[r["seed"]] = value
    return out


def summary(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation or nan, count)."""
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return math.nan, math.nan, 0
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else math.nan, len(vals)


def difference(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """(mean a - mean b, its standard error or nan, seeds used): paired by seed when the seeds match."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:  # seeds share initial weights and data order: pairing removes that noise
        diffs = [a[s] - b[s] for s in common]
        return statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs)), len(diffs)
    (ma, sa, na), (mb, sb, nb) = summary(list(a.values())), summary(list(b.values()))
    if na == 0 or nb == 0:
        return math.nan, math.nan, 0
    se = math.sqrt(sa**2 / na + sb**2 / nb) if na > 1 and nb > 1 else math.nan
    return ma - mb, se, min(na, nb)


def judge(d: float, se: float, n: int, expect: str, margin: float) -> str:
    """The outcome for a difference ``d`` already signed so that positive favours the claim."""
    if not math.isfinite(d) or not math.isfinite(se) or n < 2:
        return INCONCLUSIVE
    lo, hi = d - t95(n - 1) * se, d + t95(n - 1) * se
    if expect in ("higher", "lower"):
        if lo > 0 and d >= margin:
            return SUPPORTED
        return NOT_SUPPORTED if hi < margin else INCONCLUSIVE
    if lo > -margin:
        return SUPPORTED
    return NOT_SUPPORTED if hi < -margin else INCONCLUSIVE


def compare(a: dict[int, float], b: dict[int, float], expect: str, margin: float, what: str) -> CheckResult:
    d, se, n = difference(a, b)
    sign = -1.0 if expect in ("lower", "not-higher") else 1.0
    outcome = judge(sign * d, se, n, expect, margin)
    rule = {"higher": f"higher by at least {margin:g}", "lower": f"lower by at least {margin:g}",
            "not-lower": f"not lower by more than {margin:g}", "not-higher": f"not higher by more than {margin:g}"}
    if n == 0:
        return CheckResult(INCONCLUSIVE, f"{what}: no finished runs to compare")
    spread = f" ± {t95(n - 1) * se:.3g} (95% interval, {n} seeds)" if math.isfinite(se) and n > 1 \
        else f" (spread unknown: {n} seed)"
    return CheckResult(outcome, f"{what}: difference {d:+.3g}{spread}; expected {rule[expect]}")


def evaluate(check: dict[str, Any], records: Sequence[Record]) -> CheckResult:
    """Run one ``[[verdict]]`` check of a spec on stored records."""
    kind = check.get("check", "compare")
    if kind == "wd-pick":
        return wd_pick(check, records)
    if kind == "best-lr-trend":
        return best_lr_trend(check, records)
    a, b = check["a"], check.get("b", check["a"])
    ma, mb = check.get("a_metric", check.get("metric")), check.get("b_metric", check.get("metric"))
    what = f"{a} vs {b} on {ma}" if ma == mb else f"{ma} vs {mb} of {a}" if a == b else f"{a} {ma} vs {b} {mb}"
    if not learned(records, {a, b}):
        return CheckResult(INCONCLUSIVE, f"{what}: the runs did not learn (test accuracy near chance), so their "
                                         "differences are noise")
    return compare(by_seed(records, a, ma), by_seed(records, b, mb), check["expect"], check.get("margin", 0.0), what)


def learned(records: Sequence[Record], arms: set[str]) -> bool:
    """False when no finished run of the named arms (or labels) got 5 points above chance accuracy."""
    accs = [metric(r, "test_accuracy") for r in records
            if r["status"] == "done" and (r["arm"] in arms or r["label"] in arms)]
    accs = [a for a in accs if math.isfinite(a)]
    return not accs or max(accs) >= CHANCE + 0.05


def overall(results: Sequence[CheckResult]) -> str:
    """Supported if every check is; not supported if any is not; otherwise inconclusive."""
    outcomes = {r.outcome for r in results}
    if outcomes == {SUPPORTED}:
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in outcomes else INCONCLUSIVE


# -- kind-specific checks -----------------------------------------------------------------


def curve_minima(records: Sequence[Record]) -> dict[float, list[tuple[float, float]]]:
    """{weight decay: [(lowest smoothed range-test loss, LR where it is reached) per seed]}."""
    out: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        finder = (r.get("metrics") or {}).get("lr_find")
        if r["status"] == "done" and finder:
            points = [(y, x) for x, y in zip(finder["lrs"], finder["smoothed"]) if y is not None]
            low = min(points)
            out[float(r["config"].get("weight_decay", 0.0))].append(low)
    return dict(sorted(out.items()))


def pick_weight_decay(minima: dict[float, list[tuple[float, float]]], tolerance: float = 0.05,
                      lr_ratio: float = 0.5) -> float | None:
    """Smith's pick: the largest weight decay that still trains at a high LR.

    Curves whose minimum comes at an LR (geometric seed mean) below ``lr_ratio`` times
    the highest such LR are out: they no longer train at a high LR. Of the rest, those whose
    (seed-mean) minimum loss is within ``tolerance`` (relative) of their lowest are
    eligible, and the largest eligible weight decay is picked.
    """
    loss = {wd: statistics.fmean(p[0] for p in v) for wd, v in minima.items() if v}
    lr = {wd: math.exp(statistics.fmean(math.log(p[1]) for p in v)) for wd, v in minima.items() if v}
    if not loss:
        return None
    fast = [wd for wd in loss if lr[wd] >= lr_ratio * max(lr.values())]
    lowest = min(loss[wd] for wd in fast)
    return max(wd for wd in fast if loss[wd] <= lowest + tolerance * abs(lowest))


def wd_pick(check: dict[str, Any], records: Sequence[Record]) -> CheckResult:
    name = check.get("metric", "test_accuracy")
    pick = pick_weight_decay(curve_minima(records), check.get("tolerance", 0.05), check.get("lr_ratio", 0.5))
    labels = {float(r["config"].get("weight_decay", 0.0)): r["label"] for r in records}
    scores = {wd: summary(list(by_seed(records, label, name).values()))[0] for wd, label in labels.items()}
    scores = {wd: s for wd, s in scores.items() if math.isfinite(s)}
    if pick is None or not scores:
        return CheckResult(INCONCLUSIVE, "no finished runs with range-test curves")
    best = max(scores, key=scores.__getitem__)
    what = f"weight decay picked from the curves {pick:g} vs best by training {best:g} on {name}"
    if not learned(records, set(labels.values())):
        return CheckResult(INCONCLUSIVE, f"{what}: the runs did not learn (test accuracy near chance)")
    if pick == best:
        n = len(by_seed(records, labels[best], name))
        outcome = SUPPORTED if n >= 2 else INCONCLUSIVE
        return CheckResult(outcome, f"{what}: the curves picked the weight decay that trained best ({n} seeds)")
    return compare(by_seed(records, labels[pick], name), by_seed(records, labels[best], name), "not-lower",
                   check.get("margin", 0.005), what)


def best_lrs(records: Sequence[Record], arm: str, name: str = "test_loss") -> dict[int, dict[int, float]]:
    """{batch size: {train subset: LR with the lowest seed-mean ``name``}} over the runs of ``arm``."""
    cells: dict[tuple[int, int], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        value = metric(r, name)
        if r["status"] == "done" and r["arm"] == arm and math.isfinite(value):
            c = r["config"]
            cells[(c["batch_size"], c.get("train_subset") or 0)][c["max_lr"]].append(value)
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for (batch, subset), lrs in sorted(cells.items()):
        out[batch][subset] = min(lrs, key=lambda lr: statistics.fmean(lrs[lr]))
    return dict(out)


def best_lr_trend(check: dict[str, Any], records: Sequence[Record]) -> CheckResult:
    arm, name = check.get("arm", "sweep"), check.get("metric", "test_loss")
    batches = sorted({r["config"]["batch_size"] for r in records if r["arm"] == arm})
    batch = check.get("batch_size", batches[0] if batches else 0)  # default: the smallest batch swept
    seeds = sorted({r["seed"] for r in records if r["arm"] == arm})
    ratios = []
    for seed in seeds:
        best = best_lrs([r for r in records if r["seed"] == seed], arm, name).get(batch, {})
        if len(best) >= 2:
            subsets = sorted(best)
            ratios.append(best[subsets[0]] / best[subsets[-1]])
    what = f"best LR on the smallest vs the largest training subset at batch {batch}"
    if not learned(records, {arm}):
        return CheckResult(INCONCLUSIVE, f"{what}: the runs did not learn (test accuracy near chance)")
    if not ratios:
        return CheckResult(INCONCLUSIVE, f"{what}: not enough finished runs")
    text = f"{what}: ratio per seed {', '.join(f'{x:g}' for x in ratios)}; expected above 1 for every seed"
    if len(ratios) < 2:
        return CheckResult(INCONCLUSIVE, text + " (one seed: no spread)")
    if all(x > 1 for x in ratios):
        return CheckResult(SUPPORTED, text)
    return CheckResult(NOT_SUPPORTED if all(x <= 1 for x in ratios) else INCONCLUSIVE, text)
