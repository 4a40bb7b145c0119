"""The ``superconverge`` command line: one module per command, each thin."""

from __future__ import annotations

import os

import click

from superconverge import __version__
from superconverge.cli.errors import ErrorReportingGroup
from superconverge.cli.lr_find import lr_find_cmd
from superconverge.cli.quickstart import quickstart
from superconverge.cli.report import report
from superconverge.cli.schedule import schedule
from superconverge.cli.speedrun import speedrun_cmd
from superconverge.cli.study import study
from superconverge.cli.tune import tune_cmd
from superconverge.cli.train import train
from superconverge.train.allocator import keep_freed_memory


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="superconverge")
def main() -> None:
    """LR range tests, 1cycle and every hyperparameter schedule for PyTorch.

    Errors print one line and exit with status 2 for bad input (a flag, value, path or
    config) or 1 for a failure while running (divergence, a damaged file).
    """
    if os.environ.get("SUPERCONVERGE_SYSTEM_MALLOC") != "1":
        keep_freed_memory()  # big tensors reuse pages instead of faulting in fresh ones each step


main.add_command(quickstart)
main.add_command(schedule)
main.add_command(lr_find_cmd)
main.add_command(tune_cmd)
main.add_command(train)
main.add_command(study)
main.add_command(report)
main.add_command(speedrun_cmd)
