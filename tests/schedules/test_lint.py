"""lint: overlapping joins are flagged; a run extended with ``extend`` is not an overlap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from superconverge.schedules import cosine, join, linear, one_cycle
from superconverge.schedules.compose import Warped, extend
from superconverge.schedules.lint import lint


def overlaps(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "overlap" in w]


@settings(max_examples=40, deadline=None)
@given(total=st.integers(10, 400), frac=st.floats(0.05, 0.95), more=st.integers(1, 400),
       three_phase=st.booleans())
def test_a_one_cycle_extended_mid_way_is_not_an_overlap(total, frac, more, three_phase):
    at = max(1, min(total - 1, round(frac * total)))
    policy = {k: extend(s, at_step=at, total_steps=total + more)
              for k, s in one_cycle(total, 0.1, three_phase=three_phase).items()}
    assert lint(policy, run_steps=total + more) == []


def test_extending_twice_is_not_an_overlap():
    lr = extend(extend(one_cycle(100, 0.1)["lr"], at_step=50, total_steps=150), at_step=120, total_steps=200)
    assert overlaps(lint({"lr": lr}, run_steps=200)) == []


def test_a_genuine_overlap_still_warns():
    cut = join([linear(0.01, 0.1, 20), cosine(0.1, 0.0, 80)], [10])
    expected = ["lr: phase 0 lasts 20 steps but phase 1 starts after 10: the phases overlap and phase 0 is cut off"]
    assert overlaps(lint({"lr": cut})) == expected
    # extending it keeps the one warning about its own overlap, once
    assert overlaps(lint({"lr": extend(cut, at_step=50, total_steps=150)})) == expected


def test_a_join_that_restarts_the_cut_schedule_elsewhere_still_warns():
    base = cosine(0.1, 0.0, 100)
    restarted = join([base, Warped(base, 0.0, 0.5, 100.0)], [50])  # picks up at step 0, not at the cut (50)
    assert overlaps(lint({"lr": restarted}))


def test_an_overlap_in_the_last_part_of_a_join_warns():
    inner = join([linear(0.1, 0.1, 20), cosine(0.1, 0.0, 80)], [10])
    assert overlaps(lint({"lr": join([linear(0.01, 0.1, 20), inner], [20])}))
