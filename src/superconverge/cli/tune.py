"""``superconverge tune``: batch size, weight decay and 1cycle's peak LR, written as a training config."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from superconverge.cli.errors import CliError
from superconverge.cli.lr_find import echo_warnings, parse_floats


@click.command("tune")
@click.option("--model", default="resnet20", show_default=True, help="resnet20..110, preact_resnet18, resnet9, tiny.")
@click.option("--data", help="sample (shipped), download, or a path to CIFAR-10; "
              "default: $SUPERCONVERGE_DATA if set, else sample.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The TOML config to write (for superconverge train --config).")
@click.option("--plots", type=click.Path(file_okay=False, path_type=Path), help="Folder for a plot of each step.")
@click.option("--epochs", type=int, default=30, show_default=True, help="Epochs of the 1cycle run to configure.")
@click.option("--train-subset", type=int, help="Use only the first N training images (class-balanced).")
@click.option("--batch-size", type=int, help="Skip the batch-size search and use this batch.")
@click.option("--max-batch", type=int, default=512, show_default=True, help="Largest batch the search tries.")
@click.option("--memory-budget", type=float, help="GiB the process may use (default: cgroup limit or free memory).")
@click.option("--weight-decays", default="0,1e-5,1e-4,1e-3", show_default=True, help="Comma list to sweep.")
@click.option("--steps", type=int, default=100, show_default=True, help="Optimizer steps per LR range test.")
@click.option("--start-lr", type=float, default=1e-7, show_default=True)
@click.option("--end-lr", type=float, default=10.0, show_default=True)
@click.option("--probes", type=click.IntRange(min=0), default=3, show_default=True,
              help="After the range test, this many 50-step 1cycle probes (its suggestion, /3, /9) pick max_lr "
                   "by held-out loss (0: the range test's suggestion).")
@click.option("--optimizer", default="sgd", show_default=True, help="sgd, nesterov, adam, adamw or nadam.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="Intra-op threads (default: torch's choice).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def tune_cmd(model: str, data: str | None, out: Path, plots: Path | None, epochs: int, train_subset: int | None,
             batch_size: int | None, max_batch: int, memory_budget: float | None, weight_decays: str, steps: int,
             start_lr: float, end_lr: float, probes: int, optimizer: str, seed: int, threads: int | None,
             force: bool) -> None:
    """Find batch size, weight decay and max_lr; write a ready one-cycle config.

    Smith's order: the largest batch that fits, then the largest weight decay that still allows
    a high LR, whose LR range test gives the peak of 1cycle.
    """
    from superconverge.finders.recipe import tune
    from superconverge.train.cifar import default_data
    from superconverge.train.recipe import TrainConfig, to_toml

    if out.exists() and not force:
        raise CliError(f"--out {out} exists; choose another --out or pass --force")
    wds = parse_floats(weight_decays, "--weight-decays")
    budget = None if memory_budget is None else int(memory_budget * 2**30)
    data = data or default_data()
    config = TrainConfig(model=model, data=data, train_subset=train_subset, epochs=epochs, optimizer=optimizer,
                         seed=seed, threads=threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = tune(config, weight_decays=wds, batch_size=batch_size, max_batch=max_batch,
                     memory_budget_bytes=budget, steps=steps, start_lr=start_lr, end_lr=end_lr, probes=probes)
    echo_warnings(caught)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_toml(tuned.config, tuned.comment))
    click.echo(tuned.comment.split("\n\n", 1)[1])  # how each value was found
    click.echo(f"config: {out}")
    if plots:
        written = [tuned.sweep.plot(plots / "weight_decay.png"), tuned.sweep.best.plot(plots / "lr_find.png")]
        if tuned.batch is not None:
            written.insert(0, tuned.batch.plot(plots / "batch_size.png"))
        click.echo("plots: " + ", ".join(str(p) for p in written))
