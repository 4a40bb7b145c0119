"""``superconverge lr-find``: real sweeps on the shipped sample, exact output, every bad input."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.finders import DataCycledWarning
from superconverge.finders.recipe import lr_find_config, probe_config
from superconverge.train.recipe import TrainConfig

SMALL = ["--model", "tiny", "--data", "sample", "--train-subset", "640", "--batch-size", "32", "--steps", "30",
         "--start-lr", "1e-5", "--threads", "2"]


def lr_find(*args: str):
    return CliRunner().invoke(main, ["lr-find", *args])


def test_summary_lines_match_the_library_call(tmp_path):
    plot = tmp_path / "curve.png"
    result = lr_find(*SMALL, "--plot", str(plot))
    assert result.exit_code == 0, result.output
    with pytest.warns(DataCycledWarning):  # 20 batches of 32 for 30 steps
        expected = lr_find_config(TrainConfig(model="tiny", train_subset=640, batch_size=32, threads=2),
                                  steps=30, start_lr=1e-5)
    lines = result.stdout.splitlines()
    assert lines[0] == "lr-find: tiny on sample (640 images), batch 32, sgd momentum 0.9"
    assert lines[1] == "  sweep: 30 steps from 1e-05 to 10 (exp)"
    assert re.fullmatch(rf"  weight decay 0.0005: {expected.steps} steps in \d+\.\d s(; stopped: .*)?", lines[2])
    assert len(expected.suggestions) == 5
    for line, (name, value) in zip(lines[3:8], expected.suggestions.items()):
        assert line == f"  {name:<15}{value:.4g}"
    verdict = "reliable" if expected.reliable else "NOT reliable"
    assert lines[8] == (f"  suggestion     {expected.suggestion:.4g}  (band {expected.band[0]:.4g} to "
                        f"{expected.band[1]:.4g})  {verdict}")
    assert lines[9] == f"  {expected.advice}"
    probed = probe_config(TrainConfig(model="tiny", train_subset=640, batch_size=32, threads=2), expected.suggestion)
    assert lines[10] == "  probes (50-step 1cycles, held-out loss): " + ", ".join(
        f"{c:.3g} -> {v:.4g}" for c, v in zip(probed.candidates, probed.losses))
    assert lines[11] == f"  max_lr {probed.pick:.4g} (the probes' pick)"
    assert lines[12] == f"plot: {plot}"
    assert plot.stat().st_size > 10_000


def test_json_holds_the_curve_and_the_suggestions():
    result = lr_find(*SMALL, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["lrs"]) == len(data["losses"]) == len(data["smoothed"]) == data["steps"]
    assert data["lrs"][0] == pytest.approx(1e-5)
    assert set(data["suggestions"]) == {"minimum_div10", "steepest", "valley", "minimum", "turn"}
    assert data["band"][0] <= data["suggestion"] <= data["band"][1]
    assert data["config"]["model"] == "tiny" and data["config"]["batch_size"] == 32
    assert data["probe"]["candidates"][0] == data["suggestion"]
    assert data["probe"]["pick"] in data["probe"]["candidates"]


def test_several_weight_decays_sweep_each_and_pick_one():
    result = lr_find(*SMALL, "--weight-decay", "0,1e-3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["weight_decays"] == [0.0, 1e-3]
    assert len(data["results"]) == 2 and data["pick"] in (0.0, 1e-3)
    assert data["max_lr"] == data["results"][data["weight_decays"].index(data["pick"])]["suggestion"]
    assert data["reason"].startswith(f"weight decay {data['pick']:g} is the largest")
    table = lr_find(*SMALL, "--weight-decay", "0,1e-3").stdout.splitlines()
    assert table[2] == "  weight decay  suggestion  band                  reliable  steps"
    assert table[-4] == f"  pick: weight decay {data['pick']:g}, max_lr {data['max_lr']:.4g}"
    assert table[-1] == f"  max_lr {data['probe']['pick']:.4g} (the probes' pick)"  # the probes start from it


def test_running_out_of_data_is_a_warning_on_stderr():
    result = lr_find(*SMALL, "--train-subset", "320")  # 10 batches for 30 steps
    assert result.exit_code == 0, result.output
    assert "warning: the data ran out after 10 batches but the sweep needs 30; cycling it" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--start-lr", "1", "--end-lr", "0.5"], "end_lr (0.5) must be larger than start_lr (1.0)"),
    (["--steps", "5"], "steps=5 is too few to suggest anything"),
    (["--weight-decay", "1e-4,abc"], "--weight-decay must be a number or a comma list"),
    (["--model", "resnet21"], "unknown model 'resnet21'"),
    (["--optimizer", "sgdd"], "unknown optimizer 'sgdd'"),
])
def test_bad_input_is_a_clear_error(args, message):
    result = lr_find(*SMALL, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
