"""The README's two set-up commands stay true: CI runs the test command, the main job runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from superconverge.cli import main

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    assert len(setup_commands()) == 2


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    for step in setup_commands()[1].split(" && "):
        if step.startswith(("python3 -m venv", ". .venv")):
            continue
        assert step in ci, f"README step {step!r} is missing from .ci/run"


def test_readme_main_job_is_a_real_command():
    main_job = setup_commands()[0].split(" && ")[-1]
    args = shlex.split(main_job)
    assert args[0] == "superconverge"
    result = CliRunner().invoke(main, [*args[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_quickstart_runs_small(tmp_path):
    """The main job end to end, shrunk (the real one takes ~2 minutes: see the slow test)."""
    result = CliRunner().invoke(main, ["quickstart", "--model", "tiny", "--epochs", "1", "--quiet",
                                       "--out", str(tmp_path / "qs")])
    assert result.exit_code == 0, result.output
    assert re.search(r"suggested peak LR [0-9.e-]+ \(band", result.stdout)
    assert re.search(r"final test accuracy: 0\.\d{4}", result.stdout)
    for name in ["lr_find.png", "lr_find.json", "curves.png", "schedule.png", "summary.json"]:
        assert (tmp_path / "qs" / name).is_file(), name


@pytest.mark.slow
def test_readme_main_job_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = shlex.split(setup_commands()[0].split(" && ")[-1])
    result = CliRunner().invoke(main, args[1:])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "quickstart" / "summary.json").is_file()
