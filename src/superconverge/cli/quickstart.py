"""``superconverge quickstart``: LR range test, then 1cycle training, on the shipped CIFAR-10 sample."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from superconverge.cli.errors import INTERRUPTED, CliError


def fresh_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that does not exist yet."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@click.command("quickstart")
@click.option("--out", type=click.Path(file_okay=False), default="runs/quickstart", show_default=True,
              help="Run directory (a numbered sibling is used if it exists).")
@click.option("--model", default="resnet20", show_default=True, help="Model to train.")
@click.option("--epochs", type=int, default=8, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads (default: torch's choice).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def quickstart(out: str, model: str, epochs: int, batch_size: int, threads: int | None, quiet: bool) -> None:
    """Find a learning rate, train a small ResNet with 1cycle on the shipped sample, plot it all."""
    from superconverge.finders.lr_range import DataCycledWarning
    from superconverge.finders.recipe import lr_find_config, probe_config
    from superconverge.train import run
    from superconverge.train.recipe import TrainConfig

    config = TrainConfig(model=model, data="sample", epochs=epochs, batch_size=batch_size, threads=threads)
    target = fresh_dir(Path(out))
    data = run.load_data("sample")
    click.echo(f"data: shipped CIFAR-10 sample, {len(data.train_labels)} train / {len(data.test_labels)} test images")
    with warnings.catch_warnings():  # 100 steps is 2.5 epochs of the sample: cycling is intended
        warnings.simplefilter("ignore", DataCycledWarning)
        # tune's sweep: the run's model, data and optimizer at 1cycle's momentum at the peak LR
        found = lr_find_config(config, momentum=config.base_momentum, data=data, steps=100)
        probed = probe_config(config, found.suggestion, momentum=config.base_momentum, data=data)
    click.echo(f"LR range test ({found.steps} steps, {found.seconds:.0f} s): suggested peak LR "
               f"{found.suggestion:.3g} (band {found.band[0]:.3g} to {found.band[1]:.3g})")
    if not found.reliable:
        click.echo(f"  note: {found.advice}")
    click.echo(f"probes ({probed.steps}-step 1cycles, held-out loss): "
               + ", ".join(f"{c:.3g} -> {v:.3f}" for c, v in zip(probed.candidates, probed.losses))
               + f"; peak LR {probed.pick:.3g}")
    config = config.replace(max_lr=float(probed.pick))
    click.echo(f"training {model} for {epochs} epochs with 1cycle, peak LR {config.max_lr:.3g}, "
               f"momentum 0.95 -> 0.85 -> 0.95")
    show = None if quiet else (lambda row: click.echo(
        f"  epoch {int(row['epoch']) + 1}/{epochs}: test accuracy {row['test_accuracy']:.4f}  "
        f"({row['seconds']:.0f} s)"))
    try:
        summary = run.train(config, target, progress=not quiet, on_epoch=show)
    except KeyboardInterrupt:
        raise CliError(f"interrupted; continue the run with: superconverge train --resume {target}",
                       INTERRUPTED) from None
    found.plot(target / "lr_find.png")
    (target / "lr_find.json").write_text(json.dumps(found.to_dict(), indent=2) + "\n")
    click.echo(f"final test accuracy: {summary['test_accuracy']:.4f} "
               f"({summary['train_seconds']:.0f} s of training)")
    click.echo(f"plots: {target / 'lr_find.png'}, {target / 'curves.png'}, {target / 'schedule.png'}")
    click.echo(f"run directory: {target}")
