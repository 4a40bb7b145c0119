"""Suggestions on synthetic LR range test curves whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superconverge.finders import suggest as S

LRS = np.geomspace(1e-7, 10, 100)


def curve(lrs: np.ndarray, *, center: float = -1.5, sharp: float = 2.5, drop: float = 0.5,
          blowup: float = 0.3, level: float = 2.3) -> np.ndarray:
    """A range test shape: flat, a sigmoid descent centred at 10**center, then a blow-up."""
    x = np.log10(lrs)
    return level - drop / (1 + np.exp(-(x - center) * sharp)) + np.exp(4 * (x - blowup))


def cut(lrs: np.ndarray, losses: np.ndarray, factor: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Stop where the finder would: the running average passing factor x its best."""
    s = S.ema(losses)
    bad = s > factor * np.minimum.accumulate(s)
    end = int(np.argmax(bad)) + 1 if bad.any() else len(s)
    return lrs[:end], losses[:end]


def test_ema_is_the_debiased_running_average():
    values = np.array([3.0, 1.0, 2.0])
    m, out = 0.0, []
    for t, v in enumerate(values):
        m = 0.9 * m + 0.1 * v
        out.append(m / (1 - 0.9 ** (t + 1)))
    np.testing.assert_allclose(S.ema(values, 0.9), out)
    assert S.ema(values, 0.0).tolist() == values.tolist()


def test_minimum_div10_finds_a_parabola_minimum():
    lrs = np.geomspace(1e-5, 1, 200)
    assert np.log10(S.minimum_div10(lrs, (np.log10(lrs) + 2) ** 2)) == pytest.approx(-3, abs=0.05)


def test_steepest_finds_the_sigmoid_centre_in_log_lr():
    lrs, losses = cut(LRS, curve(LRS, center=-2.0))
    assert np.log10(S.steepest(lrs, losses)) == pytest.approx(-2.0, abs=0.15)


def test_steepest_is_measured_against_log_lr_for_a_linear_sweep_too():
    # The same curve sampled linearly in LR: against linear LR the slope would peak elsewhere.
    lin = np.linspace(1e-4, 1.0, 400)
    assert np.log10(S.steepest(lin, curve(lin, center=-1.5, blowup=2))) == pytest.approx(-1.5, abs=0.15)


def test_valley_lies_between_steepest_and_the_minimum():
    lrs, losses = cut(LRS, curve(LRS))
    bottom = lrs[np.argmin(S.denoise(lrs, losses))]
    assert S.steepest(lrs, losses) <= S.valley(lrs, losses) <= bottom


def test_clean_curve_suggests_one_kernel_width_below_where_the_loss_turns_up():
    lrs, losses = cut(LRS, curve(LRS))
    names = S.suggest_all(lrs, losses)
    assert set(names) == {"minimum_div10", "steepest", "valley", "minimum", "turn"}
    assert names["minimum_div10"] == pytest.approx(names["minimum"] / 10)
    value, band, reliable, advice = S.consensus(lrs, losses)
    assert reliable and "max_lr" in advice
    width = 8 / 40  # decades: the default kernel for a sweep over 8 decades
    assert value == pytest.approx(names["turn"] * 10**-width)
    classic = sorted(names[k] for k in ("minimum_div10", "steepest", "valley"))
    assert band == (pytest.approx(classic[1]), pytest.approx(names["turn"]))
    # past the steepest point, below the point where the loss has climbed back a quarter of its descent
    assert names["steepest"] < value < names["turn"] and names["minimum"] <= names["turn"]
    level = S.denoise(lrs, losses)
    drop = level[: np.argmin(level) + 1].max() - level.min()
    assert np.interp(np.log10(value), np.log10(lrs), level) < level.min() + S.TURN_AT * drop


def test_turn_is_the_first_lr_past_the_minimum_a_quarter_of_the_descent_back_up():
    lrs = np.geomspace(1e-4, 1, 200)
    x = np.log10(lrs)
    # a flat bottom from 1e-3 to 1e-1.5, then a wall: 2 -> 1 -> rising
    losses = 1 + np.clip(-3 - x, 0, None) + np.clip(x + 1.5, 0, None) * 2
    turn = S.turn(lrs, losses)
    level = S.denoise(lrs, losses)
    bottom = int(np.argmin(level))
    rise = 0.25 * (level[:bottom + 1].max() - level[bottom])
    first = bottom + np.flatnonzero(level[bottom:] >= level[bottom] + rise)[0]
    assert turn == pytest.approx(lrs[first])
    assert S.minimum(lrs, losses) < turn < 10**-1.2  # to the right of the flat bottom, at the wall's foot
    assert S.turn(lrs, 2 - 0.5 * (x + 4)) == pytest.approx(lrs[-1])  # never turns up: the sweep's end


