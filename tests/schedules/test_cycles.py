"""Ready policies: 1cycle, cyclical, SGDR, cosine floor, trapezoid, inverse sqrt."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superconverge.schedules import (
    cosine_with_floor,
    cyclical,
    inverse_sqrt,
    one_cycle,
    sgdr,
    trapezoid,
)


@given(total=st.integers(20, 5000), pct=st.floats(0.05, 0.9), peak=st.floats(1e-3, 10.0),
       div=st.floats(2, 100), final=st.floats(10, 1e5), anneal=st.sampled_from(["cos", "linear"]))
def test_one_cycle_endpoints_and_monotone_phases(total, pct, peak, div, final, anneal):
    if pct * total <= 2:
        return
    p = one_cycle(total, peak, pct_start=pct, div_factor=div, final_div_factor=final, anneal=anneal)
    lr, mom = p["lr"].values(total), p["momentum"].values(total)
    top = int(math.floor(pct * total - 1))
    assert lr[0] == pytest.approx(peak / div)
    assert p["lr"].at(pct * total - 1) == pytest.approx(peak)  # the peak sits at step pct*T - 1
    assert max(lr) <= peak * (1 + 1e-12)
    assert lr[-1] == pytest.approx(peak / div / final)
    assert all(b >= a - 1e-12 for a, b in zip(lr[: top + 1], lr[1 : top + 1]))
    assert all(b <= a + 1e-12 for a, b in zip(lr[top + 1 :], lr[top + 2 :]))
    # momentum moves inversely to the learning rate
    assert mom[0] == pytest.approx(0.95) and mom[-1] == pytest.approx(0.95)
    assert min(mom) == pytest.approx(0.85, abs=0.01)
    pairs = list(zip(lr, lr[1:], mom, mom[1:]))
    del pairs[top]  # the interval that contains the peak
    assert all((b - a) * (d - c) <= 1e-12 for a, b, c, d in pairs)


@given(total=st.integers(50, 2000), pct=st.floats(0.05, 0.45))
def test_three_phase_returns_to_initial_then_anneals(total, pct):
    if pct * total <= 2:
        return
    p = one_cycle(total, 1.0, pct_start=pct, three_phase=True)
    up = pct * total - 1
    assert p["lr"].at(2 * up) == pytest.approx(1.0 / 25)
    assert p["lr"].at(total - 1) == pytest.approx(1.0 / 25 / 1e4)
    assert p["momentum"].at(total - 1) == pytest.approx(0.95)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pct_start=0.0), "pct_start must lie strictly between 0 and 1"),
        (dict(pct_start=1.0), "pct_start must lie strictly between 0 and 1"),
        (dict(pct_start=1.5), "pct_start must lie strictly between 0 and 1"),
        (dict(div_factor=0), "div_factor must be a positive number"),
        (dict(div_factor=-3.0), "div_factor must be a positive number"),
        (dict(base_momentum=1.0), r"base_momentum must lie in \[0, 1\)"),
        (dict(max_momentum=-0.1), r"max_momentum must lie in \[0, 1\)"),
        (dict(pct_start=0.005), "leaves no warm-up steps"),
        (dict(pct_start=0.6, three_phase=True), "use pct_start below 0.5"),
        (dict(anneal="exp"), "anneal must be 'cos' or 'linear'"),
    ],
)
def test_one_cycle_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        one_cycle(100, 0.1, **kwargs)


@pytest.mark.parametrize("total, message", [(0, "positive integer"), (-10, "positive integer"),
                                            (100.5, "whole number")])
def test_one_cycle_bad_total_steps(total, message):
    with pytest.raises(ValueError, match=message):
        one_cycle(total, 0.1)


@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_one_cycle_needs_a_positive_lr(lr):
    with pytest.raises(ValueError, match="max_lr must be a positive number"):
        one_cycle(100, lr)


def test_cyclical_modes():
    tri = cyclical(1.0, 3.0, 5)["lr"]
    assert [tri(0), tri(5), tri(10), tri(15)] == pytest.approx([1.0, 3.0, 1.0, 3.0])
    tri2 = cyclical(1.0, 3.0, 5, mode="triangular2")["lr"]
    assert [tri2(5), tri2(15), tri2(25)] == pytest.approx([3.0, 2.0, 1.5])
    exp = cyclical(1.0, 3.0, 5, mode="exp_range", gamma=0.9)["lr"]
    assert exp(5) == pytest.approx(1.0 + 2.0 * 0.9**5)


def test_sgdr_restarts_and_floor():
    s = sgdr(1.0, 10, t_mult=2, eta_min=0.1)
    assert [s(0), s(10), s(30)] == pytest.approx([1.0, 1.0, 1.0])
    assert s(20) == pytest.approx(0.55)


def test_cosine_with_floor_keeps_a_floor():
    s = cosine_with_floor(0.1, 100)
    assert s(100) == pytest.approx(0.001) and s(0) == 0.1
    with pytest.raises(ValueError, match="below the peak"):
        cosine_with_floor(0.1, 100, floor=0.2)


@given(total=st.integers(10, 1000), w=st.floats(0, 0.5), d=st.floats(0, 0.5))
def test_trapezoid_phases(total, w, d):
    W, D = int(w * total), int(d * total)
    s = trapezoid(total, W, D, min_ratio=0.01)
    if W:
        assert s(0) == 0.0
    assert s(W) == pytest.approx(1.0)
    assert s(total - D) == pytest.approx(1.0)
    assert s(total) == pytest.approx(0.01 if D else 1.0)


def test_trapezoid_rejects_overlapping_phases():
    with pytest.raises(ValueError, match="overlap"):
        trapezoid(100, 60, 50)


def test_inverse_sqrt():
    s = inverse_sqrt(1.0, 100)
    assert [s(0), s(100), s(400)] == pytest.approx([0.0, 1.0, 0.5])
