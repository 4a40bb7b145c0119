"""Verdict checks: the decision rule, pairing by seed, one seed, and the kind-specific checks."""

from __future__ import annotations

import pytest

from superconverge.studies.verdict import (
    INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, CheckResult, best_lr_trend, evaluate, judge, metric, overall,
    pick_weight_decay, val_noise, wd_pick,
)


def rec(arm, seed, status="done", config=None, label=None, **metrics):
    return {"arm": arm, "label": label or arm, "seed": seed, "status": status, "config": config or {},
            "metrics": metrics, "history": {}}


def check(a, b, expect, margin=0.0, metric="test_accuracy"):
    return {"a": a, "b": b, "metric": metric, "expect": expect, "margin": margin}


@pytest.mark.parametrize("d, se, expect, margin, outcome", [
    (0.02, 0.004, "higher", 0.0, SUPPORTED),
    (0.02, 0.002, "higher", 0.03, NOT_SUPPORTED),  # clearly positive but smaller than asked for
    (0.02, 0.02, "higher", 0.0, INCONCLUSIVE),
    (-0.02, 0.003, "higher", 0.0, NOT_SUPPORTED),
    (-0.003, 0.0004, "not-lower", 0.005, SUPPORTED),
    (-0.02, 0.002, "not-lower", 0.005, NOT_SUPPORTED),
    (-0.004, 0.01, "not-lower", 0.005, INCONCLUSIVE),
])
def test_judge(d, se, expect, margin, outcome):
    assert judge(d, se, 3, expect, margin) == outcome  # 3 seeds: t = 4.30


def test_two_seeds_need_a_large_effect():
    assert judge(0.02, 0.004, 3, "higher", 0.0) == SUPPORTED
    assert judge(0.02, 0.004, 2, "higher", 0.0) == INCONCLUSIVE  # t = 12.7


def test_one_seed_is_always_inconclusive():
    recs = [rec("a", 0, test_accuracy=0.9), rec("b", 0, test_accuracy=0.1)]
    result = evaluate(check("a", "b", "higher"), recs)
    assert result.outcome == INCONCLUSIVE and "spread unknown" in result.text


def test_pairing_by_seed_removes_the_seed_effect():
    # seeds move both arms together; a is always 0.01 above b
    recs = [rec(arm, s, test_accuracy=base + s * 0.05 + (0.01 if arm == "a" else 0))
            for arm in "ab" for s, base in enumerate([0.8, 0.8, 0.8])]
    assert evaluate(check("a", "b", "higher"), recs).outcome == SUPPORTED
    assert evaluate(check("b", "a", "lower"), recs).outcome == SUPPORTED


def test_arms_that_never_learned_are_inconclusive():
    recs = [rec(arm, s, test_accuracy=acc + s / 1000) for arm, acc in (("a", 0.12), ("b", 0.10)) for s in range(3)]
    result = evaluate(check("a", "b", "higher"), recs)
    assert result.outcome == INCONCLUSIVE and "did not learn" in result.text


def test_failed_runs_are_left_out_and_missing_arms_are_inconclusive():
    recs = [rec("a", 0, test_accuracy=0.9), rec("a", 1, status="failed"), rec("b", 0, test_accuracy=0.5)]
    assert evaluate(check("a", "b", "higher"), recs).outcome == INCONCLUSIVE
    assert "no finished runs" in evaluate(check("a", "c", "higher"), recs).text


def test_two_metrics_of_one_arm():
    recs = [rec("f", s, recent_loss=0.5 + s / 100, earlier_loss=1.0) for s in range(3)]
    result = evaluate({"a": "f", "a_metric": "recent_loss", "b_metric": "earlier_loss", "expect": "lower"}, recs)
    assert result.outcome == SUPPORTED and "recent_loss vs earlier_loss of f" in result.text


def test_overall():
    s, n, i = (CheckResult(o, "") for o in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE))
    assert overall([s, s]) == SUPPORTED and overall([s, i]) == INCONCLUSIVE and overall([s, i, n]) == NOT_SUPPORTED


def test_derived_metrics_from_history():
    r = rec("a", 0)
    r["history"] = {"epochs": [{"test_accuracy": a} for a in (0.1, 0.5, 0.4, 0.6, 0.55)],
                    "steps": [{"lr": 0.1}, {"lr": 0.01}]}
    assert metric(r, "best_test_accuracy") == 0.6 and metric(r, "final_lr") == 0.01
    assert val_noise(r) == pytest.approx((0.1 + 0.2 + 0.05) / 3)
    assert metric(r, "mean_test_accuracy") == pytest.approx(0.43)


def test_weight_decay_pick_and_check():
    # 1e-2 reaches the lowest loss but only at a low LR; 1e-3 is nearly as low at a high LR
    minima = {1e-4: [(2.0, 1.0)], 1e-3: [(2.05, 0.8)], 1e-2: [(1.95, 0.1)]}
    assert pick_weight_decay(minima, tolerance=0.05, lr_ratio=0.5) == 1e-3
    recs = []
    for wd, min_loss, acc in ((1e-4, 2.0, 0.80), (1e-3, 2.05, 0.81), (1e-2, 2.5, 0.70)):
        for s in range(3):
            r = rec("base", s, config={"weight_decay": wd}, label=f"base wd={wd}", test_accuracy=acc + s / 100)
            r["metrics"]["lr_find"] = {"lrs": [0.01, 0.1, 1.0], "smoothed": [2.3, min_loss, None]}
            recs.append(r)
    result = wd_pick({"metric": "test_accuracy", "margin": 0.005, "tolerance": 0.05}, recs)
    assert result.outcome == SUPPORTED and "picked the weight decay that trained best" in result.text


def test_best_lr_trend():
    def sweep(seed, best_small, best_large):
        out = []
        for subset, best in ((100, best_small), (400, best_large)):
            for lr in (0.1, 0.2, 0.4):
                out.append(rec("sweep", seed, config={"batch_size": 20, "train_subset": subset, "max_lr": lr},
                               test_loss=abs(lr - best) + 1))
        return out
    rising = sweep(0, 0.4, 0.1) + sweep(1, 0.4, 0.2)
    assert best_lr_trend({"arm": "sweep"}, rising).outcome == SUPPORTED
    assert best_lr_trend({"arm": "sweep"}, sweep(0, 0.1, 0.4) + sweep(1, 0.2, 0.2)).outcome == NOT_SUPPORTED
    assert best_lr_trend({"arm": "sweep"}, sweep(0, 0.4, 0.1)).outcome == INCONCLUSIVE
