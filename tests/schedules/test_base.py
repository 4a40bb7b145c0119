"""The schedule protocol: immutability, pickling, printing and the past-end policy."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import pytest

from superconverge.schedules import (
    PastEndError,
    PastEndWarning,
    cosine,
    cyclical,
    extend,
    inverse_sqrt,
    join,
    linear,
    one_cycle,
    reduce_on_plateau,
    repeat,
    sgdr,
    trapezoid,
    warmup,
)

EXAMPLES = [
    linear(0.0, 1.0, 10),
    warmup(cosine(0.1, 0.0, 90), 10),
    one_cycle(100, 0.1)["lr"],
    one_cycle(100, 0.1, three_phase=True)["momentum"],
    cyclical(0.001, 0.01, 5, mode="exp_range", gamma=0.99)["lr"],
    sgdr(0.1, 10, t_mult=2, decay=0.5),
    trapezoid(100, 10, 20),
    inverse_sqrt(1.0, 10),
    extend(one_cycle(100, 0.1)["lr"], 50, 150),
    repeat(linear(1.0, 0.0, 5), t_mult=2, cycles=3),
]


@pytest.mark.parametrize("sched", EXAMPLES, ids=lambda s: type(s).__name__)
def test_schedules_pickle_compare_and_print(sched):
    clone = pickle.loads(pickle.dumps(sched))
    assert clone == sched
    assert hash(clone) == hash(sched)
    assert [clone.at(t) for t in range(60)] == [sched.at(t) for t in range(60)]
    assert type(sched).__name__ in repr(sched)


@pytest.mark.parametrize("sched", EXAMPLES, ids=lambda s: type(s).__name__)
def test_schedules_are_immutable(sched):
    field = dataclasses.fields(sched)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(sched, field, None)


def test_past_end_holds_final_value_and_warns_once():
    s = linear(1.0, 0.0, 10)
    assert s(10) == 0.0  # the step after the last optimizer step is inside the run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for t in range(11, 30):
            assert s(t) == 0.0
    assert len([w for w in caught if issubclass(w.category, PastEndWarning)]) == 1


def test_past_end_strict_mode_raises():
    s = linear(1.0, 0.0, 10)
    assert s(10, past_end="raise") == 0.0
    with pytest.raises(PastEndError, match="step 11 is past the end of a 10-step schedule"):
        s(11, past_end="raise")


def test_past_end_hold_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert linear(1.0, 0.0, 10)(50, past_end="hold") == 0.0


def test_negative_step_is_an_error():
    with pytest.raises(ValueError, match="step must be >= 0"):
        linear(1.0, 0.0, 10)(-1)


def test_unbounded_schedules_never_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sgdr(0.1, 10)(10**6) == pytest.approx(0.1)


def test_values_of_unbounded_needs_a_length():
    with pytest.raises(ValueError, match="unbounded"):
        sgdr(0.1, 10).values()
    assert len(sgdr(0.1, 10).values(25)) == 25


def test_plateau_policy_pickles():
    p = reduce_on_plateau(0.1, warmup_steps=10)
    assert pickle.loads(pickle.dumps(p)) == p


def test_scaling_by_operator():
    s = 2 * linear(1.0, 0.0, 10)
    assert s(0) == 2.0 and s.total_steps == 10
    assert join([linear(0, 1, 5), linear(1, 0, 5)], [5]) * 3 == join([linear(0, 1, 5), linear(1, 0, 5)], [5]) * 3
