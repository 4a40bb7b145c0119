"""A whole run from a :class:`TrainConfig` into a run directory: data, model, fit, records, plots.

The run directory holds ``config.toml``, ``checkpoint.pt``, ``history.csv`` (per epoch),
``steps.jsonl`` (per optimizer step; both written at each epoch end), ``curves.png``,
``schedule.png`` and ``summary.json``. Nothing in an existing run directory is overwritten without ``force``,
and ``force`` removes only these files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superconverge import __version__
from superconverge.optim import Scheduler
from superconverge.train import checkpoint as ckpt
from superconverge.train import distributed as dist
from superconverge.train.augment import Augment
from superconverge.train.cifar import Cifar10, load_cifar10, load_sample
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import CHECKPOINT, FitOptions, fit, steps_per_epoch
from superconverge.train.records import HISTORY, STEPS, History
from superconverge.train.models import build_model
from superconverge.train.recipe import FIELDS, TrainConfig, build_policy, from_dict, load_toml, to_toml
from superconverge.train.runtime import build_optimizer, pick_device, resolve_precision, threads

CONFIG = "config.toml"
RUN_FILES = (CONFIG, CHECKPOINT, ckpt.previous(CHECKPOINT).name, HISTORY, STEPS, "summary.json", "curves.png",
             "schedule.png")
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


def holdout_size(config: TrainConfig, n_train: int) -> int:
    """Training images held out as the validation split: ``config.holdout``, or by default 10 %
    when a plateau schedule watches a ``val_*`` metric (the test set is read only when named)."""
    if config.holdout is not None:
        n = config.holdout
    else:
        n = n_train // 10 if config.schedule == "plateau" and config.plateau_metric.startswith("val_") else 0
    if n >= n_train:
        raise ValueError(f"holdout={n} leaves no training images (the data has {n_train})")
    if config.plateau_metric.startswith("val_") and config.schedule == "plateau" and n == 0:
        raise ValueError(f"plateau_metric={config.plateau_metric} needs held-out images: set holdout > 0, "
                         "or name a test metric (plateau_metric=test_loss) to watch the test set")
    return n


def _split(config: TrainConfig, data: Cifar10) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices): the held-out images are the last of each class in turn."""
    labels = data.train_labels
    n = holdout_size(config, len(labels))
    held = np.sort(len(labels) - 1 - balanced_subset(labels[::-1], n)) if n else np.arange(0)
    rest = np.setdiff1d(np.arange(len(labels)), held)
    if config.train_subset is not None:
        rest = rest[balanced_subset(labels[rest], config.train_subset)]
    return rest, held


def feeds(config: TrainConfig, data: Cifar10) -> tuple[ArrayFeed, ArrayFeed]:
    """(train, test) feeds: augmented and shuffled by the run's seed / plain and in order.

    The training feed leaves out the held-out split (:func:`val_feed`).
    """
    keep, _ = _split(config, data)
    images, labels = data.train_images[keep], data.train_labels[keep]
    augment = Augment(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout)
    # drop_last: a last batch of a few examples gives a noisy step at the end of every epoch
    train = ArrayFeed(torch.from_numpy(images), torch.from_numpy(labels), config.batch_size, augment=augment,
                      seed=config.seed, drop_last=True, channels_last=config.channels_last)
    test_images, test_labels = data.test_images, data.test_labels
    if config.test_subset is not None:
        keep = balanced_subset(test_labels, config.test_subset)
        test_images, test_labels = test_images[keep], test_labels[keep]
    return train, _plain_feed(test_images, test_labels, config)


def val_feed(config: TrainConfig, data: Cifar10) -> ArrayFeed | None:
    """The held-out split of the training set as a plain feed, or None without one."""
    _, held = _split(config, data)
    if not len(held):
        return None
    return _plain_feed(data.train_images[held], data.train_labels[held], config)


def _plain_feed(images: np.ndarray, labels: np.ndarray, config: TrainConfig) -> ArrayFeed:
    return ArrayFeed(torch.from_numpy(images), torch.from_numpy(labels), min(1000, len(labels)), shuffle=False,
                     channels_last=config.channels_last)


def resume_config(out: str | Path, changes: Mapping[str, Any] | None = None) -> TrainConfig:
    """The config of the run saved in ``out`` with ``changes`` applied, for ``train(..., resume=True)``.

    Only ``threads``, ``device`` and a larger ``epochs`` (an extension) may change on resume;
    :func:`prepare_dir` refuses anything else.
    """
    out = Path(out)
    if not (out / CONFIG).is_file():
        raise RunDirError(f"{out} holds no run to resume (no {CONFIG}); start a new run with --out instead")
    return from_dict(dict(changes or {}), load_toml(out / CONFIG))


