"""Reduce-on-plateau as explicit state: thresholds, patience, cooldown, floor, lead-in."""

from __future__ import annotations

import pytest

from superconverge.schedules import PlateauState, observe, reduce_on_plateau, start


def run(p, metrics, step=0):
    s = start(p)
    for m in metrics:
        s = observe(p, s, m, step)
    return s


def test_patience_then_reduce_then_cooldown():
    p = reduce_on_plateau(1.0, patience=2, factor=0.5, cooldown=2)
    s = run(p, [1.0, 1.0, 1.0])
    assert s.value == 1.0  # two bad checks: still patient
    s = observe(p, s, 1.0)
    assert s.value == 0.5 and s.reductions == 1 and s.cooldown_left == 2
    s = run_from(p, s, [1.0, 1.0])  # cooldown: bad checks do not count
    assert s.value == 0.5 and s.bad_checks == 0


def run_from(p, s, metrics):
    for m in metrics:
        s = observe(p, s, m)
    return s


def test_mode_max_tracks_accuracy_and_mode_min_misreads_it():
    accuracy = [0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.84]
    right = run(reduce_on_plateau(0.1, mode="max", patience=1), accuracy)
    wrong = run(reduce_on_plateau(0.1, mode="min", patience=1), accuracy)
    assert right.value == 0.1
    assert wrong.value < 0.1  # rising accuracy looks like a plateau to mode="min"


def test_abs_threshold_and_min_value():
    p = reduce_on_plateau(1.0, threshold=0.5, threshold_mode="abs", patience=0, factor=0.1, min_value=0.05)
    s = run(p, [10.0, 9.8, 9.6])  # improvements of 0.2 < 0.5 do not count
    assert s.value == pytest.approx(0.05)


def test_lead_in_ignores_metrics_and_then_holds():
    p = reduce_on_plateau(0.1, warmup_steps=100, patience=0)
    s = run(p, [1.0, 2.0, 3.0], step=50)
    assert s == start(p)
    assert p.at(0, s) == pytest.approx(0.001) and p.at(100, s) == 0.1


def test_state_round_trips_as_plain_data():
    s = run(reduce_on_plateau(1.0, patience=0), [1.0, 2.0, 3.0])
    assert PlateauState.from_dict(s.to_dict()) == s
    assert all(isinstance(v, (int, float)) for v in s.to_dict().values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="maximum"), "mode must be 'min' or 'max'"),
        (dict(factor=1.0), "factor must lie strictly between 0 and 1"),
        (dict(patience=-1), "patience must be a whole number"),
        (dict(threshold_mode="pct"), "threshold_mode must be 'rel' or 'abs'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reduce_on_plateau(0.1, **kwargs)


def test_nan_metric_is_an_error():
    p = reduce_on_plateau(0.1)
    with pytest.raises(ValueError, match="NaN"):
        observe(p, start(p), float("nan"))
