"""The LR range test on small real models: the sweep, its stops, and an exact restore."""

from __future__ import annotations

import json
import math
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from superconverge.finders import DataCycledWarning, LRFindResult, lr_find
from superconverge.train.checkpoint import rng_state, set_rng_state


def task(n: int = 1024, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    w = torch.randn(10, 4, generator=g)
    return x, (x @ w + 0.5 * torch.randn(n, 4, generator=g)).argmax(1)


def batches(n_batches: int = 40, size: int = 32, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = task(n_batches * size, seed)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, n_batches * size, size)]


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # BN and dropout: buffers and RNG draws for the restore to put back
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))


def sgd(model: nn.Module, **kw) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, **kw)


def test_sweep_records_the_exponential_lrs_and_suggests_inside_the_band():
    model = mlp()
    result = lr_find(model, sgd(model), F.cross_entropy, batches(100), start_lr=1e-5, end_lr=10, steps=100)
    assert isinstance(result, LRFindResult)
    n = result.steps
    np.testing.assert_allclose(result.lrs, 1e-5 * (1e6) ** (np.arange(n) / 99), rtol=1e-9)
    assert len(result.losses) == len(result.smoothed) == n
    assert result.stopped_early is None or "diverged" in result.stopped_early or "non-finite" in result.stopped_early
    assert result.band[0] <= result.suggestion <= result.band[1]
    assert set(result.suggestions) == {"minimum_div10", "steepest", "valley", "minimum", "turn"}
    assert result.seconds > 0
    # the running average is the debiased EMA of the recorded losses
    m = 0.0
    for t, (loss, smooth) in enumerate(zip(result.losses, result.smoothed)):
        if not math.isfinite(loss):
            break
        m = 0.98 * m + 0.02 * loss
        assert smooth == pytest.approx(m / (1 - 0.98 ** (t + 1)))


def test_linear_mode_spaces_the_lrs_evenly():
    model = mlp()
    result = lr_find(model, sgd(model), F.cross_entropy, batches(30), start_lr=1e-3, end_lr=1.0, steps=30,
                     mode="linear")
    np.testing.assert_allclose(result.lrs, np.linspace(1e-3, 1.0, 30)[: result.steps], rtol=1e-9)


def _state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "opt": {i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                for i, s in enumerate(opt.state.values())},
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "group_ids": [id(g) for g in opt.param_groups],
        "training": [m.training for m in model.modules()],
    }


def _assert_same(before: dict, after: dict) -> None:
    assert before["model"].keys() == after["model"].keys()
    for k in before["model"]:
        assert torch.equal(before["model"][k], after["model"][k]), k
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert before["opt"].keys() == after["opt"].keys()
    for i in before["opt"]:
        assert before["opt"][i].keys() == after["opt"][i].keys()
        for k, v in before["opt"][i].items():
            assert torch.equal(v, after["opt"][i][k]) if torch.is_tensor(v) else v == after["opt"][i][k]
    assert before["groups"] == after["groups"]
    assert before["group_ids"] == after["group_ids"]
    assert before["training"] == after["training"]


def _draws() -> tuple:
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)]


def _assert_same_rng(before: dict, after: dict) -> None:
    assert torch.equal(before["torch"], after["torch"])
    assert before["numpy"].keys() == after["numpy"].keys()
    for k, v in before["numpy"].items():
        assert torch.equal(v, after["numpy"][k]) if torch.is_tensor(v) else v == after["numpy"][k], k
    assert before["python"] == after["python"]


@pytest.mark.parametrize("make_opt", [
    lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4),
    lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
], ids=["sgd", "adam"])
@pytest.mark.parametrize("end_lr", [10.0, 1e8], ids=["diverges", "ends-in-nan"])
def test_everything_is_restored_bitwise(make_opt, end_lr):
    model = mlp()
    opt = make_opt(model)
    for x, y in batches(2, seed=1):  # real steps first, so there is optimizer state to keep
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()  # a mode the sweep must put back
    before = _state(model, opt)
    rng = rng_state()
    result = lr_find(model, opt, F.cross_entropy, batches(60), start_lr=1e-4, end_lr=end_lr, steps=60)
    if end_lr > 1e6:
        assert result.stopped_early is not None
    _assert_same(before, _state(model, opt))
    after = _draws()
    set_rng_state(rng)
    assert after == _draws()


def squared(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out**2).mean()  # overflows to inf within a few steps at absurd LRs


def test_restored_after_a_nan_in_the_weights():
    model = mlp()
    opt = sgd(model)
    before = _state(model, opt)
    result = lr_find(model, opt, squared, batches(60), start_lr=1e-8, end_lr=1e12, steps=60, diverge=1e300)
    assert "non-finite" in result.stopped_early
    assert not math.isfinite(result.losses[-1])
    _assert_same(before, _state(model, opt))


