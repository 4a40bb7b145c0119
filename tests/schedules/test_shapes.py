"""Endpoints, monotonicity and argument checks of the basic shapes."""

from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from superconverge.schedules import (
    constant,
    cosine,
    exponential,
    exponential_decay,
    linear,
    multistep,
    polynomial,
    step_decay,
)

values = st.floats(1e-6, 10.0)
steps = st.integers(1, 10_000)
ANNEALS = [linear, cosine, exponential, polynomial]


@pytest.mark.parametrize("make", ANNEALS)
@given(start=values, end=values, n=steps)
def test_anneals_hit_both_endpoints(make, start, end, n):
    s = make(start, end, n)
    assert s(0) == pytest.approx(start, rel=1e-12)
    assert s(n) == pytest.approx(end, rel=1e-9, abs=1e-15)
    assert s.total_steps == n


@pytest.mark.parametrize("make", ANNEALS)
@given(start=values, end=values, n=st.integers(2, 500))
def test_anneals_are_monotone(make, start, end, n):
    vals = make(start, end, n).values(n + 1)
    sign = 1 if end >= start else -1
    assert all(sign * (b - a) >= -1e-12 * max(start, end) for a, b in zip(vals, vals[1:]))


def test_cosine_midpoint_and_polynomial_power():
    assert cosine(1.0, 0.0, 100)(50) == pytest.approx(0.5)
    assert polynomial(1.0, 0.0, 10, power=2.0)(5) == pytest.approx(0.25)
    assert exponential(1e-4, 1.0, 4)(1) == pytest.approx(1e-3)


@given(initial=values, size=st.integers(1, 50), gamma=st.floats(0.01, 0.99), t=st.integers(0, 1000))
def test_step_decay_formula(initial, size, gamma, t):
    assert step_decay(initial, size, gamma)(t) == pytest.approx(initial * gamma ** (t // size))


def test_multistep_counts_milestones_passed():
    s = multistep(1.0, [10, 20], 0.1)
    assert [s(9), s(10), s(19), s(20), s(1000)] == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01])


def test_exponential_decay_is_unbounded():
    s = exponential_decay(2.0, 0.5)
    assert s.total_steps is None
    assert s(10) == pytest.approx(2.0 / 1024)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: linear(1.0, 0.0, 0), "steps must be a positive integer"),
        (lambda: linear(1.0, 0.0, -5), "steps must be a positive integer"),
        (lambda: linear(1.0, 0.0, 2.5), "whole number of steps"),
        (lambda: linear(float("nan"), 0.0, 5), "start must be a finite number"),
        (lambda: exponential(0.0, 1.0, 5), "start must be a positive number"),
        (lambda: multistep(1.0, [20, 10]), "milestones must be strictly increasing"),
        (lambda: multistep(1.0, [10, 10]), "milestones must be strictly increasing"),
        (lambda: multistep(1.0, []), "at least one step"),
        (lambda: step_decay(1.0, 0), "step_size must be a positive integer"),
        (lambda: polynomial(1.0, 0.0, 10, power=0), "power must be a positive number"),
    ],
)
def test_bad_arguments_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_constant():
    assert constant(0.3)(12345) == 0.3
    assert constant(0.3).total_steps is None
    assert constant(0.3, steps=5).total_steps == 5
