"""The lrfree extra: schedule-free SGD/AdamW, Prodigy and D-Adaptation Adam, built by name and fit exactly."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from superconverge.cli.errors import as_cli_error
from superconverge.schedules import constant
from superconverge.train import checkpoint as ckpt
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import FitOptions, evaluate, fit, recompute_bn_stats
from superconverge.train.recipe import LRFREE_OPTIMIZERS, SCHEDULE_FREE, TrainConfig, build_policy
from superconverge.train.runtime import build_optimizer, is_schedule_free

OPTS = FitOptions(progress=False, precision="fp32")


def needs(name: str) -> None:
    pytest.importorskip(LRFREE_OPTIMIZERS[name].split(".")[0])


def blobs(n=256, seed=0):
    """Ten classes, each a fixed random 8x8 image plus noise (as in test_loop)."""
    prototypes = torch.randint(0, 200, (10, 8, 8, 3), generator=torch.Generator().manual_seed(99))
    labels = torch.arange(n) % 10
    noise = torch.randint(0, 56, (n, 8, 8, 3), generator=torch.Generator().manual_seed(seed))
    return (prototypes[labels] + noise).to(torch.uint8), labels


def bn_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


@pytest.mark.parametrize("name, cls, lr", [("sgd-schedulefree", "SGDScheduleFree", 1.0),
                                           ("adamw-schedulefree", "AdamWScheduleFree", 0.0025),
                                           ("prodigy", "Prodigy", 1.0), ("dadapt-adam", "DAdaptAdam", 1.0)])
def test_each_builds_at_its_package_defaults_and_trains(name, cls, lr):
    needs(name)
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = build_optimizer(name, model.parameters())  # no lr: the package's default
    assert type(opt).__name__ == cls and opt.param_groups[0]["lr"] == lr
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()  # a schedule-free optimizer comes in train mode, ready to step
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * losses[0]  # the last few: D-Adaptation overshoots on the way
    assert is_schedule_free(opt) == (name in SCHEDULE_FREE)


def test_momentum_weight_decay_and_lr_reach_the_package_optimizer():
    needs("sgd-schedulefree")
    needs("prodigy")
    params = [nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer("sgd-schedulefree", params, lr=5.0, momentum=0.95, weight_decay=1e-3).param_groups[0]
    assert (sgd["lr"], sgd["momentum"], sgd["weight_decay"]) == (5.0, 0.95, 1e-3)
    prodigy = build_optimizer("prodigy", params, lr=0.5, momentum=0.8, beta2=0.99, weight_decay=0.01).param_groups[0]
    assert (prodigy["lr"], prodigy["betas"], prodigy["weight_decay"]) == (0.5, (0.8, 0.99), 0.01)


def test_a_torch_optimizer_still_needs_an_lr():
    with pytest.raises(ValueError, match="the sgd optimizer needs a learning rate"):
        build_optimizer("sgd", [nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize("name", list(LRFREE_OPTIMIZERS))
def test_a_missing_package_names_the_extra_to_install(name, monkeypatch):
    package = LRFREE_OPTIMIZERS[name].split(".")[0]
    monkeypatch.setitem(sys.modules, package, None)  # what an absent package looks like to import
    install = rf"pip install 'superconverge\[lrfree\]' \(or pip install {package}\)"
    with pytest.raises(ImportError, match=rf"the {name} optimizer needs the {package} package .*{install}") as err:
        build_optimizer(name, [nn.Parameter(torch.zeros(3))])
    assert as_cli_error(err.value).exit_code == 2  # a ValueError too: bad input on the command line


@pytest.mark.parametrize("name", SCHEDULE_FREE)
def test_schedule_free_takes_only_a_constant_schedule(name):
    with pytest.raises(ValueError, match=f"{name} averages its weights .*--schedule constant.*not one-cycle"):
        TrainConfig(optimizer=name)
    config = TrainConfig(optimizer=name, schedule="constant", max_lr=2.0, warmup_epochs=1)
    lr = build_policy(config, steps_per_epoch=10)["lr"]  # its warmup is the scheduled LR's
    assert lr(0) == pytest.approx(0.2) and lr(10) == lr(299) == 2.0


@pytest.mark.parametrize("name", ["prodigy", "dadapt-adam"])
def test_lr_free_refuses_a_cycle_and_takes_a_decay_of_its_multiplier(name):
    for schedule in ("one-cycle", "fastai-one-cycle", "cyclical"):
        with pytest.raises(ValueError, match=f"{name} estimates its own step size.*--schedule constant or cosine"):
            TrainConfig(optimizer=name, schedule=schedule)
    lr = build_policy(TrainConfig(optimizer=name, schedule="cosine", max_lr=1.0), steps_per_epoch=10)["lr"]
    assert lr(0) == 1.0 and lr(299) < 1e-3


def record_modes(optimizer, seen):
    def on_epoch(row):
        seen.append(optimizer.param_groups[0]["train_mode"])
    return on_epoch


def test_schedule_free_fit_evaluates_the_averaged_weights_and_trains_the_others():
    needs("sgd-schedulefree")
    images, labels = blobs()
    train, test = ArrayFeed(images, labels, 32, seed=1), ArrayFeed(*blobs(seed=5), 64, shuffle=False)
    model = bn_mlp()
    opt = build_optimizer("sgd-schedulefree", model.parameters(), lr=0.5)
    modes = []
    history = fit(model, opt, {"lr": constant(0.5)}, train, epochs=3, test=test, options=OPTS,
                  on_epoch=record_modes(opt, modes))
    assert modes == [False, False, False]  # eval mode at every evaluation; the package's step refuses eval mode,
    assert len(history.steps) == 3 * len(train)  # so every epoch after the first trained in train mode again
    assert history.epochs[-1]["test_accuracy"] > 0.9
    averaged = evaluate(model, test)  # fit returns the model holding the weights it evaluated
    assert averaged == pytest.approx((history.epochs[-1]["test_loss"], history.epochs[-1]["test_accuracy"]))
    opt.train()
    assert evaluate(model, test)[0] != pytest.approx(averaged[0])  # the training weights are others


class Killed(Exception):
    """Stands in for the process being killed."""


class KilledAfter:
    """``feed`` whose ``epoch`` dies after ``n`` batches (once), as in test_loop."""

    def __init__(self, feed, n, epoch=0):
        self.feed, self.n, self.epoch, self.fired = feed, n, epoch, False

    def __len__(self):
        return len(self.feed)

    def __call__(self, epoch, start_batch=0, shard=(0, 1)):
        for i, batch in enumerate(self.feed(epoch, start_batch, shard)):
            if epoch == self.epoch and i == self.n and not self.fired:
                self.fired = True
                raise Killed
            yield batch


@pytest.mark.parametrize("name, kill_at, mode", [("sgd-schedulefree", 0, "eval"),  # kill_at: a batch of epoch 1
                                                  ("adamw-schedulefree", 5, "train")])
def test_a_schedule_free_run_killed_and_resumed_ends_bitwise_identical(tmp_path, name, kill_at, mode):
    """Killed at epoch 1's first batch it resumes from the epoch-end checkpoint (eval mode), at its
    sixth from the one of step 11 (train mode); either way it ends as the run that was not killed."""
    needs(name)
    train = ArrayFeed(*blobs(), 32, seed=1)  # 8 steps per epoch
    options = FitOptions(progress=False, precision="fp32", checkpoint_every=3)

    def run(feed, run_dir, resume=False):
        model = bn_mlp()
        opt = build_optimizer(name, model.parameters(), lr=0.5 if name == "sgd-schedulefree" else 0.01)
        history = fit(model, opt, {"lr": constant(opt.param_groups[0]["lr"])}, feed, epochs=3, options=options,
                      run_dir=run_dir, resume=resume)
        return model, opt, history

    whole = run(train, tmp_path / "whole")
    killed = KilledAfter(train, kill_at, epoch=1)
    with pytest.raises(Killed):
        run(killed, tmp_path / "killed")
    saved = ckpt.load(tmp_path / "killed" / "checkpoint.pt")
    assert saved["optimizer"]["param_groups"][0]["train_mode"] == (mode == "train")
    resumed = run(killed, tmp_path / "killed", resume=True)
    for a, b in zip(whole[0].state_dict().values(), resumed[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)  # weights and batch-norm statistics
    for a, b in zip(whole[1].state.values(), resumed[1].state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole[1].param_groups[0]["train_mode"] is resumed[1].param_groups[0]["train_mode"] is False
    assert whole[2].steps == resumed[2].steps


@torch.no_grad()
def test_recompute_bn_stats_averages_the_statistics_of_the_current_weights_over_the_batches():
    images, labels = blobs(n=160)
    feed = ArrayFeed(images, labels, 32, seed=3)  # 5 batches
    model = bn_mlp()
    bn = model[2]
    bn.running_mean.fill_(7.0)  # stale statistics, as those gathered for other weights
    bn.running_var.fill_(7.0)
    model.eval()
    assert recompute_bn_stats(model, feed, epoch=2, batches=4)
    features = [model[1](model[0](x)) for x, _ in list(feed(2))[:4]]  # what the BN layer sees in each batch
    assert torch.allclose(bn.running_mean, torch.stack([f.mean(0) for f in features]).mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, torch.stack([f.var(0) for f in features]).mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # restored


def test_recompute_bn_stats_leaves_a_model_without_batch_norm_and_its_data_alone():
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 10))

    def feed(epoch, start_batch=0, shard=(0, 1)):
        raise AssertionError("no batch should be read")

    assert recompute_bn_stats(model, feed) is False