@pytest.mark.parametrize("make_opt", [
    lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4),
    lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
], ids=["sgd", "adam"])
def test_restored_after_the_loss_turns_nan_mid_sweep(make_opt):
    model = mlp()
    opt = make_opt(model)
    x, y = batches(1, seed=1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.step()  # one real step: momentum buffers / Adam moments for the restore to keep
    before, rng = _state(model, opt), rng_state()
    k = 15
    data = batches(40)
    data[k] = (torch.full_like(data[k][0], math.nan), data[k][1])  # BN's running stats turn NaN too

    def loss_fn(out, y):  # draws from NumPy's and Python's RNGs, as augmentations do
        return F.cross_entropy(out, y) + 0 * np.random.rand() + 0 * random.random()

    result = lr_find(model, opt, loss_fn, data, start_lr=1e-5, end_lr=1e-2, steps=40)
    assert result.steps == k + 1 and math.isnan(result.losses[k])
    assert all(math.isfinite(v) for v in result.losses[:k])
    assert "non-finite" in result.stopped_early
    _assert_same(before, _state(model, opt))
    _assert_same_rng(rng, rng_state())


def test_restored_when_the_loss_function_raises():
    model = mlp()
    opt = sgd(model)
    before = _state(model, opt)
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("boom")
        return F.cross_entropy(out, y)

    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, opt, loss_fn, batches(20), steps=20)
    _assert_same(before, _state(model, opt))


def test_a_sweep_that_blows_up_at_once_is_too_short_to_suggest_anything():
    model = mlp()
    opt = sgd(model)
    before = _state(model, opt)
    with pytest.raises(ValueError, match="at least 10 are needed to suggest anything. Lower start_lr"):
        lr_find(model, opt, squared, batches(40), start_lr=1e-4, end_lr=1e30, steps=40, diverge=1e300)
    _assert_same(before, _state(model, opt))


def test_divergence_stops_the_sweep():
    model = mlp()
    result = lr_find(model, sgd(model), F.cross_entropy, batches(100), start_lr=1e-4, end_lr=1e4, steps=100)
    assert result.steps < 100
    assert "diverged" in result.stopped_early or "non-finite" in result.stopped_early


def test_nan_from_the_first_step_blames_the_model_or_data():
    model = mlp()
    opt = sgd(model)
    before = _state(model, opt)
    bad = [(torch.full((32, 10), math.nan), torch.zeros(32, dtype=torch.long))] * 20
    with pytest.raises(ValueError, match="model or the data is broken, not the LR"):
        lr_find(model, opt, F.cross_entropy, bad, steps=20)
    _assert_same(before, _state(model, opt))


def test_nan_gradients_at_a_finite_first_loss_blame_the_model_or_data():
    model = mlp()
    opt = sgd(model)
    before = _state(model, opt)

    def loss_fn(out, y):  # sqrt at 0: the value stays finite, its gradient is 0 * inf = NaN
        return F.cross_entropy(out, y) + (out * 0).sqrt().sum()

    with pytest.raises(ValueError, match=r"finite \(.*\) but its gradients are not at the very first step.*"
                                         "model or the data is broken, not the LR"):
        lr_find(model, opt, loss_fn, batches(20), steps=20)
    _assert_same(before, _state(model, opt))


