"""``superconverge lr-find``: the LR range test on CIFAR-10 (or the shipped sample), with suggestions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from superconverge.cli.errors import CliError
from superconverge.cli.options import plot_target


def parse_floats(text: str, name: str) -> list[float]:
    """``"0,1e-5,1e-4"`` -> ``[0.0, 1e-05, 0.0001]``, or a usage error naming the option."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise CliError(f"{name} must be a number or a comma list of numbers, got {text!r}") from err
    if not values:
        raise CliError(f"{name} needs at least one value")
    return values


def echo_warnings(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)


@click.command("lr-find")
@click.option("--model", default="resnet20", show_default=True, help="resnet20..110, preact_resnet18, resnet9, tiny.")
@click.option("--data", help="sample (shipped), download, or a path to CIFAR-10; "
              "default: $SUPERCONVERGE_DATA if set, else sample.")
@click.option("--train-subset", type=int, help="Use only the first N training images (class-balanced).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--weight-decay", default="5e-4", show_default=True,
              help="A value, or a comma list (e.g. 0,1e-5,1e-4,1e-3) for one sweep each and a pick.")
@click.option("--steps", type=int, default=100, show_default=True, help="Optimizer steps in the sweep.")
@click.option("--start-lr", type=float, default=1e-7, show_default=True)
@click.option("--end-lr", type=float, default=10.0, show_default=True)
@click.option("--mode", type=click.Choice(["exp", "linear"]), default="exp", show_default=True)
@click.option("--optimizer", default="sgd", show_default=True, help="sgd, nesterov, adam, adamw or nadam.")
@click.option("--momentum", type=float, default=0.9, show_default=True, help="Momentum (Adam: beta1).")
@click.option("--accumulate", type=int, default=1, show_default=True, help="Batches per optimizer step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="Intra-op threads (default: torch's choice).")
@click.option("--probes", type=click.IntRange(min=0), default=3, show_default=True,
              help="Then train this many 50-step 1cycles (the suggestion, /3, /9, ...) and pick the lowest "
                   "held-out loss as max_lr (0: the range test alone).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Draw the curve(s) to a PNG file.")
@click.option("--json", "as_json", is_flag=True, help="Print the curve(s) and suggestions as JSON.")
def lr_find_cmd(model: str, data: str | None, train_subset: int | None, batch_size: int, weight_decay: str,
                steps: int, start_lr: float, end_lr: float, mode: str, optimizer: str, momentum: float,
                accumulate: int, seed: int, threads: int | None, probes: int, plot: Path | None, as_json: bool) -> None:
    """Sweep the LR up over a short run and suggest 1cycle's peak LR (max_lr).

    With several weight decays, one sweep runs per value from the same weights and the largest
    weight decay that still allows a high LR is picked.
    """
    from superconverge.finders.lr_range import LRFindResult
    from superconverge.finders.recipe import lr_find_config, probe_config
    from superconverge.train.cifar import default_data
    from superconverge.train.run import load_data
    from superconverge.train.recipe import TrainConfig

    wds = parse_floats(weight_decay, "--weight-decay")
    plot = plot_target(plot, "--plot")  # a bad extension fails now, not after the sweep
    data = data or default_data()
    # the sweep holds momentum constant (schedule "constant"), so momentum 0 is a plain SGD sweep
    config = TrainConfig(model=model, data=data, train_subset=train_subset, batch_size=batch_size,
                         optimizer=optimizer, schedule="constant", momentum=momentum, weight_decay=wds[0],
                         accumulate=accumulate, seed=seed, threads=threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_data(data)
        found = lr_find_config(config, weight_decays=wds, steps=steps, start_lr=start_lr, end_lr=end_lr, mode=mode,
                               data=loaded)
        single = isinstance(found, LRFindResult)
        probed = probe_config(config, found.suggestion if single else found.max_lr, momentum=momentum, data=loaded,
                              weight_decay=wds[0] if single else found.pick, probes=probes) if probes else None
    echo_warnings(caught)
    if plot:
        plot = found.plot(plot)
    if as_json:
        out = found.to_dict()
        out["probe"] = probed.to_dict() if probed else None  # its "pick" is the max_lr to train with
        out["config"] = {"model": model, "data": data, "train_subset": train_subset, "batch_size": batch_size,
                         "optimizer": optimizer, "momentum": momentum, "accumulate": accumulate, "seed": seed}
        click.echo(json.dumps(out, allow_nan=False))
        return
    size = f" ({train_subset} images)" if train_subset else ""
    click.echo(f"lr-find: {model} on {data}{size}, batch {batch_size}, {optimizer} momentum {momentum:g}")
    results = [found] if isinstance(found, LRFindResult) else list(found.results)
    first = results[0]
    click.echo(f"  sweep: {steps} steps from {start_lr:g} to {end_lr:g} ({mode})")
    if isinstance(found, LRFindResult):
        click.echo(f"  weight decay {wds[0]:g}: {first.steps} steps in {first.seconds:.1f} s"
                   + (f"; stopped: {first.stopped_early}" if first.stopped_early else ""))
        for name, value in first.suggestions.items():
            click.echo(f"  {name:<15}{value:.4g}")
        click.echo(f"  {'suggestion':<15}{first.suggestion:.4g}  (band {first.band[0]:.4g} to {first.band[1]:.4g})"
                   f"  {'reliable' if first.reliable else 'NOT reliable'}")
        click.echo(f"  {first.advice}")
    else:
        click.echo(f"  {'weight decay':<14}{'suggestion':<12}{'band':<22}{'reliable':<10}steps")
        for wd, r in zip(found.weight_decays, found.results):
            band = f"{r.band[0]:.3g} to {r.band[1]:.3g}"
            click.echo(f"  {wd:<14g}{r.suggestion:<12.4g}{band:<22}{'yes' if r.reliable else 'no':<10}{r.steps}")
        click.echo(f"  pick: weight decay {found.pick:g}, max_lr {found.max_lr:.4g}")
        click.echo(f"  {found.reason}")
    if probed:
        click.echo(f"  probes ({probed.steps}-step 1cycles, held-out loss): "
                   + ", ".join(f"{c:.3g} -> {v:.4g}" for c, v in zip(probed.candidates, probed.losses)))
    click.echo(f"  max_lr {probed.pick if probed else (first.suggestion if single else found.max_lr):.4g}"
               + (" (the probes' pick)" if probed else " (the range test's suggestion)"))
    if plot:
        click.echo(f"plot: {plot}")
