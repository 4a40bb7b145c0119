"""``superconverge speedrun``: CIFAR-10 from scratch, all 50,000 training images, timed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from superconverge.cli.errors import CliError
from superconverge.cli.options import parse_sets


@click.command("speedrun")
@click.option("--data", default=None,
              help="CIFAR-10: a path (official archive, folder, .tar.gz), 'download', or 'sample' (for a "
                   "smoke run). Default: $SUPERCONVERGE_DATA, else download.")
@click.option("--recipe", "recipe_name", default="cpu94", show_default=True,
              help="A built-in recipe name (cpu94, airbench94) or a recipe TOML file.")
@click.option("--target", type=float, default=0.94, show_default=True,
              help="Accuracy to report as reached or not (the headline accuracy, with TTA if on).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=None,
              help="Override the recipe's epochs (its low-resolution epochs scale along unless set).")
@click.option("--holdout", type=int, default=0, show_default=True,
              help="Tune honestly: hold out this many training images as the test set (the real test "
                   "set is not touched).")
@click.option("--eval-each-epoch", is_flag=True, help="Also measure test accuracy after every epoch "
                                                       "(timed apart; not counted).")
@click.option("--threads", type=int, default=None, help="CPU threads (default: torch's choice).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Change one recipe value (a TOML value or a bare word), e.g. --set 'widths=[64,192,192]'.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the JSON result here.")
@click.option("--save-model", type=click.Path(dir_okay=False), default=None,
              help="Also save the trained network here (after the clock stops; "
                   "superconverge.speedrun.run.load_model reads it).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON only.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def speedrun_cmd(data: str | None, recipe_name: str, target: float, seed: int, epochs: int | None, holdout: int,
                 eval_each_epoch: bool, threads: int | None, device: str, sets: tuple[str, ...], out: str | None,
                 save_model: str | None, as_json: bool, quiet: bool) -> None:
    """Train CIFAR-10 from scratch as fast as this machine allows and report accuracy and time.

    The clock starts with the images in memory and stops when the final test
    evaluation (plain, mirrored and, where the recipe asks, shifted views) is done;
    see docs/SPEEDRUN.md.
    """
    from superconverge.speedrun import holdout_split, load_recipe, speedrun
    from superconverge.speedrun.run import with_overrides
    from superconverge.train.cifar import load_cifar10
    from superconverge.train.run import load_data
    from superconverge.train.runtime import pick_device

    recipe = load_recipe(recipe_name)
    changes = parse_sets(sets)
    if epochs is not None and changes.get("epochs", epochs) != epochs:
        raise CliError(f"--epochs {epochs} and --set epochs={changes['epochs']} disagree: give one of them")
    recipe = with_overrides(recipe, **{"epochs": epochs, **changes})
    if threads is not None and threads < 1:
        raise CliError(f"--threads must be >= 1, got {threads}")
    pick_device(device)  # checked before the data set is read, which takes a while
    cifar = load_data(data) if data is not None else load_cifar10(None)
    if holdout:
        cifar = holdout_split(cifar, holdout)

    def show(row: dict) -> None:
        if not as_json:
            acc = f", test accuracy {row['accuracy']:.4f}" if "accuracy" in row else ""
            click.echo(f"epoch {row['epoch']:>2}: {row['seconds']:7.1f} s, train loss {row['train_loss']:.3f}{acc}",
                       err=True)

    if not as_json:
        click.echo(f"recipe {recipe.name}: {recipe.epochs} epochs, batch {recipe.batch_size}, widths "
                   f"{list(recipe.widths)}; {len(cifar.train_labels)} train / {len(cifar.test_labels)} "
                   f"{'held-out' if holdout else 'test'} images", err=True)
    result = speedrun(recipe, cifar, seed=seed, device=device, num_threads=threads,
                      eval_each_epoch=eval_each_epoch, progress=not quiet and not as_json, on_epoch=show,
                      save_model=save_model)
    result["holdout"] = holdout
    result["target"] = target
    result["reached_target"] = result["test_accuracy"] >= target
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    tta, shifted = result["test_accuracy_tta"], result["test_accuracy_tta_translate"]
    click.echo(f"test accuracy {result['test_accuracy_plain']:.4f} plain"
               + (f", {tta:.4f} with flip TTA" if tta is not None else "")
               + (f", {shifted:.4f} with flip + translate TTA" if shifted is not None else "")
               + f" ({'held-out split' if holdout else 'test set'}); target {target:.4f} "
               + ("reached" if result["reached_target"] else "NOT reached"))
    click.echo(f"time: {result['train_seconds']:.1f} s training + {result['eval_seconds']:.1f} s evaluation = "
               f"{result['total_seconds']:.1f} s; {result['epochs']} epochs, {result['steps']} steps, "
               f"{result['train_gflops_per_second']:.0f} GFLOP/s")
