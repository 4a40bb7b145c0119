"""Parity with schedulers that are not in PyTorch: fastai's fit_one_cycle and HF's WSD.

Neither library is a dependency, so each reference below is written from the
library's documented formula and compared with the preset at every step.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from superconverge.optim import fit_one_cycle, hf_wsd


def sgd(lr=0.1):
    return torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=lr, momentum=0.9)


def fastai_cos(start, end, pos):
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def fastai_combined(pct, start, middle, end, pos):
    if pos < pct:
        return fastai_cos(start, middle, pos / pct)
    return fastai_cos(middle, end, (pos - pct) / (1 - pct))


@settings(max_examples=30, deadline=None)
@given(total=st.integers(4, 500), lr_max=st.floats(1e-3, 3.0), pct=st.floats(0.1, 0.9))
def test_fit_one_cycle_matches_fastai_formula(total, lr_max, pct):
    opt = sgd()
    sched = fit_one_cycle(opt, total, lr_max, pct_start=pct)
    for i in range(total):
        pos = i / total
        lr = fastai_combined(pct, lr_max / 25, lr_max, lr_max / 1e5, pos)
        mom = fastai_combined(pct, 0.95, 0.85, 0.95, pos)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-9)
        assert opt.param_groups[0]["momentum"] == pytest.approx(mom, rel=1e-9)
        opt.step()
        sched.step()


def hf_wsd_factor(step, warmup, stable, decay, warmup_type, decay_type, min_ratio):
    if step < warmup:
        p = step / max(1, warmup)
        f = {"linear": p, "cosine": 0.5 * (1 - math.cos(math.pi * p)), "1-sqrt": 1 - math.sqrt(1 - p)}[warmup_type]
        return max(0.0, f * (1 - min_ratio) + min_ratio)
    if step < warmup + stable:
        return 1.0
    if step < warmup + stable + decay:
        p = (step - warmup - stable) / max(1, decay)
        f = {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "1-sqrt": 1 - math.sqrt(p)}[decay_type]
        return max(0.0, f * (1 - min_ratio) + min_ratio)
    return min_ratio


@settings(max_examples=40, deadline=None)
@given(
    warmup=st.integers(0, 50), stable=st.integers(0, 50), decay=st.integers(1, 50),
    warmup_type=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    decay_type=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    min_ratio=st.sampled_from([0.0, 0.1]),
)
def test_hf_wsd_matches_transformers_formula(warmup, stable, decay, warmup_type, decay_type, min_ratio):
    m1, m2 = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW([{"params": m1.parameters(), "lr": 1e-3}, {"params": m2.parameters(), "lr": 5e-4}])
    sched = hf_wsd(opt, warmup, decay, num_training_steps=warmup + stable + decay,
                   warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=min_ratio)
    total = warmup + stable + decay
    for step in range(total + 1):
        f = hf_wsd_factor(step, warmup, stable, decay, warmup_type, decay_type, min_ratio)
        # each group keeps its own base LR
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * f, rel=1e-9, abs=1e-18)
        assert opt.param_groups[1]["lr"] == pytest.approx(5e-4 * f, rel=1e-9, abs=1e-18)
        if step < total:
            opt.step()
            sched.step()


def test_hf_wsd_rejects_overlapping_phases():
    with pytest.raises(ValueError, match="overlap"):
        hf_wsd(sgd(), 60, 60, num_training_steps=100)
