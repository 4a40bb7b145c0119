"""``superconverge study`` and ``superconverge report`` on real output."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.studies import budget


@pytest.mark.parametrize("precision, minutes", [("fp32", 37), ("bf16", 26)])
def test_list_shows_every_study_with_its_cpu_time_in_the_precision_auto_picks(precision, minutes, monkeypatch):
    monkeypatch.setattr(budget, "auto_precision", lambda: precision)  # as on a CPU without / with native bf16
    result = CliRunner().invoke(main, ["study", "--list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == f'times for 2 cores in {precision}, what precision = "auto" picks on this CPU'
    assert lines[1] == f"batch-size                cpu scale: 15 runs, ~{minutes} min on 2 cores"
    assert sum("cpu scale:" in line for line in lines) == 8


def test_bad_input_is_a_usage_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["study", "super-convergance", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'super-convergence'" in result.output
    assert "give --out DIR" in runner.invoke(main, ["study", "schedulers"]).output
    assert "give a study NAME" in runner.invoke(main, ["study"]).output
    result = runner.invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "holds no study" in result.output


def test_run_a_smoke_study_then_its_report(tmp_path):
    out = tmp_path / "wd"
    result = CliRunner().invoke(main, ["study", "weight-decay-finder", "--scale", "smoke", "--out", str(out),
                                         "--threads", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("done    base weight_decay=0.0001 seed 0: test accuracy ")
    assert lines[-2].startswith("weight-decay-finder (smoke): 2 done, 0 failed, 0 queued, 0 running elsewhere; "
                                "1 job(s) x 1 thread(s)")
    assert lines[-1] == f"report: superconverge report {out}"
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and result.output == f"report: {tmp_path / 'r.html'}\n"
    assert "weight-decay-finder" in (tmp_path / "r.html").read_text()
