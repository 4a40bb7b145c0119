"""``superconverge schedule``: real invocations, exact output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.schedules import one_cycle


def run(*args: str):
    return CliRunner().invoke(main, ["schedule", *args])


def test_list_names_every_schedule_and_preset():
    out = run("--list").output
    for name in ["one-cycle", "cyclical", "sgdr", "cosine", "trapezoid", "step", "multistep",
                 "exponential-decay", "polynomial", "inverse-sqrt", "fastai-one-cycle",
                 "one_cycle_lr", "reduce_lr_on_plateau", "hf_wsd"]:
        assert name in out


def test_one_cycle_summary_is_exact():
    result = run("one-cycle", "--max-lr", "0.1", "--total-steps", "1000")
    assert result.exit_code == 0
    assert result.output == (
        "one-cycle: 1000 steps\n"
        "  lr            start 0.004  max 0.1 (step 299)  min 4e-07 (step 999)  end 4e-07\n"
        "  momentum      start 0.95  max 0.95 (step 0)  min 0.85 (step 299)  end 0.95\n"
    )


def test_json_holds_every_step_of_every_key():
    result = run("one-cycle", "--max-lr", "0.1", "--epochs", "4", "--steps-per-epoch", "25", "--json")
    values = json.loads(result.output)
    expected = one_cycle(100, 0.1)
    assert set(values) == {"lr", "momentum"}
    assert values["lr"] == [expected["lr"].at(t) for t in range(100)]
    assert values["momentum"] == [expected["momentum"].at(t) for t in range(100)]


def test_accumulation_sets_the_horizon():
    result = run("one-cycle", "--max-lr", "0.1", "--epochs", "2", "--steps-per-epoch", "10",
                 "--accumulate", "4", "--json")
    assert len(json.loads(result.output)["lr"]) == 6  # 2 epochs * ceil(10 / 4)


def test_three_phase_linear_flags():
    result = run("one-cycle", "--max-lr", "1", "--total-steps", "100", "--three-phase", "--anneal", "linear",
                 "--no-momentum", "--json")
    values = json.loads(result.output)
    assert list(values) == ["lr"]
    assert values["lr"][58] == pytest.approx(0.04)  # back at the initial LR at 2 * (pct*T - 1)


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "s.png"
    result = run("sgdr", "--max-lr", "0.1", "--t-0", "10", "--t-mult", "2", "--total-steps", "70",
                 "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {path}" in result.output


def test_warmup_in_front_of_any_schedule():
    values = json.loads(run("cosine", "--max-lr", "0.1", "--total-steps", "100", "--warmup-steps", "10",
                            "--json").output)["lr"]
    assert len(values) == 100
    assert values[0] == pytest.approx(0.001) and values[10] == pytest.approx(0.1)


def test_lint_warns_about_a_zero_start_and_a_short_horizon():
    result = CliRunner().invoke(main, ["schedule", "linear", "--start", "0", "--end", "1", "--total-steps",
                                       "10", "--epochs", "2", "--steps-per-epoch", "10", "--accumulate", "4"])
    assert "warning: lr starts at 0" in result.stderr
    assert "planned for 10 steps but the run has only 6 optimizer steps" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["one-cycle", "--max-lr", "0.1", "--total-steps", "100", "--pct-start", "1.5"],
         "--pct-start must lie strictly between 0 and 1, got 1.5"),
        (["one-cycle", "--max-lr", "0", "--total-steps", "100"], "--max-lr must be a positive number"),
        (["one-cycle", "--max-lr", "-1", "--total-steps", "100"], "--max-lr must be a positive number"),
        (["one-cycle", "--max-lr", "0.1", "--total-steps", "100", "--div-factor", "0"],
         "--div-factor must be a positive number"),
        (["one-cycle", "--max-lr", "0.1", "--total-steps", "0"], "--total-steps must be a positive integer"),
        (["one-cycle", "--max-lr", "0.1", "--total-steps", "2.5"], "'2.5' is not a valid integer"),
        (["one-cycle", "--max-lr", "0.1", "--total-steps", "100", "--max-momentum", "1.0"],
         r"--max-momentum must lie in [0, 1)"),
        (["one-cycle", "--max-lr", "0.1"], "one-cycle needs the run length"),
        (["one-cycle", "--max-lr", "0.1", "--epochs", "3"], "--epochs and --steps-per-epoch go together"),
        (["multistep", "--lr", "0.1", "--milestones", "30,10", "--total-steps", "50"],
         "--milestones must be strictly increasing"),
        (["trapezoid", "--warmup-steps", "60", "--decay-steps", "60", "--total-steps", "100"], "overlap"),
        (["one-cycel", "--max-lr", "0.1"], "No such command 'one-cycel'"),
    ],
)
def test_bad_input_says_what_is_wrong(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_name_suggests_the_closest():
    assert "'one-cycle'" in run("one-cycel").output
    assert "'cosine'" in run("cosin").output


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.output.startswith("superconverge, version ")


def test_the_command_line_starts_without_torch():
    import subprocess
    import sys

    code = "import sys, superconverge.cli; print('torch' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"
