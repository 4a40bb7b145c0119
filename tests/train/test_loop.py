"""The fit loop: learning, accumulation, history, divergence guard, evaluation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from superconverge.optim import Scheduler
from superconverge.schedules import constant, join, one_cycle
from superconverge.train import checkpoint as ckpt
from superconverge.train.feed import ArrayFeed, LoaderFeed
from superconverge.train.loop import (DivergedError, FitOptions, _guard, _Position, _restore, _save, _step,
                                      cross_entropy, evaluate, fit, steps_per_epoch)
from superconverge.train.records import History

OPTS = FitOptions(progress=False, precision="fp32")


def blobs(n=256, seed=0):
    """Ten classes, each a fixed random 8x8 image plus noise: a task a small net learns in a few steps."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randint(0, 200, (10, 8, 8, 3), generator=torch.Generator().manual_seed(99))
    labels = torch.arange(n) % 10
    noise = torch.randint(0, 56, (n, 8, 8, 3), generator=g)
    return (prototypes[labels] + noise).to(torch.uint8), labels


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10))


def test_fit_learns_and_records_history():
    images, labels = blobs()
    train = ArrayFeed(images, labels, 32, seed=1)
    test = ArrayFeed(*blobs(seed=5), 64, shuffle=False)  # fresh noise: held-out examples
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, opt, one_cycle(3 * len(train), 0.05), train, epochs=3, test=test, options=OPTS)
    assert len(history.steps) == 3 * len(train)
    assert [r["epoch"] for r in history.epochs] == [0, 1, 2]
    assert history.epochs[-1]["test_accuracy"] > 0.9
    assert history.steps[0]["lr"] == pytest.approx(0.05 / 25)
    assert {"momentum", "loss"} <= set(history.steps[0])


def test_accumulation_steps_once_per_group_and_on_the_last_partial_group():
    images, labels = blobs(n=320)
    train = ArrayFeed(images, labels, 32)  # 10 batches per epoch
    assert steps_per_epoch(train, 4) == 3
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    options = FitOptions(progress=False, precision="fp32", accumulate=4)
    history = fit(model, opt, one_cycle(2 * 3, 0.1), train, epochs=2, options=options)
    assert len(history.steps) == 6


def test_divergence_stops_with_step_and_lr_and_keeps_the_last_good_checkpoint(tmp_path):
    images, labels = blobs()
    train = ArrayFeed(images, labels, 32)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    per_epoch = len(train)
    policy = {"lr": join([constant(0.01), constant(1e6)], [per_epoch])}
    with pytest.raises(DivergedError, match=r"at step \d+ \(epoch 1, lr 1e\+06\).*last good checkpoint"):
        fit(model, opt, policy, train, epochs=3, options=OPTS, run_dir=tmp_path)
    saved = ckpt.load(tmp_path / "checkpoint.pt")
    assert saved["position"]["epoch"] == 1 and saved["position"]["step"] == per_epoch
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def stops_at(losses: list[float], factor: float = 10.0) -> int | None:
    """The step at which the divergence guard stops a run with these losses, or None."""
    pos = _Position()
    for loss in losses:
        try:
            _guard(loss, pos, factor, 0.1, None)
        except DivergedError:
            return pos.step
        pos.step += 1
    return None


def test_the_guard_stops_a_loss_that_explodes_in_the_first_steps():
    assert stops_at([2.3, 2.2, 2.1, 1e6, 1e6]) == 3
    assert stops_at([2.3, 470.0]) == 1  # the mean of the first two is 100x the first
    assert stops_at([2.3, 440.0]) is None
    assert stops_at([2.38, 30.0, 60.0, 40.0, 20.0, 8.0, 4.0, 2.5, 2.2, 2.0, 1.9]) is None  # a spike that recovers
    # a high learning rate from the first step (Adam, lr 0.3): noisy, up to 4x the first loss, then it learns
    noisy = [2.43, 9.68, 3.58, 10.0, 2.38, 1.83, 4e-8, 0.719, 0.0512, 0.0, 3.7e-9, 0.0, 0.2, 0.01]
    assert stops_at(noisy) is None
    assert stops_at([2.3] * 5 + [0.1] * 30 + [20.0] * 20) == 39  # later, against the best smoothed loss


def test_a_huge_learning_rate_stops_within_the_first_ten_steps(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=10.0, momentum=0.9)
    message = r"the loss exploded to \S+ \(first step's loss 2\.4\d\) at step [1-9] \(epoch 0, lr 10\).*last good"
    with pytest.raises(DivergedError, match=message):  # a guard that waited for step 10 saw a loss of 1e13
        fit(model, opt, {"lr": constant(10.0)}, ArrayFeed(*blobs(), 32, seed=1), epochs=2, options=OPTS,
            run_dir=tmp_path)
    assert ckpt.load(tmp_path / "checkpoint.pt")["position"]["step"] == 0


def test_a_high_learning_rate_from_the_first_step_trains_without_tripping_the_guard():
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=0.3)
    history = fit(model, opt, {"lr": constant(0.3)}, ArrayFeed(*blobs(), 32, seed=1), epochs=3, options=OPTS)
    first = [row["loss"] for row in history.steps[:10]]
    assert max(first) > 3 * first[0]  # the noisy start the guard must ride out
    assert history.epochs[-1]["train_accuracy"] > 0.95


