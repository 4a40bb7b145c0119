"""A whole run from a :class:`TrainConfig` into a run directory: data, model, fit, records, plots.

The run directory holds ``config.toml``, ``checkpoint.pt``, ``history.csv`` (per epoch),
``steps.jsonl`` (per optimizer step; both written at each epoch end), ``curves.png``,
``schedule.png`` and ``summary.json``. Nothing in an existing run directory is overwritten without ``force``,
and ``force`` removes only these files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superconverge import __version__
from superconverge.train import distributed as dist
from superconverge.train.augment import Augment
from superconverge.train.cifar import Cifar10, load_cifar10, load_sample
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import CHECKPOINT, FitOptions, fit, steps_per_epoch
from superconverge.train.records import HISTORY, STEPS, History
from superconverge.train.models import build_model
from superconverge.train.recipe import TrainConfig, build_policy, load_toml, to_toml
from superconverge.train.runtime import build_optimizer, pick_device, resolve_precision, threads

CONFIG = "config.toml"
RUN_FILES = (CONFIG, CHECKPOINT, HISTORY, STEPS, "summary.json", "curves.png", "schedule.png")
MACHINE_KEYS = ("threads", "device")  # how a run computes, not what it is: a resume may change them


class RunDirError(ValueError):
    """The run directory cannot be used as asked (exists, holds no run, holds another run)."""


def load_data(spec: str) -> Cifar10:
    """``sample`` (shipped with the package), ``download`` (official archive) or a path."""
    if spec == "sample":
        return load_sample()
    if spec == "download":
        return load_cifar10(None)
    return load_cifar10(spec)


def balanced_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ``n`` examples taken class by class in turn (deterministic)."""
    if n >= len(labels):
        return np.arange(len(labels))
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    order = np.stack([idx[: min(map(len, per_class))] for idx in per_class], axis=1).reshape(-1)
    return np.sort(order[:n])


def feeds(config: TrainConfig, data: Cifar10) -> tuple[ArrayFeed, ArrayFeed]:
    """(train, test) feeds: augmented and shuffled by the run's seed / plain and in order."""
    images, labels = data.train_images, data.train_labels
    if config.train_subset is not None:
        keep = balanced_subset(labels, config.train_subset)
        images, labels = images[keep], labels[keep]
    augment = Augment(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout)
    # drop_last: a last batch of a few examples gives a noisy step at the end of every epoch
    train = ArrayFeed(torch.from_numpy(images), torch.from_numpy(labels), config.batch_size, augment=augment,
                      seed=config.seed, drop_last=True, channels_last=config.channels_last)
    test_images, test_labels = data.test_images, data.test_labels
    if config.test_subset is not None:
        keep = balanced_subset(test_labels, config.test_subset)
        test_images, test_labels = test_images[keep], test_labels[keep]
    test = ArrayFeed(torch.from_numpy(test_images), torch.from_numpy(test_labels),
                     min(1000, len(test_labels)), shuffle=False, channels_last=config.channels_last)
    return train, test


def prepare_dir(out: Path, config: TrainConfig, *, resume: bool, force: bool) -> TrainConfig:
    """Check ``out`` for a new run (empty or ``force``) or a resume; returns the config to run.

    On resume the saved config runs, with the caller's ``threads`` and ``device`` where set
    (not ``None`` or ``"auto"``).
    Writes nothing: :func:`start_dir` does, once the run's inputs have been checked.
    """
    if resume:
        if not (out / CONFIG).is_file() or not (out / CHECKPOINT).is_file():
            raise RunDirError(f"{out} holds no run to resume (no {CONFIG} and {CHECKPOINT}); "
                              "start a new run with --out instead")
        saved = load_toml(out / CONFIG)
        if config.model != saved.model:
            raise RunDirError(f"{out} holds a {saved.model} run, but {config.model} was asked for; "
                              f"resume with --model {saved.model} or start a new run")
        return saved.replace(**{k: v for k in MACHINE_KEYS if (v := getattr(config, k)) not in (None, "auto")})
    if out.exists() and any(out.iterdir()) and not force:
        raise RunDirError(f"{out} already exists and is not empty; choose another --out, "
                          "continue it with --resume, or pass --force to overwrite it")
    return config