def test_noisy_curve_is_unreliable_and_says_what_to_do():
    rng = np.random.default_rng(0)
    lrs, losses = cut(LRS, curve(LRS) + rng.normal(0, 0.6, len(LRS)), factor=100)
    c = S.consensus(lrs, losses)
    assert not c.reliable
    assert "more steps" in c.advice and "larger batch" in c.advice


def test_a_loss_still_falling_at_the_end_asks_for_a_higher_end_lr():
    lrs = np.geomspace(1e-6, 1e-2, 80)
    c = S.consensus(lrs, curve(lrs, center=-2.5, blowup=5))
    assert not c.reliable and "raise end_lr" in c.advice


def test_a_loss_that_only_rises_asks_for_a_lower_start_lr_or_more_steps():
    lrs = np.geomspace(1e-1, 10, 60)
    c = S.consensus(lrs, 2 + np.exp(2 * np.log10(lrs)))
    assert not c.reliable and "lower start_lr" in c.advice and "more steps" in c.advice


def test_a_low_first_loss_does_not_flatten_the_curve():
    # a lucky first batch must not set the cap for the whole curve (it once made every point equal)
    lrs, losses = cut(LRS, curve(LRS))
    losses = losses.copy()
    losses[0] -= 0.3
    assert abs(np.log10(S.consensus(lrs, losses).value) - np.log10(S.consensus(*cut(LRS, curve(LRS))).value)) < 0.1


def test_non_finite_losses_at_the_end_are_ignored():
    lrs, losses = cut(LRS, curve(LRS))
    with_nan = np.append(losses, [np.nan, np.inf])
    more = np.append(lrs, [20.0, 40.0])
    assert S.suggest_all(more, with_nan) == S.suggest_all(lrs, losses)


@pytest.mark.parametrize("lrs, losses, match", [
    (LRS[:5], np.ones(5), "too few points"),
    (LRS, np.full(100, np.nan), "too few points"),
    (LRS, np.ones(99), "same length"),
    (LRS[::-1], np.ones(100), "strictly increasing"),
    (np.linspace(0, 1, 20), np.ones(20), "positive"),
])
def test_bad_curves_are_clear_errors(lrs, losses, match):
    with pytest.raises(ValueError, match=match):
        S.suggest_all(lrs, losses)


@settings(max_examples=40, deadline=None)
@given(center=st.floats(-4.5, -0.5), scale=st.floats(0.01, 100), shift=st.floats(-10, 10),
       lr_factor=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_suggestions_are_affine_invariant_in_loss_and_equivariant_in_lr(center, scale, shift, lr_factor, seed):
    noise = np.random.default_rng(seed).normal(0, 0.01, len(LRS))
    lrs, losses = cut(LRS, curve(LRS, center=center, blowup=center + 1.8) + noise)
    base = S.suggest_all(lrs, losses)
    moved = S.suggest_all(lrs * lr_factor, losses * scale + shift)
    for name in base:
        assert moved[name] == pytest.approx(base[name] * lr_factor, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(center=st.floats(-5, -1), sharp=st.floats(1.5, 6), drop=st.floats(0.3, 2.0), seed=st.integers(0, 2**16))
def test_on_a_noisy_u_shaped_curve_the_suggestion_sits_in_the_descent(center, sharp, drop, seed):
    rng = np.random.default_rng(seed)
    lrs, losses = cut(LRS, curve(LRS, center=center, sharp=sharp, drop=drop, blowup=center + 1.8)
                      + rng.normal(0, 0.03 * drop, len(LRS)))
    value, (low, high), reliable, _ = S.consensus(lrs, losses)
    names = S.suggest_all(lrs, losses)
    assert reliable
    assert low <= value <= high == pytest.approx(names["turn"])
    assert names["steepest"] <= value * 1.0001  # past the steepest point, below the bottom