class Killed(Exception):
    """Stands in for the process being killed."""


class KilledAfter:
    """``feed`` whose ``epoch`` dies after ``n`` batches (once), as a killed process would."""

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


def test_a_run_killed_in_its_first_epoch_resumes_exactly(tmp_path):
    images, labels = blobs()
    train = ArrayFeed(images, labels, 32, seed=1)

    def run(feed, run_dir, resume=False):
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        fit(model, opt, one_cycle(2 * len(train), 0.05), feed, epochs=2, options=OPTS, run_dir=run_dir,
            resume=resume)
        return model

    whole = run(train, tmp_path / "whole")
    killed = KilledAfter(train, 3)
    with pytest.raises(Killed):
        run(killed, tmp_path / "killed")
    assert ckpt.load(tmp_path / "killed" / "checkpoint.pt")["position"]["step"] == 0
    resumed = run(killed, tmp_path / "killed", resume=True)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_records_are_written_at_each_epoch_end_and_agree_with_a_resumed_run(tmp_path):
    train = ArrayFeed(*blobs(), 32, seed=1)  # 8 steps per epoch
    killed = KilledAfter(train, 5, epoch=1)
    options = FitOptions(progress=False, precision="fp32", checkpoint_every=3)

    def run(resume=False):
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return fit(model, opt, one_cycle(3 * 8, 0.05), killed, epochs=3, options=options, run_dir=tmp_path,
                   resume=resume)

    def records():
        with open(tmp_path / "history.csv", newline="") as f:
            epochs = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        return epochs, [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]

    with pytest.raises(Killed):
        run()
    epochs, steps = records()  # the epoch that finished is on record
    assert [r["epoch"] for r in epochs] == [0] and [r["step"] for r in steps] == list(range(8))
    history = run(resume=True)  # from step 11: steps 8-10 come from the checkpoint
    assert records() == (history.epochs, history.steps)
    assert [r["step"] for r in history.steps] == list(range(24))


def test_weights_that_are_not_finite_are_never_checkpointed(tmp_path):
    images, labels = blobs()
    train = ArrayFeed(images, labels, 32)  # 8 steps per epoch
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # the last step of epoch 0 overflows the weights; its loss, taken before the step, is still finite
    policy = {"lr": join([constant(0.001), constant(1e38)], [7])}
    options = FitOptions(progress=False, precision="fp32", checkpoint_every=4, loss_reduction="sum")
    message = r"are not finite after step 7 \(epoch 0, lr 1e\+38\).*last good checkpoint"
    with pytest.raises(DivergedError, match=message):
        fit(model, opt, policy, train, epochs=2, options=options, run_dir=tmp_path)
    saved = ckpt.load(tmp_path / "checkpoint.pt")
    assert saved["position"]["step"] == 4
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_initial_weights_that_are_not_finite_blame_the_model_not_the_lr(tmp_path):
    images, labels = blobs()
    model = mlp()
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"initial weights .* not finite, before any step.*not the learning rate"):
        fit(model, opt, {"lr": constant(0.01)}, ArrayFeed(images, labels, 32), epochs=1,
            options=FitOptions(progress=False, precision="fp32"), run_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_with_accumulation_the_guard_sees_every_batch_of_the_group():
    images, labels = blobs(n=128)
    x = images.permute(0, 3, 1, 2).float() / 255
    x[32:64] = float("nan")  # the second of four batches in the first group
    feed = LoaderFeed(lambda epoch: list(zip(x.split(32), labels.split(32))), batches_per_epoch=4)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    options = FitOptions(progress=False, precision="fp32", accumulate=4)
    with pytest.raises(DivergedError, match="the loss is nan at step 0"):
        fit(model, opt, {"lr": constant(0.01)}, feed, epochs=1, options=options)


def test_the_guard_does_not_stat_the_checkpoint_every_step(tmp_path, monkeypatch):
    calls = []
    is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: calls.append(self) or is_file(self))
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    fit(model, opt, {"lr": constant(0.01)}, ArrayFeed(*blobs(), 32), epochs=1, options=OPTS, run_dir=tmp_path)
    assert calls == []


def test_nan_loss_stops_at_once():
    images, labels = blobs()
    model = mlp()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(DivergedError, match="the loss is nan at step 0"):
        fit(model, opt, {"lr": constant(0.01)}, ArrayFeed(images, labels, 32), epochs=1, options=OPTS)


def test_loader_feed_takes_any_dataset():
    images, labels = blobs()
    x = (images.permute(0, 3, 1, 2).float() / 255)
    dataset = torch.utils.data.TensorDataset(x, labels)
    feed = LoaderFeed(dataset, batch_size=32, seed=3)
    assert len(feed) == 8
    first = [y.tolist() for _, y in feed(0)]
    assert first == [y.tolist() for _, y in feed(0)]  # order depends only on (seed, epoch)
    assert first != [y.tolist() for _, y in feed(1)]
    assert [y.tolist() for _, y in feed(0, start_batch=5)] == first[5:]
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, opt, one_cycle(2 * len(feed), 0.05), feed, epochs=2, options=OPTS)
    assert math.isfinite(history.epochs[-1]["train_loss"])