def prepare_dir(out: Path, config: TrainConfig, *, resume: bool, force: bool) -> TrainConfig:
    """Check ``out`` for a new run (empty or ``force``) or a resume; returns the config to run.

    On resume ``config`` must equal the saved one except for ``threads`` and ``device``
    (how the run computes), and ``epochs``, which may grow: the schedules are then
    extended from the checkpoint's step (:func:`superconverge.schedules.extend`), so the
    curve stays continuous and still ends at its final value. Writes nothing:
    :func:`start_dir` does, once the run's inputs have been checked.
    """
    if resume:
        if not (out / CONFIG).is_file() or not (out / CHECKPOINT).is_file():
            raise RunDirError(f"{out} holds no run to resume (no {CONFIG} and {CHECKPOINT}); "
                              "start a new run with --out instead")
        saved = load_toml(out / CONFIG)
        changed = [k for k in FIELDS if k not in (*MACHINE_KEYS, "epochs")
                   and getattr(config, k) != getattr(saved, k)]
        if changed:
            k = changed[0]
            raise RunDirError(f"--resume continues the run in {out} as it was planned, but {k} differs "
                              f"({getattr(config, k)!r} given, {getattr(saved, k)!r} in the run); drop it to "
                              f"resume, or start a new run with --out to change it")
        if config.epochs < saved.epochs:
            raise RunDirError(f"{out} is planned for {saved.epochs} epochs; --epochs {config.epochs} would cut it "
                              f"short (a resume can only extend a run): drop --epochs or give more than "
                              f"{saved.epochs}")
        if config.epochs > saved.epochs:
            step = int(ckpt.load(out / CHECKPOINT)["position"]["step"])
            return config.replace(extensions=(*saved.extensions, (step, saved.epochs)))
        return config
    if out.exists() and any(out.iterdir()) and not force:
        raise RunDirError(f"{out} already exists and is not empty; choose another --out, "
                          "continue it with --resume, or pass --force to overwrite it")
    return config


def start_dir(out: Path, config: TrainConfig, *, fresh: bool = True) -> None:
    """Write ``config.toml`` into ``out`` (rank 0 only); ``fresh`` first removes a previous run's files."""
    if dist.rank() != 0:
        return
    out.mkdir(parents=True, exist_ok=True)
    if not fresh:  # an extended resume: the new plan replaces the old, the run's files stay
        (out / CONFIG).write_text(to_toml(config, f"superconverge {__version__} training run"))
        return
    # only what a run writes: --force must not take unrelated files with it
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for part in out.glob(f".{CHECKPOINT}.*.part"):  # left by a kill during a checkpoint write
        part.unlink()
    (out / CONFIG).write_text(to_toml(config, f"superconverge {__version__} training run"))


def train(config: TrainConfig, out: str | Path, *, resume: bool = False, force: bool = False,
          progress: bool = True, on_epoch: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Run ``config`` into ``out``; returns the summary also written to ``summary.json``.

    Everything is built and checked before the run directory is touched, so a bad value
    never leaves a half-made directory. Resuming a finished run returns its summary as it was.
    """
    out = Path(out)
    config = prepare_dir(out, config, resume=resume, force=force)
    if resume and (finished := _finished(out, config)) is not None:
        return finished
    started = time.perf_counter()
    data = load_data(config.data)
    train_feed, test_feed = feeds(config, data)
    held_out = val_feed(config, data)
    with threads(config.threads):
        torch.manual_seed(config.seed)
        model = build_model(config.model, num_classes=len(data.classes))
        per_epoch = steps_per_epoch(train_feed, config.accumulate)
        optimizer = build_optimizer(config.optimizer, model.parameters(), lr=config.max_lr,
                                    momentum=config.momentum, weight_decay=config.weight_decay)
        scheduler = Scheduler(optimizer, build_policy(config, per_epoch))
        device = pick_device(config.device)
        machine = {"precision": resolve_precision(config.precision, device),  # type: ignore[arg-type]
                   "device": str(device), "threads": torch.get_num_threads(), "torch_version": torch.__version__}
        if not resume or config.extensions != load_toml(out / CONFIG).extensions:
            start_dir(out, config, fresh=not resume)  # only now: a bad value must not leave a half-made directory
        options = FitOptions(device=config.device, precision=config.precision,  # type: ignore[arg-type]
                             channels_last=config.channels_last, accumulate=config.accumulate,
                             grad_clip=config.grad_clip, label_smoothing=config.label_smoothing,
                             loss_reduction=config.loss_reduction,  # type: ignore[arg-type]
                             ema_decay=config.ema_decay, checkpoint_every=config.checkpoint_every,
                             plateau_metric=config.plateau_metric, progress=progress)  # type: ignore[arg-type]
        fit_started = time.perf_counter()
        history = fit(model, optimizer, scheduler, train_feed, epochs=config.epochs, test=test_feed, val=held_out,
                      options=options, run_dir=out, resume=resume, on_epoch=on_epoch)
    summary = summarize(config, history, per_epoch, time.perf_counter() - started,
                        time.perf_counter() - fit_started) | machine
    if dist.rank() == 0:
        write_records(out, history, summary, plots=config.plots)
    return summary


def _finished(out: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The stored summary of a run that already trained all of ``config.epochs``, else None."""
    path = out / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("epochs") == config.epochs else None


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
        # earlier processes' training time (a resumed run) plus this process's set-up and records
        "wall_seconds": last["seconds"] + wall - fit_wall,
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
    steps = [r["step"] for r in history.steps]
    epochs = [r["epoch"] + 1 for r in history.epochs]  # 1-based, as the console prints "epoch 1/N"
    first = "train loss (per step)"
    curves, x, xlabel = {first: [r["loss"] for r in history.steps]}, {first: steps}, {first: "optimizer step"}
    for column in ("test_loss", "train_accuracy", "test_accuracy"):
        if column in history.epochs[0]:
            key = column.replace("_", " ") + " (per epoch)"
            curves[key], x[key], xlabel[key] = [r[column] for r in history.epochs], epochs, "epoch"
    plot_curves(curves, out / "curves.png", title="training", x=x, xlabel=xlabel, sharex=False)
    keys = [k for k in history.steps[0] if k not in ("step", "epoch", "loss")]
    plot_curves({k: [r[k] for r in history.steps] for k in keys}, out / "schedule.png", title="schedule",
                x={k: steps for k in keys}, xlabel="optimizer step")
