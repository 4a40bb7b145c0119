"""``superconverge report``: render the HTML report of a study directory (or a folder of them)."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file to write (default: DIRECTORY/report.html).")
def report(directory, out) -> None:
    """Write a self-contained HTML report of the studies in DIRECTORY, from their stores alone."""
    from superconverge.report.html import ReportError, write_report
    from superconverge.studies.store import StoreError

    try:
        path = write_report(directory, out)
    except (ReportError, StoreError) as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"report: {path}")
