"""Joins, warmup, repeats, scaling and extension: continuity at joins, lengths, formulas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superconverge.schedules import (
    constant,
    cosine,
    exponential,
    extend,
    join,
    join_fractions,
    linear,
    one_cycle,
    repeat,
    scale,
    warmup,
)

peaks = st.floats(1e-4, 5.0)


@given(w=st.integers(1, 200), n=st.integers(1, 500), peak=peaks,
       shape=st.sampled_from(["linear", "cos", "exp"]))
def test_warmup_is_continuous_and_shifts_the_schedule(w, n, peak, shape):
    base = cosine(peak, 0.0, n)
    s = warmup(base, w, shape=shape)
    assert s(0) == pytest.approx(0.01 * peak)
    assert s(w) == pytest.approx(peak)
    assert s(w - 1) <= peak * (1 + 1e-12)
    assert s.total_steps == w + n
    for t in range(0, n, max(1, n // 7)):
        assert s(w + t) == pytest.approx(base(t))


@given(w=st.integers(1, 100), peak=peaks)
def test_warmup_rises_monotonically(w, peak):
    vals = warmup(constant(peak), w, start=0.0).values(w + 1)
    assert all(b >= a for a, b in zip(vals, vals[1:]))


def test_exponential_warmup_needs_positive_values():
    with pytest.raises(ValueError, match="exponential warmup needs positive"):
        warmup(constant(0.1), 10, shape="exp", start=0.0)


@given(a=st.integers(1, 100), b=st.integers(1, 100), peak=peaks)
def test_join_continuity_and_length(a, b, peak):
    s = join([linear(0.0, peak, a), cosine(peak, 0.0, b)], [a])
    assert s.total_steps == a + b
    assert s(a) == pytest.approx(peak)
    assert s(a - 1) == pytest.approx(peak * (a - 1) / a)
    assert s(a + b) == pytest.approx(0.0, abs=1e-12)


def test_join_checks_lengths():
    with pytest.raises(ValueError, match="needs 1 phase lengths"):
        join([linear(0, 1, 5), linear(1, 0, 5)], [])
    with pytest.raises(ValueError, match="must last > 0 steps"):
        join([linear(0, 1, 5), linear(1, 0, 5)], [0])


@given(total=st.integers(10, 2000), pct=st.floats(0.05, 0.95), peak=peaks)
def test_join_fractions_places_the_phases(total, pct, peak):
    s = join_fractions([cosine(peak / 25, peak, 1), cosine(peak, peak / 1e5, 1)], [pct, 1 - pct], total)
    assert s.total_steps == total
    assert s(0) == pytest.approx(peak / 25)
    assert s(pct * total) == pytest.approx(peak)
    assert s(total) == pytest.approx(peak / 1e5)


def test_join_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        join_fractions([constant(1.0), constant(2.0)], [0.5, 0.6], 100)


@given(period=st.integers(1, 50), t_mult=st.integers(1, 3), decay=st.floats(0.1, 1.0))
def test_repeat_restarts_grow_and_decay(period, t_mult, decay):
    s = repeat(cosine(1.0, 0.0, period), t_mult=t_mult, decay=decay)
    start, length = 0, period
    for k in range(4):
        assert s(start) == pytest.approx(decay**k)  # each restart peaks at decay**k
        mid = start + length / 2
        assert s(mid) == pytest.approx(0.5 * decay**k)
        start, length = start + length, length * t_mult


def test_repeat_with_cycles_is_bounded():
    s = repeat(linear(1.0, 0.0, 10), t_mult=2, cycles=3)
    assert s.total_steps == 10 + 20 + 40
    assert s(70) == pytest.approx(0.0)


def test_repeat_rejects_shrinking_cycles():
    with pytest.raises(ValueError, match="t_mult must be >= 1"):
        repeat(linear(1.0, 0.0, 10), t_mult=0.5)


def test_scale():
    assert scale(linear(0.0, 2.0, 4), 0.5)(2) == pytest.approx(0.5)


@given(total=st.integers(20, 500), frac=st.floats(0.05, 0.95), more=st.integers(1, 500))
def test_extend_is_continuous_and_ends_at_the_final_value(total, frac, more):
    base = one_cycle(total, 0.1)["lr"]
    at = max(1, int(frac * total))
    s = extend(base, at, total + more)
    assert s.total_steps == total + more
    for t in range(at):
        assert s(t) == base(t)
    assert s(at) == pytest.approx(base(at), rel=1e-12)
    assert s(at + 1) == pytest.approx(base(at + (total - at) / (total + more - at)), rel=1e-12)
    assert s(total + more) == pytest.approx(base.at(total), rel=1e-9)


def test_extend_after_the_end_holds_the_final_value():
    s = extend(linear(1.0, 0.0, 10), 12, 20)
    assert s(15) == 0.0 and s.total_steps == 20


def test_extend_rejects_an_end_before_the_extension_point():
    with pytest.raises(ValueError, match="must be after at_step"):
        extend(linear(1.0, 0.0, 10), 5, 5)


def test_exponential_sweep_is_geometric():
    s = exponential(1e-7, 10.0, 100)
    ratios = [s(t + 1) / s(t) for t in range(99)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)
