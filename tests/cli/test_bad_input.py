"""A catalogue of bad inputs through the real command line: each gives exit status 2 (bad input)
or 1 (a failure while running), one ``Error:`` line naming the flag or key, no traceback, and
no run directory.

Every case fails before any training, so the whole catalogue takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from superconverge.cli import main

RUN = ["train", "--model", "tiny", "--data", "sample", "--train-subset", "500", "--epochs", "1",
       "--batch-size", "100", "--max-lr", "0.05", "--threads", "1", "--quiet"]
TRAIN = [*RUN, "--out", "OUT/r"]
LR_FIND = ["lr-find", "--model", "tiny", "--data", "sample", "--train-subset", "500", "--steps", "20"]
TUNE = ["tune", "--model", "tiny", "--data", "sample", "--train-subset", "500", "--out", "OUT/tuned.toml"]
SPEEDRUN = ["speedrun", "--data", "sample", "--quiet", "--epochs", "2"]
QUICK = ["quickstart", "--quiet", "--out", "OUT/qs"]

# (arguments, exit status, words the error line must hold: the flag or key, and what is wrong)
CASES = [
    # train: flags
    ([*TRAIN, "--epochs", "0"], 2, "--epochs must be a positive whole number"),
    ([*TRAIN, "--batch-size", "0"], 2, "--batch-size must be a positive whole number"),
    ([*TRAIN, "--batch-size", "5001"], 2, "batch size 5001 is larger than the data set"),
    ([*TRAIN, "--max-lr", "0"], 2, "--max-lr must be a positive number"),
    ([*TRAIN, "--max-lr", "abc"], 2, "'abc' is not a valid float"),
    ([*TRAIN, "--pct-start", "1.5"], 2, "--pct-start must lie strictly between 0 and 1"),
    ([*TRAIN, "--weight-decay", "-1"], 2, "--weight-decay must be a number >= 0"),
    ([*TRAIN, "--train-subset", "0"], 2, "--train-subset must be a positive whole number"),
    ([*TRAIN, "--model", "resnet2O"], 2, "did you mean 'resnet20'?"),
    ([*TRAIN, "--optimizer", "adamm"], 2, "unknown optimizer 'adamm'; did you mean 'adam'?"),
    ([*TRAIN, "--schedule", "cosin"], 2, "unknown schedule 'cosin'; did you mean 'cosine'?"),
    ([*TRAIN, "--threads", "0"], 2, "--threads must be >= 1"),
    ([*TRAIN, "--device", "gpu"], 2, "unknown device 'gpu'"),
    ([*TRAIN, "--device", "cpu", "--precision", "fp16"], 2, "fp16 autocast is for GPUs"),
    ([*TRAIN, "--precision", "fp8"], 2, "--precision must be auto, bf16, fp16 or fp32"),
    ([*TRAIN, "--seed", "-1"], 2, "--seed must be a whole number >= 0"),
    ([*TRAIN, "--checkpoint-every", "-5"], 2, "--checkpoint-every must be a whole number >= 0"),
    ([*TRAIN, "--data", "/no/such/place"], 2, "/no/such/place does not exist"),
    ([*TRAIN, "--data", "CORRUPT"], 2, "not a readable tar archive"),
    ([*TRAIN, "--config", "/no/such.toml"], 2, "config file /no/such.toml does not exist"),
    ([*TRAIN, "--config", "BADTOML"], 2, "is not valid TOML"),
    ([*RUN], 2, "give exactly one of --out DIR (new run) or --resume DIR"),
    ([*TRAIN, "--resume", "OUT/r"], 2, "give exactly one of --out DIR (new run) or --resume DIR"),
    ([*RUN, "--resume", "OUT/none"], 2, "holds no run to resume"),
    # train: --set, one key at a time
    ([*TRAIN, "--set", "weight_decay=abc"], 2, "--weight-decay must be a number, got 'abc'"),
    ([*TRAIN, "--set", "schedule_args=5"], 2, "schedule_args must be a table"),
    ([*TRAIN, "--set", "widths=64"], 2, "unknown config key 'widths'"),
    ([*TRAIN, "--set", "learning_rate=0.1"], 2, "unknown config key 'learning_rate'"),
    ([*TRAIN, "--set", "momentum=0"], 2, "set cycle_momentum=false"),
    ([*TRAIN, "--set", "momentum=1.2"], 2, "momentum must lie in [0, 1)"),
    ([*TRAIN, "--set", "base_momentum=-0.1"], 2, "base_momentum must lie in [0, 1)"),
    ([*TRAIN, "--set", "max_momentum=1"], 2, "max_momentum must lie in [0, 1)"),
    ([*TRAIN, "--set", "label_smoothing=2"], 2, "label_smoothing must lie in [0, 1)"),
    ([*TRAIN, "--set", "ema_decay=2"], 2, "ema_decay must lie in (0, 1)"),
    ([*TRAIN, "--set", "ema_decay=0"], 2, "ema_decay must lie in (0, 1)"),
    ([*TRAIN, "--set", "grad_clip=-1"], 2, "grad_clip must be a positive number"),
    ([*TRAIN, "--set", "accumulate=0"], 2, "accumulate must be a positive whole number"),
    ([*TRAIN, "--set", "div_factor=0"], 2, "div_factor must be a positive number"),
    ([*TRAIN, "--set", "final_div_factor=-1"], 2, "final_div_factor must be a positive number"),
    ([*TRAIN, "--set", "warmup_epochs=-1"], 2, "warmup_epochs must be a number >= 0"),
    ([*TRAIN, "--set", "anneal=cosine"], 2, "anneal must be 'cos' or 'linear'"),
    ([*TRAIN, "--set", "loss_reduction=avg"], 2, "loss_reduction must be 'mean' or 'sum'"),
    ([*TRAIN, "--set", "crop_padding=-1"], 2, "crop_padding must be a whole number >= 0"),
    ([*TRAIN, "--set", "cutout=-3"], 2, "cutout must be a whole number >= 0"),
    ([*TRAIN, "--set", "test_subset=0"], 2, "test_subset must be a positive whole number"),
    ([*TRAIN, "--set", "holdout=-1"], 2, "holdout must be a whole number >= 0"),
    ([*TRAIN, "--set", "holdout=5000"], 2, "holdout=5000 leaves no training images"),
    ([*TRAIN, "--set", "flip=maybe"], 2, "flip must be true or false"),
    ([*RUN[:-1], "--out", "OUT/r", "--set", "epochs=2.5"], 2, "--epochs 1 and --set epochs=2.5 disagree"),
    ([*RUN[:7], *RUN[9:], "--out", "OUT/r", "--set", "epochs=2.5"], 2, "--epochs must be a whole number"),
    ([*TRAIN, "--set", "plateau_metric=val_acc"], 2, "did you mean 'val_accuracy'?"),
    ([*TRAIN, "--schedule", "step", "--set", "schedule_args={stepp=3}"], 2,
     "unknown schedule_args key 'stepp' for the step schedule; did you mean 'step_epochs'?"),
    ([*TRAIN, "--set", "schedule_args={gamma=0.1}"], 2, "the one-cycle schedule; it takes none"),
    ([*TRAIN, "--schedule", "plateau", "--set", "holdout=0"], 2, "plateau_metric=val_loss needs held-out images"),
    ([*TRAIN, "--schedule", "multistep", "--set", "schedule_args={milestones=[3,1]}"], 2,
     "milestones must be strictly increasing"),
    ([*TRAIN, "--set", "max_lr"], 2, "--set takes KEY=VALUE"),
    ([*TRAIN, "--set", "=3"], 2, "--set takes KEY=VALUE"),
    ([*TRAIN, "--set", "max_lr="], 2, "--set max_lr= has no value"),
    ([*TRAIN, "--set", "widths=[64"], 2, "--set widths=[64: not a valid TOML value"),
    # quickstart
    ([*QUICK, "--epochs", "0"], 2, "--epochs must be a positive whole number"),
    ([*QUICK, "--batch-size", "0"], 2, "--batch-size must be a positive whole number"),
    ([*QUICK, "--model", "resnet21"], 2, "unknown model 'resnet21'"),
    # lr-find
    ([*LR_FIND, "--plot", "OUT/lr.xyz"], 2, "--plot OUT/lr.xyz: matplotlib cannot write '.xyz' files"),
    ([*LR_FIND, "--steps", "0"], 2, "--steps=0 is too few"),
    ([*LR_FIND, "--start-lr", "-1"], 2, "--start-lr must be a positive number"),
    ([*LR_FIND, "--start-lr", "1", "--end-lr", "0.1"], 2, "end_lr"),
    ([*LR_FIND, "--batch-size", "0"], 2, "--batch-size must be a positive whole number"),
    ([*LR_FIND, "--weight-decay", "1e-4,x"], 2, "--weight-decay must be a number or a comma list"),
    ([*LR_FIND, "--optimizer", "sgdd"], 2, "unknown optimizer 'sgdd'"),
    ([*LR_FIND, "--momentum", "1.5"], 2, "--momentum must lie in [0, 1)"),
    ([*LR_FIND, "--accumulate", "0"], 2, "--accumulate must be a positive whole number"),
    ([*LR_FIND, "--data", "/no/such/place"], 2, "/no/such/place does not exist"),
    ([*LR_FIND, "--mode", "log"], 2, "'log' is not one of 'exp', 'linear'"),
    # tune
    ([*TUNE, "--epochs", "0"], 2, "--epochs must be a positive whole number"),
    ([*TUNE, "--weight-decays", ""], 2, "--weight-decays needs at least one value"),
    ([*TUNE, "--plots", "FILE"], 2, "Invalid value for '--plots'"),
    ([*TUNE[:-2], "--out", "FILE"], 2, "exists; choose another --out or pass --force"),
    # schedule
    (["schedule", "one-cycle", "--max-lr", "-1", "--total-steps", "10"], 2, "--max-lr must be a positive number"),
    (["schedule", "one-cycle", "--max-lr", "0.1", "--total-steps", "10", "--plot", "OUT/s.xyz"], 2,
     "--plot OUT/s.xyz: matplotlib cannot write '.xyz' files"),
    (["schedule", "cosine", "--max-lr", "0.1"], 2, "cosine"),
    (["schedule", "one-cycel"], 2, "No such command 'one-cycel'"),
    # study and report
    (["study", "nosuch", "--out", "OUT/s"], 2, "unknown study 'nosuch'"),
    (["study", "schedulers"], 2, "give --out DIR"),
    (["study", "schedulers", "--scale", "huge", "--out", "OUT/s"], 2, "'huge' is not one of"),
    (["report", "OUT/none"], 2, "OUT/none is not a directory"),
    # speedrun
    ([*SPEEDRUN, "--data", "/no/such/place"], 2, "/no/such/place does not exist"),
    ([*SPEEDRUN, "--data", "CORRUPT"], 2, "not a readable tar archive"),
    ([*SPEEDRUN, "--threads", "0"], 2, "--threads must be >= 1"),
    ([*SPEEDRUN, "--device", "gpu"], 2, "unknown device 'gpu'"),
    ([*SPEEDRUN, "--set", "widths=64"], 2, "widths must be a list"),
    ([*SPEEDRUN, "--set", "lr=abc"], 2, "lr must be a number, got 'abc'"),
    ([*SPEEDRUN, "--set", "nosuch=1"], 2, "unknown recipe key(s): 'nosuch'"),
    ([*SPEEDRUN, "--set", "widths"], 2, "--set takes KEY=VALUE"),
    ([*SPEEDRUN, "--set", "epochs=3"], 2, "--epochs 2 and --set epochs=3 disagree"),
    ([*SPEEDRUN, "--recipe", "cpu95"], 2, "unknown recipe 'cpu95'; did you mean 'cpu94'?"),
    ([*SPEEDRUN, "--holdout", "60000"], 2, "holdout"),
]


def fill(args: list[str], tmp: Path) -> list[str]:
    """Put the test's own paths in: OUT (a folder), CORRUPT (a damaged archive), BADTOML, FILE."""
    (tmp / "corrupt.tar.gz").write_bytes(b"not a tar archive" * 10)
    (tmp / "bad.toml").write_text("epochs = = 3\n")
    (tmp / "a-file").write_text("something the user keeps\n")
    names = {"CORRUPT": tmp / "corrupt.tar.gz", "BADTOML": tmp / "bad.toml", "FILE": tmp / "a-file"}
    return [str(names.get(a, a)).replace("OUT", str(tmp / "out")) for a in args]


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("args, status, words", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, args, status, words):
    monkeypatch.delenv("SUPERCONVERGE_DATA", raising=False)
    args = fill(args, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), f"{type(result.exception).__name__}: {result.exception}"
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    line = error_line(result.output)
    assert words.replace("OUT", str(tmp_path / "out")) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory, no half-made file


