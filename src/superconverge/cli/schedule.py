"""``superconverge schedule NAME``: preview a schedule without training."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from superconverge import schedules as S
from superconverge.cli.errors import ErrorReportingGroup
from superconverge.cli.options import plot_target
from superconverge.schedules.lint import lint, optimizer_steps

Policy = dict[str, S.Schedule]

# Presets bound to an optimizer, for --list (superconverge.optim.presets).
PRESETS = {
    "one_cycle_lr": "torch OneCycleLR", "cyclic_lr": "torch CyclicLR",
    "cosine_annealing_warm_restarts": "torch CosineAnnealingWarmRestarts",
    "cosine_annealing_lr": "torch CosineAnnealingLR", "step_lr": "torch StepLR",
    "multistep_lr": "torch MultiStepLR", "exponential_lr": "torch ExponentialLR",
    "linear_lr": "torch LinearLR", "polynomial_lr": "torch PolynomialLR",
    "reduce_lr_on_plateau": "torch ReduceLROnPlateau", "fit_one_cycle": "fastai fit_one_cycle",
    "hf_wsd": "Hugging Face get_wsd_schedule",
}


@click.group("schedule", cls=ErrorReportingGroup, invoke_without_command=True)
@click.option("--list", "list_", is_flag=True, help="List every schedule and preset.")
@click.pass_context
def schedule(ctx: click.Context, list_: bool) -> None:
    """Preview a schedule without training: a summary, --json values or a --plot."""
    if list_:
        width = max(map(len, ctx.command.commands)) + 2  # type: ignore[attr-defined]
        click.echo("Schedules (superconverge schedule NAME --help):")
        for name, cmd in sorted(ctx.command.commands.items()):  # type: ignore[attr-defined]
            click.echo(f"  {name:<{width}}{cmd.get_short_help_str(70)}")
        click.echo("\nPresets for an optimizer (superconverge.optim):")
        for name, what in PRESETS.items():
            click.echo(f"  {name:<32}{what}")
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def preview(name: str, warmup: bool = True) -> Callable[[Callable[..., Policy]], click.Command]:
    """Turn ``build(total_steps, **options) -> policy`` into a preview subcommand."""

    def decorate(build: Callable[..., Policy]) -> click.Command:
        @functools.wraps(build)
        def command(total_steps: int | None, epochs: int | None, steps_per_epoch: int | None,
                    accumulate: int, as_json: bool, plot: str | None, warmup_steps: int = 0,
                    warmup_shape: str = "linear", **options: Any) -> None:
            total, run = _horizon(total_steps, epochs, steps_per_epoch, accumulate)
            plot = plot_target(plot, "--plot")
            if warmup_steps:  # the library's ValueErrors become one-line errors naming the flags
                if total is not None and warmup_steps >= total:
                    raise ValueError(f"--warmup-steps {warmup_steps} leaves no steps of a {total}-step run")
                inner = build(None if total is None else total - warmup_steps, **options)
                policy = dict(inner, lr=S.warmup(inner["lr"], warmup_steps, shape=warmup_shape))
            else:
                policy = build(total, **options)
            _emit(name, policy, total, run, as_json, plot)

        options = [
            click.option("--total-steps", type=int, help="Optimizer steps in the run."),
            click.option("--epochs", type=int, help="With --steps-per-epoch, instead of --total-steps."),
            click.option("--steps-per-epoch", type=int, help="Batches per epoch."),
            click.option("--accumulate", type=int, default=1, show_default=True,
                         help="Batches per optimizer step (gradient accumulation)."),
            click.option("--json", "as_json", is_flag=True, help="Print {key: [value per step]} as JSON."),
            click.option("--plot", type=click.Path(dir_okay=False), help="Draw the curves to a PNG file."),
        ]
        if warmup:
            options += [
                click.option("--warmup-steps", type=int, default=0, help="Warm the LR up first."),
                click.option("--warmup-shape", type=click.Choice(["linear", "cos", "exp"]), default="linear"),
            ]
        for opt in reversed(options):
            command = opt(command)
        return schedule.command(name, help=build.__doc__)(command)

    return decorate


def _horizon(total: int | None, epochs: int | None, spe: int | None, acc: int) -> tuple[int | None, int | None]:
    """(steps to build the schedule for, optimizer steps the run really has)."""
    if (epochs is None) != (spe is None):
        raise click.UsageError("--epochs and --steps-per-epoch go together")
    if total is not None and total <= 0:
        raise click.UsageError(f"--total-steps must be a positive integer, got {total}")
    run = None
    if epochs is not None and spe is not None:
        run = optimizer_steps(epochs, spe, acc)
    return (total if total is not None else run), run


def _emit(name: str, policy: Policy, total: int | None, run: int | None, as_json: bool, plot: Path | None) -> None:
    n = total if total is not None else _length(policy)
    if n is None:
        raise click.UsageError(f"{name} is unbounded: give --total-steps (or --epochs and --steps-per-epoch)")
    values = {k: [s.at(t) for t in range(n)] for k, s in policy.items()}
    for warning in lint(policy, run):
        click.echo(f"warning: {warning}", err=True)
    if plot:
        from superconverge.report.plots import plot_curves

        plot = plot_curves(values, plot, title=f"{name}, {n} steps", log_keys=())
    if as_json:
        click.echo(json.dumps(values))
        return
    click.echo(f"{name}: {n} steps")
    for key, vals in values.items():
        lo, hi = min(range(n), key=vals.__getitem__), max(range(n), key=vals.__getitem__)
        click.echo(
            f"  {key:<13} start {vals[0]:.4g}  max {vals[hi]:.4g} (step {hi})  "
            f"min {vals[lo]:.4g} (step {lo})  end {vals[-1]:.4g}"
        )
    if plot:
        click.echo(f"plot: {plot}")


def _length(policy: Policy) -> int | None:
    totals = [s.total_steps for s in policy.values() if s.total_steps is not None]
    return int(math.ceil(max(totals))) if totals else None


def _needs(total: int | None, name: str) -> int:
    if total is None:
        raise ValueError(f"{name} needs the run length: give --total-steps (or --epochs and --steps-per-epoch)")
    return total


# -- the schedules ------------------------------------------------------------------

momentum_opts = [
    click.option("--base-momentum", type=float, default=0.85, show_default=True),
    click.option("--max-momentum", type=float, default=0.95, show_default=True),
    click.option("--no-momentum", is_flag=True, help="Schedule the LR only."),
]


def _with(opts: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(opts):
            f = o(f)
        return f

    return apply


@preview("one-cycle", warmup=False)
@click.option("--max-lr", type=float, required=True, help="Peak learning rate.")
@click.option("--pct-start", type=float, default=0.3, show_default=True, help="Fraction spent rising.")
@click.option("--div-factor", type=float, default=25.0, show_default=True, help="initial = max_lr / div.")
@click.option("--final-div-factor", type=float, default=1e4, show_default=True, help="min = initial / this.")
@click.option("--anneal", type=click.Choice(["cos", "linear"]), default="cos", show_default=True)
@click.option("--three-phase", is_flag=True, help="Back down to the initial LR, then anneal.")
@_with(momentum_opts)
def one_cycle(total, max_lr, pct_start, div_factor, final_div_factor, anneal, three_phase,
              base_momentum, max_momentum, no_momentum) -> Policy:
    """1cycle (PyTorch's OneCycleLR) with its inverse momentum curve."""
    return S.one_cycle(_needs(total, "one-cycle"), max_lr, pct_start=pct_start, anneal=anneal,
                       div_factor=div_factor, final_div_factor=final_div_factor,
                       three_phase=three_phase, cycle_momentum=not no_momentum,
                       base_momentum=base_momentum, max_momentum=max_momentum)


@preview("fastai-one-cycle", warmup=False)
@click.option("--lr-max", type=float, required=True)
@click.option("--pct-start", type=float, default=0.25, show_default=True)
@click.option("--div", type=float, default=25.0, show_default=True)
@click.option("--div-final", type=float, default=1e5, show_default=True)
def fastai_one_cycle(total, lr_max, pct_start, div, div_final) -> Policy:
    """fastai's fit_one_cycle: cosines joined at pct_start, moms 0.95/0.85/0.95."""
    return S.fastai_one_cycle(_needs(total, "fastai-one-cycle"), lr_max, div=div, div_final=div_final,
                              pct_start=pct_start)


@preview("cyclical")
@click.option("--base-lr", type=float, required=True)
@click.option("--max-lr", type=float, required=True)
@click.option("--step-size-up", type=int, default=2000, show_default=True)
@click.option("--step-size-down", type=int)
@click.option("--mode", type=click.Choice(["triangular", "triangular2", "exp_range"]), default="triangular")
@click.option("--gamma", type=float, default=1.0, show_default=True)
@click.option("--base-momentum", type=float, default=0.8, show_default=True)
@click.option("--max-momentum", type=float, default=0.9, show_default=True)
@click.option("--no-momentum", is_flag=True)
def cyclical(total, base_lr, max_lr, step_size_up, step_size_down, mode, gamma, base_momentum,
             max_momentum, no_momentum) -> Policy:
    """Cyclical LR (PyTorch's CyclicLR): triangular, triangular2 or exp_range."""
    return S.cyclical(base_lr, max_lr, step_size_up, step_size_down, mode=mode, gamma=gamma,
                      cycle_momentum=not no_momentum, base_momentum=base_momentum, max_momentum=max_momentum)


@preview("sgdr")
@click.option("--max-lr", type=float, required=True)
@click.option("--t-0", type=int, required=True, help="Length of the first cycle.")
@click.option("--t-mult", type=int, default=1, show_default=True, help="Each cycle is this much longer.")
@click.option("--eta-min", type=float, default=0.0, show_default=True)
@click.option("--decay", type=float, default=1.0, show_default=True, help="Peak shrinks by this per cycle.")
def sgdr(total, max_lr, t_0, t_mult, eta_min, decay) -> Policy:
    """Cosine annealing with warm restarts (CosineAnnealingWarmRestarts)."""
    return {"lr": S.sgdr(max_lr, t_0, t_mult=t_mult, eta_min=eta_min, decay=decay)}


@preview("cosine")
@click.option("--max-lr", type=float, required=True)
@click.option("--floor", type=float, help="Final LR (default: floor-ratio * max-lr).")
@click.option("--floor-ratio", type=float, default=0.01, show_default=True)
def cosine(total, max_lr, floor, floor_ratio) -> Policy:
    """Cosine decay to a floor (CosineAnnealingLR with eta_min)."""
    return {"lr": S.cosine_with_floor(max_lr, _needs(total, "cosine"), floor=floor, floor_ratio=floor_ratio)}


@preview("linear")
@click.option("--start", type=float, required=True)
@click.option("--end", type=float, required=True)
def linear(total, start, end) -> Policy:
    """Linear from --start to --end over the run."""
    return {"lr": S.linear(start, end, _needs(total, "linear"))}


@preview("exponential")
@click.option("--start", type=float, required=True)
@click.option("--end", type=float, required=True)
def exponential(total, start, end) -> Policy:
    """Geometric from --start to --end over the run (the LR range test's sweep)."""
    return {"lr": S.exponential(start, end, _needs(total, "exponential"))}


@preview("polynomial")
@click.option("--start", type=float, required=True)
@click.option("--end", type=float, default=0.0, show_default=True)
@click.option("--power", type=float, default=1.0, show_default=True)
def polynomial(total, start, end, power) -> Policy:
    """Polynomial decay (PolynomialLR)."""
    return {"lr": S.polynomial(start, end, _needs(total, "polynomial"), power)}


@preview("step")
@click.option("--lr", type=float, required=True)
@click.option("--step-size", type=int, required=True)
@click.option("--gamma", type=float, default=0.1, show_default=True)
def step(total, lr, step_size, gamma) -> Policy:
    """Step decay (StepLR): multiply by gamma every step-size steps."""
    return {"lr": S.step_decay(lr, step_size, gamma)}


@preview("multistep")
@click.option("--lr", type=float, required=True)
@click.option("--milestones", required=True, help="Comma-separated steps, e.g. 30000,60000.")
@click.option("--gamma", type=float, default=0.1, show_default=True)
def multistep(total, lr, milestones, gamma) -> Policy:
    """Multistep decay (MultiStepLR): multiply by gamma at each milestone."""
    try:
        ms = [int(m) for m in milestones.split(",") if m.strip()]
    except ValueError as err:
        raise ValueError(f"--milestones must be comma-separated integers, got {milestones!r}") from err
    return {"lr": S.multistep(lr, ms, gamma)}


@preview("exponential-decay")
@click.option("--lr", type=float, required=True)
@click.option("--gamma", type=float, required=True)
def exponential_decay(total, lr, gamma) -> Policy:
    """Multiply by gamma every step (ExponentialLR)."""
    return {"lr": S.exponential_decay(lr, gamma)}


@preview("constant")
@click.option("--lr", type=float, required=True)
def constant(total, lr) -> Policy:
    """A constant LR (with --warmup-steps, a warmup then constant)."""
    return {"lr": S.constant(lr, total)}


@preview("trapezoid", warmup=False)
@click.option("--peak", type=float, default=1.0, show_default=True)
@click.option("--warmup-steps", "rise", type=int, required=True)
@click.option("--decay-steps", type=int, required=True)
@click.option("--start-ratio", type=float, default=0.0, show_default=True)
@click.option("--min-ratio", type=float, default=0.0, show_default=True)
@click.option("--warmup-shape", "rise_shape", type=click.Choice(["linear", "cos", "exp"]), default="linear")
@click.option("--decay-shape", type=click.Choice(["linear", "cos", "sqrt", "poly"]), default="linear")
def trapezoid(total, peak, rise, decay_steps, start_ratio, min_ratio, rise_shape, decay_shape) -> Policy:
    """Trapezoid / warmup-stable-decay: rise, hold, fall."""
    return {"lr": S.trapezoid(_needs(total, "trapezoid"), rise, decay_steps, peak=peak, start_ratio=start_ratio,
                              min_ratio=min_ratio, warmup_shape=rise_shape, decay_shape=decay_shape)}


@preview("inverse-sqrt", warmup=False)
@click.option("--peak", type=float, required=True)
@click.option("--warmup-steps", "rise", type=int, required=True)
@click.option("--timescale", type=float)
def inverse_sqrt(total, peak, rise, timescale) -> Policy:
    """Linear warmup, then 1/sqrt(step) decay."""
    return {"lr": S.inverse_sqrt(peak, rise, timescale=timescale, start=peak / max(rise, 1))}
