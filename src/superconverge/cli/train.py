"""``superconverge train``: run a recipe from flags and/or a TOML config into a run directory."""

from __future__ import annotations

from typing import Any

import click

from superconverge.cli.errors import FAILURE, INTERRUPTED, CliError
from superconverge.cli.options import parse_sets
from superconverge.train.recipe import FIELDS, OPTIMIZERS, SCHEDULES, TrainConfig, from_dict, read_toml

# flag -> config key, for the settings people change most; --set covers every other key.
FLAGS: list[tuple[str, str, type, str]] = [
    ("--model", "model", str, "Model name (resnet20, resnet56, resnet9, preact_resnet18, tiny, ...)."),
    ("--data", "data", str, "CIFAR-10: 'sample' (shipped), 'download', or a path (archive, folder, .tar.gz); "
     "default: $SUPERCONVERGE_DATA if set, else 'sample'."),
    ("--epochs", "epochs", int, "Epochs to train."),
    ("--batch-size", "batch_size", int, "Examples per batch."),
    ("--optimizer", "optimizer", str, f"One of: {', '.join(OPTIMIZERS)} (the last four: the lrfree extra)."),
    ("--schedule", "schedule", str, f"One of: {', '.join(SCHEDULES)}."),
    ("--max-lr", "max_lr", float, "Peak learning rate of the 1cycle (initial LR for decays)."),
    ("--pct-start", "pct_start", float, "Fraction of the run spent warming up (1cycle)."),
    ("--weight-decay", "weight_decay", float, "Weight decay."),
    ("--train-subset", "train_subset", int, "Train on this many images (class-balanced)."),
    ("--seed", "seed", int, "Seed for weights, data order and augmentation."),
    ("--threads", "threads", int, "Intra-op CPU threads."),
    ("--precision", "precision", str, "auto, bf16, fp16 or fp32."),
    ("--device", "device", str, "auto, cpu or cuda[:N]."),
    ("--checkpoint-every", "checkpoint_every", int, "Also checkpoint every N optimizer steps."),
]


def config_options(f: Any) -> Any:
    for flag, key, kind, help_ in reversed(FLAGS):
        f = click.option(flag, key, type=kind, default=None, help=help_)(f)
    return f


def explicit_changes(config_file: str | None, overrides: dict[str, Any], sets: tuple[str, ...]) -> dict[str, Any]:
    """The keys the user set: the config file's, then ``--set KEY=VALUE``, then flags (later wins)."""
    changes = dict(read_toml(config_file)) if config_file else {}
    sets_ = parse_sets(sets)
    flags = {k: v for k, v in overrides.items() if v is not None}
    for key in sets_.keys() & flags.keys():
        if sets_[key] != flags[key]:
            flag = "--" + key.replace("_", "-")
            raise CliError(f"{flag} {flags[key]} and --set {key}={sets_[key]} disagree: give one of them")
    return changes | sets_ | flags


def resolve(config_file: str | None, overrides: dict[str, Any], sets: tuple[str, ...]) -> TrainConfig:
    """Defaults, config file, then --set KEY=VALUE, then explicit flags (later wins).

    The default data is $SUPERCONVERGE_DATA when it is set, else the shipped sample.
    """
    from superconverge.train.cifar import default_data

    return from_dict(explicit_changes(config_file, overrides, sets), TrainConfig(data=default_data()))


@click.command("train")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config (e.g. from tune).")
@config_options
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help=f"Any config key (TOML value or a bare word): {', '.join(FIELDS)}.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory (--epochs N larger than planned extends it).")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out directory.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
def train(config_file, sets, out, resume_dir, force, quiet, **overrides) -> None:
    """Train a model with 1cycle (or another schedule) and write a run directory."""
    from superconverge.train import distributed
    from superconverge.train.run import resume_config
    from superconverge.train.run import train as run_training

    if bool(out) == bool(resume_dir):
        raise click.UsageError("give exactly one of --out DIR (new run) or --resume DIR")
    if resume_dir:
        config = resume_config(resume_dir, explicit_changes(config_file, overrides, sets))
    else:
        config = resolve(config_file, overrides, sets)
    distributed.setup_from_env()
    where = out or resume_dir
    try:
        summary = run_training(config, where, resume=bool(resume_dir), force=force, progress=not quiet,
                               on_epoch=None if quiet else _epoch_line(config.epochs))
    except KeyboardInterrupt:
        raise CliError(f"interrupted; continue the run with: superconverge train --resume {where}",
                       INTERRUPTED) from None
    except RuntimeError as err:  # divergence or a damaged checkpoint: the message names what to do
        raise CliError(str(err), FAILURE) from None
    if distributed.rank() == 0:
        acc = summary["test_accuracy"]
        click.echo(f"test accuracy {acc:.4f} after {summary['epochs']} epochs ({summary['steps']} steps, "
                   f"{summary['train_seconds']:.0f} s of training)")
        plots = ", curves.png, schedule.png" if config.plots else ""
        click.echo(f"run directory: {where} (summary.json, history.csv{plots})")


def _epoch_line(total: int):
    def show(row: dict[str, float]) -> None:
        held = f"  val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.4f}" if "val_loss" in row else ""
        test = f"  test loss {row['test_loss']:.3f} acc {row['test_accuracy']:.4f}" if "test_loss" in row else ""
        click.echo(f"epoch {int(row['epoch']) + 1}/{total}  train loss {row['train_loss']:.3f} "
                   f"acc {row['train_accuracy']:.4f}{held}{test}  {row['seconds']:.0f} s")

    return show
