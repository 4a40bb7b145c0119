"""``superconverge train``: a real (small) run and every bad-input message."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.cli.train import resolve
from superconverge.train.recipe import TrainConfig, load_toml, to_toml

SMALL = ["--model", "tiny", "--data", "sample", "--train-subset", "500", "--epochs", "2", "--batch-size", "100",
         "--max-lr", "0.05", "--threads", "2"]


def train(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def test_a_run_writes_its_directory_and_prints_the_result(tmp_path):
    out = tmp_path / "run"
    result = train(*SMALL, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"epoch 1/2  train loss \d\.\d{3} acc 0\.\d{4}  test loss \d\.\d{3} acc 0\.\d{4}  \d+ s",
                        lines[-4])
    assert re.fullmatch(r"test accuracy 0\.\d{4} after 2 epochs \(10 steps, \d+ s of training\)", lines[-2])
    assert lines[-1] == f"run directory: {out} (summary.json, history.csv, curves.png, schedule.png)"
    summary = json.loads((out / "summary.json").read_text())
    assert {"test_accuracy", "epochs", "steps", "wall_seconds"} <= set(summary)
    assert summary["epochs"] == 2 and summary["steps"] == 10
    for name in ["config.toml", "checkpoint.pt", "history.csv", "steps.jsonl", "curves.png", "schedule.png"]:
        assert (out / name).is_file(), name
    assert load_toml(out / "config.toml").train_subset == 500
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 10 and {"lr", "momentum", "loss"} <= set(steps[0])


def test_config_file_runs_unchanged_and_flags_override_it(tmp_path):
    config = TrainConfig(model="tiny", train_subset=300, epochs=1, batch_size=100, max_lr=0.02)
    path = tmp_path / "recipe.toml"
    path.write_text(to_toml(config, "written by a test"))
    assert load_toml(path) == config
    result = train("--config", str(path), "--epochs", "2", "--quiet", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    saved = load_toml(tmp_path / "run" / "config.toml")
    assert saved == config.replace(epochs=2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/place"], "does not exist"),
        (["--model", "resnet2O"], "did you mean 'resnet20'?"),
        (["--optimizer", "adamm"], "unknown optimizer 'adamm'; did you mean 'adam'?"),
        (["--batch-size", "5001"], "batch size 5001 is larger than the data set (500 examples)"),
        (["--set", "learning_rate=0.1"], "unknown config key 'learning_rate'"),
        (["--schedule", "cosin"], "unknown schedule 'cosin'; did you mean 'cosine'?"),
        (["--epochs", "0"], "--epochs must be a positive whole number"),
        (["--device", "nonsense"], "unknown device 'nonsense'"),
        (["--device", "cpu", "--precision", "fp16"], "fp16 autocast is for GPUs"),
        (["--threads", "0"], "threads must be >= 1"),
    ],
)
def test_bad_input(tmp_path, args, message):
    result = train(*SMALL, *args, "--quiet", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "run").exists()  # so the corrected command can use the same --out


def test_data_defaults_to_superconverge_data_then_the_sample(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERCONVERGE_DATA", raising=False)
    assert resolve(None, {}, ()).data == "sample"
    monkeypatch.setenv("SUPERCONVERGE_DATA", str(tmp_path / "cifar"))
    assert resolve(None, {}, ()).data == str(tmp_path / "cifar")
    assert resolve(None, {"data": "sample"}, ()).data == "sample"  # a flag wins
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('model = "tiny"\n')
    assert resolve(str(recipe), {}, ()).data == str(tmp_path / "cifar")
    recipe.write_text('data = "download"\n')
    assert resolve(str(recipe), {}, ()).data == "download"  # so does the config file
    no_data = [a for a in SMALL if a not in ("--data", "sample")]
    result = train(*no_data, "--quiet", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and f"{tmp_path / 'cifar'} does not exist" in result.output


def test_an_unknown_key_in_a_config_file_names_the_closest_key(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('model = "tiny"\nmax_lrr = 0.1\n')
    result = train("--config", str(recipe), "--quiet", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "unknown config key 'max_lrr'; did you mean 'max_lr'?" in result.output
    assert not (tmp_path / "run").exists()


def test_out_and_resume_go_alone(tmp_path):
    assert "exactly one of --out DIR" in train(*SMALL).output
    assert "exactly one of --out DIR" in train(*SMALL, "--out", "a", "--resume", "b").output


def test_an_existing_run_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = train(*SMALL, "--quiet", "--out", str(out))
    assert result.exit_code == 2 and "pass --force to overwrite it" in result.output
    assert (out / "keep.txt").read_text() == "precious"
    assert train(*SMALL, "--quiet", "--out", str(out), "--force").exit_code == 0
    assert (out / "keep.txt").read_text() == "precious"  # --force replaces the run's files only


def test_force_replaces_the_previous_run_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    assert train(*SMALL, "--quiet", "--out", str(out)).exit_code == 0
    (out / "notes").mkdir()
    (out / "notes" / "todo.md").write_text("compare with resnet56")
    result = train(*SMALL, "--epochs", "1", "--set", "plots=false", "--quiet", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes" / "todo.md").read_text() == "compare with resnet56"
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
    assert not (out / "curves.png").exists()  # the old run's plots went with it


def test_resume_of_a_directory_without_a_run(tmp_path):
    result = train("--resume", str(tmp_path))
    assert result.exit_code == 2 and "holds no run to resume" in result.output
