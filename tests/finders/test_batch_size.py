"""Batch-size search: the pure search, the scaling rules, and a real measured run on the CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from superconverge.finders import SCALING_ADVICE, find_batch_size, scale_for_batch, search_batch_size
from superconverge.finders.memory import release_free_memory, reset_cpu_peak, status
from superconverge.train.checkpoint import rng_state, set_rng_state


@given(limit=st.integers(1, 5000), start=st.integers(1, 300), max_batch=st.integers(1, 4096))
def test_search_finds_the_limit_within_a_sixteenth(limit, start, max_batch):
    tried = []

    def fits(b):
        tried.append(b)
        return b <= limit

    best = search_batch_size(fits, start=start, max_batch=max_batch)
    assert all(1 <= b <= max_batch for b in tried)
    assert best is not None and fits(best)
    target = min(limit, max_batch)
    assert best <= target
    assert target - best <= max(8, best // 16)
    assert len(tried) <= 30


def test_search_returns_none_when_nothing_fits():
    assert search_batch_size(lambda b: False, start=16) is None


@pytest.mark.parametrize("rule, reduction, expected", [
    ("linear", "mean", (1.6, 5e-4)),
    ("sqrt", "mean", (0.8, 1e-3)),
    ("linear", "sum", (0.4, 2e-3)),
    ("sqrt", "sum", (0.2, 4e-3)),
])
def test_scaling_rules(rule, reduction, expected):
    assert scale_for_batch(0.4, 5e-4, 128, 512, rule=rule, reduction=reduction) == pytest.approx(expected)


@given(lr=st.floats(1e-4, 10), wd=st.floats(1e-6, 1e-2), b0=st.integers(1, 2048), b1=st.integers(1, 2048),
       rule=st.sampled_from(["linear", "sqrt"]), reduction=st.sampled_from(["mean", "sum"]))
def test_every_rule_keeps_the_weight_decay_per_epoch(lr, wd, b0, b1, rule, reduction):
    # Each step decays the weights by lr * wd (for a summed loss too: its mean-form LR is lr * B and
    # its mean-form decay wd / B), and an epoch has ~1/B steps: lr * wd / B must not change.
    lr1, wd1 = scale_for_batch(lr, wd, b0, b1, rule=rule, reduction=reduction)
    assert lr1 * wd1 / b1 == pytest.approx(lr * wd / b0)
    if rule == "linear":  # and the LR per example stays: lr / B for a mean, lr for a sum
        per_example = (lambda l, b: l / b) if reduction == "mean" else (lambda l, b: l)  # noqa: E731
        assert per_example(lr1, b1) == pytest.approx(per_example(lr, b0))


def test_the_sum_form_keeps_the_update_per_example():
    # SGD on a summed loss: the update is lr * sum of per-example gradients, so doubling the batch
    # with the same lr makes the same first-order update as two half batches.
    lr, wd = scale_for_batch(0.01, 1e-4, 64, 128, reduction="sum")
    assert lr == 0.01 and wd == pytest.approx(2e-4)


def test_scaling_rejects_bad_values():
    with pytest.raises(ValueError):
        scale_for_batch(0.1, 1e-4, 0, 128)
    with pytest.raises(ValueError):
        scale_for_batch(0.1, 1e-4, 64, 128, rule="cube")  # type: ignore[arg-type]


def wide() -> nn.Module:
    return nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def sample(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, 256), torch.randint(0, 10, (b,))


@pytest.mark.skipif(not reset_cpu_peak(), reason="needs Linux's resettable peak RSS")
def test_real_search_on_the_cpu_respects_the_budget(tmp_path):
    # The budget is for the whole process; give the step ~128 MiB above what it holds now. Each
    # example keeps a few 1024-wide activations and their gradients in fp32 (~25 KiB).
    release_free_memory()  # what earlier tests freed would otherwise count as headroom
    base = status("VmRSS")
    budget = int((base + 128 * 2**20) / 0.9)
    result = find_batch_size(wide, lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
                             F.cross_entropy, sample, memory_budget_bytes=budget, margin=0.1, max_batch=8192)
    chosen = next(t for t in result.trials if t.batch_size == result.batch_size)
    assert chosen.fits and chosen.measured and chosen.peak_bytes <= 0.9 * budget
    bigger = [t for t in result.trials if t.batch_size > result.batch_size]
    assert bigger and not any(t.fits for t in bigger)
    assert 16 <= result.batch_size < 8192
    assert result.method.startswith("peak RSS")
    assert all(t.images_per_second > 0 for t in result.trials if t.measured)
    assert result.advice.endswith(SCALING_ADVICE)
    assert "Batch" in result.advice and "Myrtle" in result.advice
    json.dumps(result.to_dict(), allow_nan=False)
    assert result.plot(tmp_path / "bs.png").stat().st_size > 10_000


def test_a_budget_too_small_for_anything_is_a_clear_error():
    with pytest.raises(ValueError, match="even a batch of 1 does not fit"):
        find_batch_size(wide, lambda m: torch.optim.SGD(m.parameters(), lr=0.1), F.cross_entropy, sample,
                        memory_budget_bytes=2**20, max_batch=64)


def test_max_batch_caps_the_search_and_the_rngs_are_put_back():
    state = rng_state()
    result = find_batch_size(wide, lambda m: torch.optim.SGD(m.parameters(), lr=0.1), F.cross_entropy, sample,
                             memory_budget_bytes=64 * 2**30, max_batch=64)
    assert result.batch_size == 64 and "max_batch" in result.advice
    assert math.isfinite(result.trials[-1].images_per_second)
    after = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(after, torch.rand(3))