def start_dir(out: Path, config: TrainConfig) -> None:
    """Remove a previous run's files from ``out`` and write the new ``config.toml`` (rank 0 only)."""
    if dist.rank() != 0:
        return
    out.mkdir(parents=True, exist_ok=True)
    # only what a run writes: --force must not take unrelated files with it
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for part in out.glob(f".{CHECKPOINT}.*.part"):  # left by a kill during a checkpoint write
        part.unlink()
    (out / CONFIG).write_text(to_toml(config, f"superconverge {__version__} training run"))


def train(config: TrainConfig, out: str | Path, *, resume: bool = False, force: bool = False,
          progress: bool = True, on_epoch: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Run ``config`` into ``out``; returns the summary also written to ``summary.json``."""
    out = Path(out)
    config = prepare_dir(out, config, resume=resume, force=force)
    started = time.perf_counter()
    data = load_data(config.data)
    train_feed, test_feed = feeds(config, data)
    with threads(config.threads):
        torch.manual_seed(config.seed)
        model = build_model(config.model, num_classes=len(data.classes))
        per_epoch = steps_per_epoch(train_feed, config.accumulate)
        policy = build_policy(config, per_epoch)
        optimizer = build_optimizer(config.optimizer, model.parameters(), lr=config.max_lr,
                                    momentum=config.momentum, weight_decay=config.weight_decay)
        device = pick_device(config.device)
        machine = {"precision": resolve_precision(config.precision, device),  # type: ignore[arg-type]
                   "device": str(device), "threads": torch.get_num_threads(), "torch_version": torch.__version__}
        if not resume:  # only now: a typo must not leave a half-made run directory behind
            start_dir(out, config)
        options = FitOptions(device=config.device, precision=config.precision,  # type: ignore[arg-type]
                             channels_last=config.channels_last, accumulate=config.accumulate,
                             grad_clip=config.grad_clip, label_smoothing=config.label_smoothing,
                             loss_reduction=config.loss_reduction,  # type: ignore[arg-type]
                             ema_decay=config.ema_decay, checkpoint_every=config.checkpoint_every,
                             plateau_metric=config.plateau_metric, progress=progress)  # type: ignore[arg-type]
        fit_started = time.perf_counter()
        history = fit(model, optimizer, policy, train_feed, epochs=config.epochs, test=test_feed,
                      options=options, run_dir=out, resume=resume, on_epoch=on_epoch)
    summary = summarize(config, history, per_epoch, time.perf_counter() - started,
                        time.perf_counter() - fit_started) | machine
    if dist.rank() == 0:
        write_records(out, history, summary, plots=config.plots)
    return summary


def summarize(config: TrainConfig, history: History, per_epoch: int, wall: float, fit_wall: float) -> dict[str, Any]:
    last = history.epochs[-1]
    return {
        "test_accuracy": last.get("test_accuracy"),
        "test_loss": last.get("test_loss"),
        "train_loss": last["train_loss"],
        "train_accuracy": last["train_accuracy"],
        "epochs": len(history.epochs),
        "steps": len(history.steps),
        "steps_per_epoch": per_epoch,
        "train_seconds": last["seconds"],
        "wall_seconds": wall,
        "model": config.model,
        "max_lr": config.max_lr,
        "version": __version__,
    }


def write_records(out: Path, history: History, summary: dict[str, Any], *, plots: bool = True) -> None:
    """summary.json and (with ``plots``) curves.png and schedule.png; fit wrote history.csv and steps.jsonl."""
    from superconverge.report.plots import plot_curves

    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not plots:
        return
    curves = {"train loss (per step)": [r["loss"] for r in history.steps]}
    if "test_loss" in history.epochs[0]:
        curves["test loss (per epoch)"] = [r["test_loss"] for r in history.epochs]
    curves["train accuracy (per epoch)"] = [r["train_accuracy"] for r in history.epochs]
    if "test_accuracy" in history.epochs[0]:
        curves["test accuracy (per epoch)"] = [r["test_accuracy"] for r in history.epochs]
    plot_curves(curves, out / "curves.png", title="training", xlabel="", sharex=False)
    keys = [k for k in history.steps[0] if k not in ("step", "epoch", "loss")]
    plot_curves({k: [r[k] for r in history.steps] for k in keys}, out / "schedule.png", title="schedule")