@pytest.mark.parametrize("args", [["speedrun", "--quiet", "--epochs", "2"], TRAIN])
def test_a_bad_superconverge_data_is_one_line_naming_the_variable(tmp_path, monkeypatch, args):
    monkeypatch.setenv("SUPERCONVERGE_DATA", str(tmp_path / "no-such"))
    args = [a for a in fill(args, tmp_path) if a not in ("--data", "sample")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    line = error_line(result.output)
    assert "no-such does not exist" in line and "SUPERCONVERGE_DATA" in line
    assert not (tmp_path / "out").exists()


def test_lr_find_without_momentum_is_not_refused(tmp_path):
    result = CliRunner().invoke(main, [*LR_FIND, "--momentum", "0", "--json"])
    assert result.exit_code == 0, result.output


def test_the_catalogue_is_long_enough():
    assert len(CASES) >= 60


def test_the_real_entry_point_prints_one_line_and_no_traceback(tmp_path):
    """The installed command, not click's test runner: what a user sees in a terminal."""
    proc = subprocess.run([sys.executable, "-m", "superconverge", *fill(TRAIN, tmp_path), "--set", "ema_decay=2"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SUPERCONVERGE_TRACEBACK": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["Error: ema_decay must lie in (0, 1), e.g. 0.999, or be left out, "
                                                "got 2"]
    assert not (tmp_path / "out").exists()
