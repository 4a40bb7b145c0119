"""The README's two set-up commands stay true: CI runs the test command, the main job runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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


def test_readme_main_job_runs(tmp_path, monkeypatch):
    main_job = setup_commands()[0].split(" && ")[-1]
    args = shlex.split(main_job)
    assert args[0] == "superconverge"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args[1:])
    assert result.exit_code == 0, result.output
    assert any(tmp_path.iterdir())  # it wrote its plot
