"""``superconverge tune``: a small real chain into a config that ``superconverge train`` reads."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.train.recipe import load_toml

SMALL = ["--model", "tiny", "--data", "sample", "--train-subset", "640", "--steps", "30", "--start-lr", "1e-5",
         "--weight-decays", "0,1e-3", "--epochs", "3", "--threads", "2"]


def tune(*args: str):
    return CliRunner().invoke(main, ["tune", *args])


def test_chain_writes_a_ready_config_with_how_each_value_was_found(tmp_path):
    out, plots = tmp_path / "tuned.toml", tmp_path / "plots"
    result = tune(*SMALL, "--max-batch", "64", "--out", str(out), "--plots", str(plots))
    assert result.exit_code == 0, result.output
    config = load_toml(out)
    assert config.schedule == "one-cycle" and config.model == "tiny" and config.epochs == 3
    assert config.train_subset == 640 and config.data == "sample"
    assert 16 <= config.batch_size <= 64
    assert config.weight_decay in (0.0, 1e-3)
    assert config.max_lr > 0 and (config.base_momentum, config.max_momentum) == (0.85, 0.95)
    text = out.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    for key in ("batch_size =", "weight_decay =", "max_lr =", "base_momentum, max_momentum ="):
        assert any(line.startswith(f"# {key}") for line in header), key
    assert "Train it with: superconverge train --config" in text
    assert f"max_lr = {config.max_lr:.4g}: 1cycle's peak" in result.stdout
    assert result.stdout.splitlines()[-2] == f"config: {out}"
    assert result.stdout.splitlines()[-1] == (f"plots: {plots / 'batch_size.png'}, {plots / 'weight_decay.png'}, "
                                              f"{plots / 'lr_find.png'}")
    for name in ("batch_size.png", "weight_decay.png", "lr_find.png"):
        assert (plots / name).stat().st_size > 10_000


def test_a_given_batch_size_skips_the_search(tmp_path):
    out = tmp_path / "tuned.toml"
    result = tune(*SMALL, "--batch-size", "32", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert load_toml(out).batch_size == 32
    assert "batch_size = 32: given on the command line (no search)." in result.stdout


def test_the_written_config_trains_unchanged(tmp_path):
    out = tmp_path / "tuned.toml"
    result = tune(*SMALL, "--batch-size", "64", "--weight-decays", "0", "--epochs", "1", "--steps", "20",
                  "--out", str(out))  # the last of a repeated option counts: one sweep, a 10-step epoch
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, ["train", "--config", str(out), "--quiet", "--out", str(run)])
    assert trained.exit_code == 0, trained.output
    assert load_toml(run / "config.toml") == load_toml(out)
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["max_lr"], summary["epochs"], summary["steps"]) == (load_toml(out).max_lr, 1, 10)


def test_an_existing_out_file_needs_force(tmp_path):
    out = tmp_path / "tuned.toml"
    out.write_text("# mine\n")
    result = tune(*SMALL, "--batch-size", "32", "--out", str(out))
    assert result.exit_code != 0 and "exists; choose another --out or pass --force" in result.output
    assert out.read_text() == "# mine\n"


@pytest.mark.parametrize("args, message", [
    (["--weight-decays", ""], "--weight-decays needs at least one value"),
    (["--start-lr", "10", "--end-lr", "1"], "must be larger than start_lr"),
])
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    result = tune(*SMALL, "--batch-size", "32", "--out", str(tmp_path / "t.toml"), *args)
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "t.toml").exists()
