"""``superconverge study``: list the built-in studies, or run one at a scale into a study directory."""

from __future__ import annotations

import textwrap

import click

from superconverge.studies.spec import SCALES


@click.command("study")
@click.argument("name", required=False)
@click.option("--list", "list_", is_flag=True, help="List the built-in studies with their cpu-scale time on this CPU.")
@click.option("--scale", type=click.Choice(SCALES), default="smoke", show_default=True,
              help="smoke: seconds, checks the machinery; cpu: about an hour on 2 cores; paper: needs a GPU.")
@click.option("--out", type=click.Path(file_okay=False), help="Study directory (created; rerun to resume).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Runs in parallel (threads split between them).")
@click.option("--seeds", type=int, default=None, help="Seeds per arm (default: the spec's, for this scale).")
@click.option("--threads", type=int, default=None, help="Threads per job (default: cores // jobs).")
@click.option("--retry-failed", is_flag=True, help="Run failed runs again.")
def study(name, list_, scale, out, jobs, seeds, threads, retry_failed) -> None:
    """Run the study NAME (a built-in name or a spec .toml) and store its results in --out."""
    from superconverge.studies.spec import SpecError, builtin_names, expand, load_spec

    if list_:
        from superconverge.studies.budget import auto_precision, study_seconds

        click.echo(f'times for 2 cores in {auto_precision()}, what precision = "auto" picks on this CPU')
        for built_in in builtin_names():
            spec = load_spec(built_in, "cpu")
            runs = expand(spec)
            click.echo(f"{built_in:<25} cpu scale: {len(runs):>2} runs, ~{study_seconds(runs) / 60:.0f} min on 2 cores")
            click.echo(textwrap.fill(spec.claim, 100, initial_indent="    ", subsequent_indent="    "))
        return
    if not name:
        raise click.UsageError("give a study NAME (see --list) or --list")
    if not out:
        raise click.UsageError("give --out DIR, the study directory to write (rerun with it to resume)")
    from superconverge.studies.runner import run_study
    from superconverge.studies.store import StoreError

    try:
        result = run_study(name, scale, out, jobs=jobs, seeds=seeds, threads=threads, retry_failed=retry_failed,
                           log=click.echo)
    except (SpecError, StoreError, ValueError) as err:
        raise click.UsageError(str(err)) from err
    c = result.counts
    click.echo(f"{result.name} ({result.scale}): {c['done']} done, {c['failed']} failed, {c['queued']} queued, "
               f"{c['running']} running elsewhere; {result.jobs} job(s) x {result.threads} thread(s)")
    click.echo(f"report: superconverge report {out}")