@pytest.mark.parametrize("kwargs, match", [
    ({"start_lr": 1.0, "end_lr": 1.0}, "must be larger than start_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "must be larger than start_lr"),
    ({"start_lr": 0.0}, "start_lr must be a positive"),
    ({"steps": 5}, "too few to suggest anything"),
    ({"mode": "cos"}, "mode must be"),
    ({"accumulate": 0}, "accumulate"),
    ({"smooth": 1.0}, "smooth"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    model = mlp()
    with pytest.raises(ValueError, match=match):
        lr_find(model, sgd(model), F.cross_entropy, batches(5), **kwargs)


def test_several_param_groups_need_param_group():
    model = mlp()
    opt = torch.optim.SGD([{"params": model[0].parameters()},
                           {"params": [*model[1].parameters(), *model[4].parameters()], "lr": 0.01}],
                          lr=0.05, momentum=0.9)
    with pytest.raises(ValueError, match="has 2 param groups; say which to sweep with param_group"):
        lr_find(model, opt, F.cross_entropy, batches(20), steps=20)
    seen = []

    def loss_fn(out, y):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        return F.cross_entropy(out, y)

    result = lr_find(model, opt, loss_fn, batches(20), steps=20, end_lr=1.0, param_group=1)
    assert {lr0 for lr0, _ in seen} == {0.05}  # the other group keeps its LR
    assert [lr1 for _, lr1 in seen] == pytest.approx(list(result.lrs))
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.01]


def test_param_group_all_sweeps_every_group_and_a_bad_index_is_a_clear_error():
    model = mlp()
    opt = torch.optim.SGD([{"params": model[0].parameters()},
                           {"params": [*model[1].parameters(), *model[4].parameters()], "lr": 0.01}],
                          lr=0.05, momentum=0.9)
    seen = []

    def loss_fn(out, y):
        seen.append([g["lr"] for g in opt.param_groups])
        return F.cross_entropy(out, y)

    result = lr_find(model, opt, loss_fn, batches(20), steps=20, end_lr=1.0, param_group="all")
    for i in range(2):
        assert [lrs[i] for lrs in seen] == pytest.approx(list(result.lrs))
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.01]
    for bad in (2, -1, "first", True):
        with pytest.raises(ValueError, match=f"param_group must be an index in 0..1 or 'all', got {bad!r}"):
            lr_find(model, opt, F.cross_entropy, batches(20), steps=20, param_group=bad)


def test_data_that_runs_out_is_cycled_with_a_warning():
    model = mlp()
    with pytest.warns(DataCycledWarning, match="ran out after 5 batches but the sweep needs 30; cycling"):
        result = lr_find(model, sgd(model), F.cross_entropy, batches(5), steps=30, end_lr=1.0)
    assert result.steps == 30


def test_a_one_shot_iterator_is_replayed():
    model = mlp()
    items = batches(6)
    with pytest.warns(DataCycledWarning):
        result = lr_find(model, sgd(model), F.cross_entropy, iter(items), steps=20, end_lr=1.0)
    assert result.steps == 20


def test_enough_data_gives_no_warning():
    model = mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataCycledWarning)
        lr_find(model, sgd(model), F.cross_entropy, batches(20), steps=20, end_lr=1.0)


def test_accumulate_takes_that_many_batches_per_step_and_averages_the_loss():
    torch.manual_seed(0)  # no BN or dropout: a batch's loss depends on the weights only
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    data = batches(20)
    served = []

    def feed():
        for b in data:
            served.append(b)
            yield b

    result = lr_find(model, sgd(model), F.cross_entropy, feed(), steps=10, accumulate=2, start_lr=1e-9,
                     end_lr=1e-8, precision="fp32")  # "auto" is bf16 on CPUs that have it: compare in fp32
    assert len(served) == 20
    with torch.no_grad():  # at such tiny LRs the first step's loss is that of the initial weights
        first = (F.cross_entropy(model(data[0][0]), data[0][1]) + F.cross_entropy(model(data[1][0]), data[1][1])) / 2
    assert result.losses[0] == pytest.approx(float(first), rel=1e-6)


def test_validation_mode_records_the_validation_loss():
    model = mlp()
    val = batches(2, seed=7)
    result = lr_find(model, sgd(model), F.cross_entropy, batches(20), steps=20, end_lr=1.0, val_data=val)
    train = lr_find(model, sgd(model), F.cross_entropy, batches(20), steps=20, end_lr=1.0)
    assert result.losses != train.losses
    assert result.extra["validation"] is True


def test_validation_data_that_draws_from_the_rngs_leaves_them_as_they_were():
    def val():  # e.g. a loader that shuffles or augments with the global RNGs
        for _ in range(2):
            x = torch.randn(32, 10) + float(np.random.rand()) + random.random()
            yield x, x[:, :4].argmax(1)

    model = mlp()
    opt = sgd(model)
    before, rng = _state(model, opt), rng_state()
    lr_find(model, opt, F.cross_entropy, batches(20), steps=20, end_lr=1.0, val_data=val())
    _assert_same(before, _state(model, opt))
    _assert_same_rng(rng, rng_state())


def test_a_feed_is_read_epoch_after_epoch():
    from superconverge.train.feed import LoaderFeed

    data = batches(8)
    epochs = []

    def source(epoch):
        epochs.append(epoch)
        return data

    model = mlp()
    with pytest.warns(DataCycledWarning):
        lr_find(model, sgd(model), F.cross_entropy, LoaderFeed(source, batches_per_epoch=8), steps=20, end_lr=1.0)
    assert epochs == [0, 1, 2]


def test_the_sample_images_with_the_tiny_model():
    from superconverge.train.feed import ArrayFeed
    from superconverge.train.models import build_model
    from superconverge.train.run import load_data

    data = load_data("sample")
    feed = ArrayFeed(torch.from_numpy(data.train_images[:640]), torch.from_numpy(data.train_labels[:640]), 32)
    model = build_model("tiny")
    result = lr_find(model, sgd(model), F.cross_entropy, feed, steps=20, start_lr=1e-4, end_lr=10)
    assert result.steps >= 10


def test_result_round_trips_through_json_and_plots(tmp_path):
    model = mlp()
    result = lr_find(model, sgd(model), squared, batches(60), start_lr=1e-8, end_lr=1e12, steps=60,
                     diverge=1e300)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["losses"][-1] is None  # the non-finite last loss
    assert data["suggestion"] == result.suggestion and data["band"] == list(result.band)
    path = result.plot(tmp_path / "curve.png")
    assert path.stat().st_size > 10_000


def test_top_level_lr_find_is_lazy_and_the_import_stays_torch_free():
    import subprocess
    import sys

    import superconverge
    from superconverge import finders

    code = "import superconverge, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert superconverge.lr_find is finders.lr_find
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        superconverge.nope  # noqa: B018
