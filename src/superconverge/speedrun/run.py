"""Train CIFAR-10 from scratch with a :class:`Recipe` and time it.

What the clock counts (``train_seconds``): from data in memory (uint8 arrays already
loaded) to a trained model: building the net, fitting the whitening layer, any
compilation, and every training step. ``eval_seconds`` is the final evaluation of the
test images, plain and mirrored (and shifted, if the recipe asks); ``total_seconds`` is
the two together. Optional per-epoch evaluations (``eval_each_epoch``) are timed apart
and left out of both.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

from superconverge import __version__
from superconverge.optim import Scheduler
from superconverge.optim.lookahead import Lookahead
from superconverge.optim.muon import Muon
from superconverge.schedules import constant, join, one_cycle
from superconverge.speedrun.net import SpeedNet, flops_per_image, param_groups
from superconverge.speedrun.recipe import Recipe, from_dict, to_dict
from superconverge.train.allocator import freed_memory_kept
from superconverge.train.augment import Augment, to_input
from superconverge.train.cifar import Cifar10
from superconverge.train.feed import ArrayFeed, Batch, Feed, Shard
from superconverge.train.loop import FitOptions, _to, fit
from superconverge.train.runtime import autocast, pick_device, resolve_precision, threads
from superconverge.train.selection import SkipEasyFeed


def holdout_split(data: Cifar10, n: int, seed: int = 0) -> Cifar10:
    """Hold out ``n`` training images (a fixed random choice) as the test set, for tuning.

    The real test images are dropped, so a recipe tuned on this split never saw them.
    """
    if not 0 < n < len(data.train_labels):
        raise ValueError(f"holdout must be between 1 and {len(data.train_labels) - 1}, got {n}")
    order = np.random.default_rng(seed).permutation(len(data.train_labels))
    keep, held = np.sort(order[n:]), np.sort(order[:n])
    return Cifar10(data.train_images[keep], data.train_labels[keep], data.train_images[held],
                   data.train_labels[held], data.classes)


@dataclass(frozen=True, eq=False)
class ResizedFeed:
    """``feed`` with ``size``-pixel images in epochs from ``from_epoch`` up to (not including) ``until_epoch``.

    ``mode="resize"`` downscales each image (bilinear, antialiased): the whole scene at
    0.75x scale for 24 px. ``mode="crop"`` cuts a ``size`` x ``size`` window at a random
    offset from each image, drawn from (seed, epoch, batch): objects keep the scale they have
    at test time, and so do the 2x2 patch statistics the whitening layer was fitted on.
    """

    feed: Feed
    size: int
    until_epoch: int
    mode: str = "resize"
    seed: int = 0
    from_epoch: int = 0

    def __len__(self) -> int:
        return len(self.feed)

    def __call__(self, epoch: int, start_batch: int = 0, shard: Shard = (0, 1)) -> Iterator[Batch]:
        for i, (x, y) in enumerate(self.feed(epoch, start_batch, shard), start=start_batch):
            if self.from_epoch <= epoch < self.until_epoch and x.shape[-1] != self.size:
                channels_last = x.is_contiguous(memory_format=torch.channels_last)
                if self.mode == "crop":
                    g = torch.Generator().manual_seed(hash((self.seed, epoch, i)) % (1 << 62))
                    x = random_window(x, self.size, generator=g)
                else:
                    x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                      align_corners=False)
                x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            yield x, y


def random_window(x: torch.Tensor, size: int, *, generator: torch.Generator) -> torch.Tensor:
    """A ``size`` x ``size`` window of each NCHW image at a uniform random offset."""
    n, _, h, w = x.shape
    dy = torch.randint(0, h - size + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, w - size + 1, (n,), generator=generator).to(x.device)
    step = torch.arange(size, device=x.device)
    rows, cols = (dy[:, None] + step)[:, :, None], (dx[:, None] + step)[:, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return x[batch, :, rows, cols].permute(0, 3, 1, 2)  # (N, size, size, C) viewed as NCHW


@contextlib.contextmanager
def flushing_denormals(on: bool) -> Iterator[None]:
    """Flush denormal floats to zero on the CPU while inside (a no-op where unsupported)."""
    if not on:
        yield
        return
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


def build(recipe: Recipe, train_images: torch.Tensor, steps: int, *, seed: int,
          device: torch.device) -> tuple[SpeedNet, torch.optim.Optimizer, Scheduler]:
    """The network (whitening fitted on the first 5,000 training images), its optimizer and schedule."""
    torch.manual_seed(seed)
    net = SpeedNet(recipe.widths, recipe.whiten_width, recipe.bn_momentum, recipe.logit_scale, convs=recipe.convs)
    net.whiten.fit(to_input(train_images[:5000]), recipe.whiten_eps)
    net.to(device)
    groups = param_groups(net)
    weights = dict(lr=recipe.lr, weight_decay=recipe.weight_decay)
    biases = dict(params=groups["biases"], lr=recipe.lr * recipe.bias_lr_scale,
                  weight_decay=recipe.weight_decay / recipe.bias_lr_scale)
    whiten_bias = dict(params=groups["whiten_bias"], **weights)  # last: its schedule is set apart below
    nesterov = recipe.nesterov and recipe.momentum > 0
    if recipe.optimizer == "muon":  # Muon for the filters, SGD for the rest (Muon's orthogonalize=False path)
        sgd = dict(orthogonalize=False, momentum=recipe.momentum, nesterov=nesterov)
        optimizer: torch.optim.Optimizer = Muon(
            [dict(params=groups["filters"], lr=recipe.muon_lr, momentum=recipe.muon_momentum,
                  ns_steps=recipe.muon_ns_steps),
             dict(params=groups["head"], **weights, **sgd), dict(biases, **sgd), dict(whiten_bias, **sgd)],
            lr=recipe.muon_lr, nesterov=recipe.nesterov)
    else:
        optimizer = torch.optim.SGD([dict(params=groups["filters"] + groups["head"], **weights), biases, whiten_bias],
                                    lr=recipe.lr, momentum=recipe.momentum, nesterov=nesterov)
    # One relative curve scaled by each group's own LR (BN biases at bias_lr_scale x; the whitening
    # bias, like the weights, at 1x) and the whitening bias stops learning early.
    shape = one_cycle(steps, 1.0, pct_start=recipe.pct_start, anneal="linear", div_factor=recipe.div_factor,
                      final_div_factor=1 / (recipe.div_factor * recipe.final_fraction) if recipe.final_fraction
                      else 1e12, cycle_momentum=False)["lr"]
    whiten_steps = round(recipe.whiten_bias_epochs * steps / recipe.epochs)
    whiten = join([shape, constant(0.0, steps - whiten_steps)], [whiten_steps]) if 0 < whiten_steps < steps \
        else (shape if whiten_steps >= steps else constant(0.0, steps))
    curves = [shape] * (len(optimizer.param_groups) - 1) + [whiten]  # the whitening bias group is last
    sched = Scheduler(optimizer, {"lr": curves}, scale={"lr": "initial"})
    freeze_after(sched, [net.whiten.bias], whiten_steps if whiten_steps < steps else None)
    return net, optimizer, sched


def freeze_after(sched: Scheduler, params: list[torch.nn.Parameter], steps: int | None) -> None:
    """Stop computing the gradients of ``params`` once ``sched`` has counted ``steps`` optimizer steps.

    For parameters whose LR is 0 from then on, the result is the same and the backward pass
    is cheaper: without a learning whitening bias nothing needs the gradient of the first
    block's input, which costs 6-10 % of a speedrun step. ``None``: never; 0: from the start.
    The schedule's step count decides, so a step a gradient scaler skipped counts as it does there.
    """
    if steps is None:
        return
    if steps <= 0:
        for p in params:
            p.requires_grad_(False)
        return

    def after_step(*_: Any) -> None:  # runs after optimizer.step(), before sched.step() counts it
        if sched.step_count + 1 >= steps:  # the hook stays registered: removing it while torch runs hooks is an error
            for p in params:
                p.requires_grad_(False)

    sched.optimizer.register_step_post_hook(after_step)


EVAL_BATCH_CPU, EVAL_BATCH_GPU = 250, 2000


@torch.no_grad()
def evaluate_tta(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, device: torch.device,
                 precision: str, channels_last: bool, batch_size: int | None = None, tta: bool = True,
                 translate: int = 0, translate_below: float = 0.0, translate_weight: float = 0.5
                 ) -> dict[str, float]:
    """Accuracy on ``images``: plain; with ``tta``, from the logits of each image plus its mirror
    (``accuracy_tta``); with ``translate`` pixels too, from

        z = z(x) + z(flip x) + w (z(x+d) + z(flip(x+d)) + z(x-d) + z(flip(x-d)))

    where x+-d is the image shifted by ``translate`` pixels diagonally (reflection padding) and
    w is ``translate_weight`` (``accuracy_tta_translate``). With ``translate_below`` > 0 only
    the images whose flip-TTA logit gap (top class minus runner-up of (z(x) + z(flip x)) / 2)
    is below it get the translated views; the others, already decided, keep the flip TTA answer, and
    ``translated_share`` says how many did. ``batch_size`` defaults to 250 images on a CPU, where a
    forward pass is fastest when a layer's output stays in cache (1.3-1.4x batch 2000;
    ``bench/speedrun_eval.py``), and 2,000 on a GPU."""
    batch_size = batch_size or (EVAL_BATCH_CPU if device.type == "cpu" else EVAL_BATCH_GPU)
    net.eval()
    hits = {"accuracy": 0, "accuracy_tta": 0, "accuracy_tta_translate": 0}
    translated = 0
    for start in range(0, len(images), batch_size):
        x = _to(to_input(images[start:start + batch_size]), device, channels_last)
        y = labels[start:start + batch_size].to(device)
        with autocast(device, precision):  # type: ignore[arg-type]
            logits = net(x).float()
            hits["accuracy"] += int((logits.argmax(1) == y).sum())
            if tta:
                logits = logits + net(x.flip(3)).float()
                hits["accuracy_tta"] += int((logits.argmax(1) == y).sum())
            if tta and translate:
                unsure = slice(None)
                if translate_below > 0:
                    top2 = (logits / 2).topk(2, dim=1).values
                    unsure = (top2[:, 0] - top2[:, 1] < translate_below).nonzero().squeeze(1)
                    x = x[unsure]
                translated += len(x)
                d, size = translate, x.shape[-1]
                if len(x):
                    padded = F.pad(x, (d, d, d, d), mode="reflect")
                    extra = 0
                    for shifted in (padded[..., :size, :size], padded[..., 2 * d:, 2 * d:]):
                        shifted = _to(shifted, device, channels_last)
                        extra = extra + net(shifted).float() + net(shifted.flip(3)).float()
                    logits[unsure] += translate_weight * extra
                hits["accuracy_tta_translate"] += int((logits.argmax(1) == y).sum())
    net.train()
    keep = ["accuracy"] + ["accuracy_tta"] * tta + ["accuracy_tta_translate"] * bool(tta and translate)
    out = {k: hits[k] / len(images) for k in keep}
    if tta and translate:
        out["translated_share"] = translated / len(images)
    return out


def train_feed(recipe: Recipe, images: torch.Tensor, labels: torch.Tensor, seed: int = 0
               ) -> ArrayFeed | SkipEasyFeed:
    """The recipe's augmented, shuffled training batches at full resolution (without the easiest
    images from ``skip_from_epoch`` on, if ``skip_easy``)."""
    flip = {"alternate": "alternate", "random": True, "none": False}[recipe.flip]
    augment = Augment(recipe.translate, flip, recipe.cutout)  # type: ignore[arg-type]
    if recipe.skip_easy:
        return SkipEasyFeed(images, labels, recipe.batch_size, augment, seed=seed, fraction=recipe.skip_easy,
                            from_epoch=recipe.skip_from_epoch, channels_last=recipe.channels_last)
    return ArrayFeed(images, labels, recipe.batch_size, augment, seed=seed, channels_last=recipe.channels_last)


def epoch_batches(recipe: Recipe, n: int) -> list[int]:
    """Training steps in each epoch for ``n`` training images."""
    per_epoch = math.ceil(n / recipe.batch_size)
    skipped = math.floor(recipe.skip_easy * n)
    return [math.ceil((n - skipped) / recipe.batch_size) if skipped and e >= recipe.skip_from_epoch else per_epoch
            for e in range(recipe.epochs)]


def speedrun(recipe: Recipe, data: Cifar10, *, seed: int = 0, device: str = "auto", num_threads: int | None = None,
             eval_each_epoch: bool = False, progress: bool = False,
             on_epoch: Callable[[dict[str, float]], None] | None = None,
             save_model: str | Path | None = None) -> dict[str, Any]:
    """Train ``recipe`` on ``data.train_*`` and test on ``data.test_*``; return the figures as plain data.

    ``save_model``: also write the trained network there (after the clock stops; see :func:`load_model`).
    """
    dev = pick_device(device)
    precision = resolve_precision(recipe.precision, dev)
    train_x, train_y = torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels)
    test_x, test_y = torch.from_numpy(data.test_images), torch.from_numpy(data.test_labels)
    feed = train_feed(recipe, train_x, train_y, seed)
    steps = sum(epoch_batches(recipe, len(train_x)))
    loss_fn = feed.loss_fn(recipe.label_smoothing) if isinstance(feed, SkipEasyFeed) else None
    if recipe.low_res_epochs:
        resized = ResizedFeed(feed, recipe.low_res, recipe.low_res_epochs, recipe.low_res_mode, seed)
        feed = resized  # type: ignore[assignment]
    if recipe.mid_res_epochs:
        until = recipe.low_res_epochs + recipe.mid_res_epochs
        feed = ResizedFeed(feed, recipe.mid_res, until, recipe.low_res_mode, seed,  # type: ignore[assignment]
                           from_epoch=recipe.low_res_epochs)
    per_epoch: list[dict[str, float]] = []
    eval_clock = [0.0]

    # torch.optim imports torch._dynamo the first time an optimizer is built (2-3 s, more from a cold disk):
    # part of start-up, like importing torch, so it happens before the clock starts.
    importlib.import_module("torch._dynamo")
    with threads(num_threads), flushing_denormals(recipe.flush_denormal and dev.type == "cpu"):
        started = time.perf_counter()
        net, optimizer, sched = build(recipe, train_x, steps, seed=seed, device=dev)
        model = torch.compile(net) if recipe.compile else net
        lookahead = Lookahead(net, optimizer, lambda t: recipe.lookahead_decay * (t / steps) ** 3,
                              every=recipe.lookahead_every) if recipe.lookahead_every else None

        def epoch_done(row: dict[str, float]) -> None:
            record = {"epoch": row["epoch"] + 1, "seconds": time.perf_counter() - started - eval_clock[0],
                      "train_loss": row["train_loss"]}
            if eval_each_epoch:
                tick = time.perf_counter()
                record.update(evaluate_tta(model, test_x, test_y, device=dev, precision=precision,
                                           channels_last=recipe.channels_last, tta=False))
                eval_clock[0] += time.perf_counter() - tick
            per_epoch.append(record)
            if on_epoch is not None:
                on_epoch(record)

        options = FitOptions(device=str(dev), precision=precision, channels_last=recipe.channels_last,
                             label_smoothing=recipe.label_smoothing, progress=progress,
                             divergence_factor=1e9)
        fit(model, optimizer, sched, feed, epochs=recipe.epochs, loss_fn=loss_fn, options=options,
            on_epoch=epoch_done)
        if lookahead is not None:
            lookahead.finish()
        train_seconds = time.perf_counter() - started - eval_clock[0]
        tick = time.perf_counter()
        final = evaluate_tta(model, test_x, test_y, device=dev, precision=precision,
                             channels_last=recipe.channels_last, tta=recipe.tta, translate=recipe.tta_translate,
                             translate_below=recipe.tta_translate_below,
                             translate_weight=recipe.tta_translate_weight)
        eval_seconds = time.perf_counter() - tick

    if save_model is not None:
        Path(save_model).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"recipe": to_dict(recipe), "seed": seed, "state_dict": net.state_dict()}, save_model)
    train_flops = sum(epoch_flops(net, recipe, len(train_x)))
    return {
        "recipe": recipe.name,
        "seed": seed,
        # the headline: the fullest test-time augmentation the recipe asks for
        "test_accuracy": final.get("accuracy_tta_translate", final.get("accuracy_tta", final["accuracy"])),
        "test_accuracy_plain": final["accuracy"],
        "test_accuracy_tta": final.get("accuracy_tta"),
        "test_accuracy_tta_translate": final.get("accuracy_tta_translate"),
        "tta_translated_share": final.get("translated_share"),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "total_seconds": train_seconds + eval_seconds,
        "epochs": recipe.epochs,
        "steps": steps,
        "train_images": len(train_x),
        "test_images": len(test_x),
        "per_epoch": per_epoch,
        "train_flops": train_flops,
        "train_gflops_per_second": train_flops / train_seconds / 1e9,
        "device": str(dev),
        "precision": precision,
        "threads": torch.get_num_threads() if num_threads is None else num_threads,
        "freed_memory_kept": freed_memory_kept(),
        "torch": torch.__version__,
        "superconverge": __version__,
        "machine": platform.processor() or platform.machine(),
        "config": to_dict(recipe),
    }


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[SpeedNet, Recipe]:
    """The network a speedrun saved with ``save_model``, in eval mode, and its recipe."""
    saved = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(saved, dict) or not {"recipe", "state_dict"} <= saved.keys():
        raise ValueError(f"{path} is not a model saved by a speedrun (save_model=... / --save-model)")
    recipe = from_dict(saved["recipe"])
    net = SpeedNet(recipe.widths, recipe.whiten_width, recipe.bn_momentum, recipe.logit_scale, convs=recipe.convs)
    net.load_state_dict(saved["state_dict"])
    return net.to(device).eval(), recipe


def epoch_flops(net: SpeedNet, recipe: Recipe, n: int = 1) -> list[float]:
    """Training FLOPs in each epoch over ``n`` training images (default: per image): at the
    epoch's resolution, with or without the gradient of the first block's input (needed only
    while the whitening bias learns), and for the images the epoch trains on (``skip_easy``)."""
    bias = net.whiten.bias
    learning = bias.requires_grad
    cost = {}
    try:
        for grad in (True, False):
            bias.requires_grad_(grad)
            for size in {epoch_size(recipe, e) for e in range(recipe.epochs)}:
                cost[size, grad] = flops_per_image(net, size)["train"]
    finally:
        bias.requires_grad_(learning)
    out = []
    for e in range(recipe.epochs):
        size = epoch_size(recipe, e)
        share = min(1.0, max(0.0, recipe.whiten_bias_epochs - e))  # of this epoch with the bias learning
        seen = n - (math.floor(recipe.skip_easy * n) if e >= recipe.skip_from_epoch else 0)
        out.append(seen * (share * cost[size, True] + (1 - share) * cost[size, False]))
    return out


def epoch_size(recipe: Recipe, epoch: int) -> int:
    """The image side in pixels that ``epoch`` trains on: low, then mid, then full resolution."""
    if epoch < recipe.low_res_epochs:
        return recipe.low_res
    return recipe.mid_res if epoch < recipe.low_res_epochs + recipe.mid_res_epochs else 32


def with_overrides(recipe: Recipe, **changes: Any) -> Recipe:
    """``recipe`` with the non-None ``changes``; a recipe they change keeps its name plus a '*'
    (changes that restate the recipe's own values leave it as it is; a ``name`` change wins).

    A new ``epochs`` without ``low_res_epochs`` keeps the recipe's share of low-resolution
    epochs: ``round(low_res_epochs * epochs / recipe.epochs)``, at most ``epochs - 1``.
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    epochs = changes.get("epochs")
    if epochs is not None and "low_res_epochs" not in changes and recipe.low_res_epochs:
        changes["low_res_epochs"] = min(epochs - 1, round(recipe.low_res_epochs * epochs / recipe.epochs))
    changed = recipe.replace(**changes)
    if changed == recipe or "name" in changes:
        return changed
    return changed.replace(name=recipe.name + "*")


__all__ = ["ResizedFeed", "build", "epoch_batches", "epoch_flops", "epoch_size", "evaluate_tta", "freeze_after",
           "holdout_split", "load_model", "random_window", "speedrun", "train_feed", "with_overrides"]
