import math

import pytest
import torch

from superconverge.train.augment import Augment
from superconverge.train.feed import ArrayFeed
from superconverge.train.selection import SkipEasyFeed


def images(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 8, 8, 3), dtype=torch.uint8, generator=g), torch.arange(n) % 10


def run_epoch(feed: SkipEasyFeed, epoch: int, loss_of: torch.Tensor) -> list[int]:
    """Draw an epoch, scoring image i with loss ``loss_of[i]`` through the feed's loss; return the rows seen."""
    seen, loss = [], feed.loss_fn()
    for x, y in feed(epoch):
        rows = feed.rows.clone()
        # logits whose cross-entropy for label y is loss_of[row]: a uniform rest and a chosen margin
        target = loss_of[rows]
        logits = torch.zeros(len(y), 10)
        # CE = -log(e^m / (e^m + 9)) = t  =>  m = log(9 / (e^t - 1))
        logits[torch.arange(len(y)), y] = torch.log(9 / torch.expm1(target))
        assert loss(logits, y) == pytest.approx(float(target.mean()), rel=1e-5)
        seen += rows.tolist()
    return seen


def test_without_skipping_it_yields_the_array_feeds_batches():
    x, y = images()
    augment = Augment(2, "alternate")
    plain = ArrayFeed(x, y, 16, augment, seed=3)
    feed = SkipEasyFeed(x, y, 16, augment, seed=3, fraction=0.0)
    for epoch in range(3):
        pairs = list(zip(plain(epoch), feed(epoch), strict=True))
        assert len(pairs) == len(plain) == feed.batches_in(epoch)
        for (xa, ya), (xb, yb) in pairs:
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_each_epoch_skips_the_lowest_losses_but_never_an_image_twice_running():
    x, y = images(40)
    feed = SkipEasyFeed(x, y, 8, seed=1, fraction=0.25, from_epoch=1)
    loss_of = torch.linspace(0.05, 2.0, 40)  # image i's loss grows with i
    first = run_epoch(feed, 0, loss_of)
    assert sorted(first) == list(range(40))
    second = run_epoch(feed, 1, loss_of)  # leaves out the 10 easiest: 0-9
    assert sorted(second) == list(range(10, 40)) and feed.batches_in(1) == math.ceil(30 / 8)
    third = run_epoch(feed, 2, loss_of)  # 0-9 sat out last epoch: the next 10 easiest sit out now
    assert sorted(third) == list(range(10)) + list(range(20, 40))
    fourth = run_epoch(feed, 3, loss_of)
    assert sorted(fourth) == list(range(10, 40))


def test_the_alternating_flip_alternates_over_each_images_own_views():
    x, y = images(20)
    feed = SkipEasyFeed(x, y, 5, Augment(0, "alternate"), seed=2, fraction=0.5, from_epoch=1)
    loss_of = torch.rand(20, generator=torch.Generator().manual_seed(0)) + 0.1
    views: dict[int, list[bool]] = {i: [] for i in range(20)}
    plain = ArrayFeed(x, y, 20, None, shuffle=False)
    unflipped = next(iter(plain(0)))[0]
    loss = feed.loss_fn()
    for epoch in range(6):
        for batch, labels in feed(epoch):
            for row, image in zip(feed.rows.tolist(), batch):
                assert torch.equal(image, unflipped[row]) or torch.equal(image, unflipped[row].flip(2))
                views[row].append(not torch.equal(image, unflipped[row]))
            logits = torch.zeros(len(labels), 10)
            logits[torch.arange(len(labels)), labels] = torch.log(9 / torch.expm1(loss_of[feed.rows]))
            loss(logits, labels)
    skipped_some = 0
    for row, flips in views.items():
        assert all(a != b for a, b in zip(flips, flips[1:])), (row, flips)  # mirrored every other view
        skipped_some += len(flips) < 6
    assert skipped_some == 20  # with half sitting out each epoch after the first, every image missed one


@pytest.mark.parametrize("kwargs, message", [({"fraction": 0.6}, "two epochs"), ({"from_epoch": 0}, "epoch 1"),
                                             ({"batch_size": 0}, "batch size")])
def test_bad_settings_say_what_to_change(kwargs, message):
    x, y = images()
    with pytest.raises(ValueError, match=message):
        SkipEasyFeed(x, y, **{"batch_size": 8, **kwargs})


def test_it_cannot_resume_mid_epoch_and_the_loss_needs_a_yielded_batch():
    x, y = images()
    feed = SkipEasyFeed(x, y, 8, fraction=0.25)
    with pytest.raises(ValueError, match="resume"):
        next(iter(feed(0, start_batch=1)))
    with pytest.raises(RuntimeError, match="last yielded"):
        feed.loss_fn()(torch.zeros(8, 10), y[:8])