def test_loss_scaling_unscales_before_clipping_and_skips_overflowing_steps(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))

    def stepped(scaler, poison=False):
        torch.manual_seed(1)
        model = nn.Linear(5, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = F.cross_entropy(model(x), y)
        (scaler.scale(loss) if scaler else loss).backward()
        if poison:
            model.bias.grad[0] = float("inf")
        _step(model, opt, scaler, grad_clip=0.01)
        return model

    plain = stepped(None)
    scaled = stepped(torch.amp.GradScaler("cpu", init_scale=1024.0))  # fp16 needs a GPU; the logic is the same
    for a, b in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(a, b)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    skipped = stepped(scaler, poison=True)
    torch.manual_seed(1)
    for a, b in zip(nn.Linear(5, 3).parameters(), skipped.parameters()):
        assert torch.equal(a, b)
    assert scaler.get_scale() == 512.0

    opt = torch.optim.SGD(skipped.parameters(), lr=0.1)
    sched, restored = Scheduler(opt, {"lr": constant(0.1)}), torch.amp.GradScaler("cpu")
    _save(tmp_path / "c.pt", skipped, opt, sched, None, scaler, _Position(), History(), 0.0)
    _restore(ckpt.load(tmp_path / "c.pt"), skipped, opt, sched, None, restored)
    assert restored.get_scale() == 512.0


def test_loader_feed_takes_a_data_loader():
    images, labels = blobs()
    dataset = torch.utils.data.TensorDataset(images.permute(0, 3, 1, 2).float() / 255, labels)
    feed = LoaderFeed(torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False))
    assert len(feed) == 8
    first = [y.tolist() for _, y in feed(0)]
    assert first == [labels[i:i + 32].tolist() for i in range(0, 256, 32)]
    assert [y.tolist() for _, y in feed(1, start_batch=5)] == first[5:]  # resuming skips the batches done
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, opt, one_cycle(2 * len(feed), 0.05), feed, epochs=2, options=OPTS)
    assert len(history.steps) == 16 and math.isfinite(history.epochs[-1]["train_loss"])


def test_evaluate_with_flip_tta():
    images, labels = blobs()
    model = mlp()
    test = ArrayFeed(images, labels, 64, shuffle=False)
    loss, acc = evaluate(model, test, device=torch.device("cpu"))
    loss_tta, acc_tta = evaluate(model, test, device=torch.device("cpu"), flip_tta=True)
    assert 0 <= acc <= 1 and 0 <= acc_tta <= 1 and loss > 0 and loss_tta > 0


def test_batch_larger_than_the_data_is_refused():
    images, labels = blobs(n=100)
    with pytest.raises(ValueError, match="batch size 128 is larger than the data set \\(100 examples\\)"):
        ArrayFeed(images, labels, 128)


def test_label_smoothing_is_the_loss_fit_records_and_minimises():
    images, labels = blobs()
    train = ArrayFeed(images, labels, 32, shuffle=False)
    x, y = next(train(0))
    model = mlp()
    with torch.no_grad():
        logits = model(x)
    expected = F.cross_entropy(logits, y, label_smoothing=0.1)
    log_p = logits.log_softmax(1)  # (1 - eps) * cross-entropy + eps * mean over classes of -log p
    by_hand = 0.9 * F.nll_loss(log_p, y) - 0.1 * log_p.mean(1).mean()
    torch.testing.assert_close(expected, by_hand)
    assert expected.item() != pytest.approx(F.cross_entropy(logits, y).item())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    options = FitOptions(progress=False, precision="fp32", label_smoothing=0.1)
    history = fit(model, opt, {"lr": constant(0.01)}, train, epochs=1, options=options)
    assert history.steps[0]["loss"] == pytest.approx(expected.item(), rel=1e-6)
    summed = cross_entropy(label_smoothing=0.1, reduction="sum")(logits, y)
    assert summed.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_clipping_bounds_the_norm_the_optimizer_sees():
    def norms(clip):
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        seen = []
        opt.register_step_pre_hook(lambda *_: seen.append(
            torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()))
        options = FitOptions(progress=False, precision="fp32", grad_clip=clip)
        fit(model, opt, {"lr": constant(0.05)}, ArrayFeed(*blobs(), 32), epochs=1, options=options)
        return seen

    assert min(norms(None)) > 0.5  # so the bound below is the clipping at work
    assert norms(0.5) == pytest.approx([0.5] * 8, rel=1e-5)  # every step, clipped to the bound


def test_summed_cross_entropy_has_the_mean_as_value_and_the_sum_as_gradient():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 10, requires_grad=True), torch.randint(0, 10, (8,))
    loss = cross_entropy(reduction="sum")(logits, y)
    (grad_sum,) = torch.autograd.grad(loss, logits)
    (grad_mean,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item())
    torch.testing.assert_close(grad_sum, 8 * grad_mean)
