"""``train.run``: resuming honestly (extend, refuse, keep a finished run), the held-out split and
what a plateau schedule watches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from superconverge import schedules as S
from superconverge.cli import main
from superconverge.train.recipe import TrainConfig, build_policy, load_toml
from superconverge.train.run import RunDirError, _split, load_data, resume_config, train

SMALL = TrainConfig(model="tiny", data="sample", train_subset=400, epochs=2, batch_size=100, max_lr=0.05,
                    threads=1, test_subset=200, plots=False)


def steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]


def test_resume_with_more_epochs_extends_the_schedule_from_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(SMALL, run, progress=False)
    first = steps(run)
    summary = train(resume_config(run, {"epochs": 4}), run, resume=True, progress=False)
    assert summary["epochs"] == 4 and summary["steps"] == 16
    saved = load_toml(run / "config.toml")
    assert saved.epochs == 4 and saved.extensions == ((8, 2),)  # extended at step 8, planned for 2 epochs
    lrs = [row["lr"] for row in steps(run)]
    assert [row["lr"] for row in first] == lrs[:8]  # the past is kept
    planned = build_policy(SMALL, 4)["lr"]
    expected = S.extend(planned, 8, 16)
    assert lrs[8:] == pytest.approx([expected(t) for t in range(8, 16)])
    assert lrs[8:] == pytest.approx([planned(8)] * 8)  # extended at its end: nothing left to stretch, it holds
    # a resumed extended run builds the same plan again
    assert build_policy(saved, 4)["lr"](12) == pytest.approx(expected(12))


def test_extending_mid_run_keeps_the_curve_continuous():
    config = SMALL.replace(epochs=6, extensions=((5, 3),))
    lr = build_policy(config, 4)["lr"]
    planned = build_policy(SMALL.replace(epochs=3), 4)["lr"]
    assert [lr(t) for t in range(6)] == [planned(t) for t in range(6)]
    assert lr(23) == pytest.approx(planned(11))  # both end at the planned final value
    assert abs(lr(6) - lr(5)) < abs(planned(6) - planned(5))  # stretched: smaller steps after the join


@pytest.mark.parametrize("change, word", [({"max_lr": 0.5}, "max_lr"), ({"batch_size": 50}, "batch_size"),
                                          ({"model": "resnet20"}, "model"), ({"epochs": 1}, "cut it short"),
                                          ({"schedule": "cosine"}, "schedule")])
def test_resume_refuses_a_change_naming_it(tmp_path, change, word):
    run = tmp_path / "run"
    train(SMALL, run, progress=False)
    before = (run / "config.toml").read_text()
    with pytest.raises(RunDirError, match=word):
        train(resume_config(run, change), run, resume=True, progress=False)
    assert (run / "config.toml").read_text() == before


def test_resume_may_change_threads(tmp_path):
    run = tmp_path / "run"
    train(SMALL.replace(epochs=1), run, progress=False)
    config = resume_config(run, {"threads": 2})
    assert config.threads == 2


def test_resuming_a_finished_run_keeps_its_summary(tmp_path):
    run = tmp_path / "run"
    first = train(SMALL, run, progress=False)
    again = train(resume_config(run, {}), run, resume=True, progress=False)
    assert again == first  # wall_seconds included: nothing ran
    assert json.loads((run / "summary.json").read_text())["wall_seconds"] == first["wall_seconds"]


def test_wall_seconds_count_the_training_of_earlier_processes(tmp_path):
    run = tmp_path / "run"
    train(SMALL, run, progress=False)
    summary = train(resume_config(run, {"epochs": 3}), run, resume=True, progress=False)
    assert summary["wall_seconds"] >= summary["train_seconds"] > 0


def test_cli_resume_extends_and_refuses(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--model", "tiny", "--data", "sample", "--train-subset", "400", "--epochs", "1",
            "--batch-size", "100", "--max-lr", "0.05", "--threads", "1", "--quiet", "--set", "plots=false"]
    assert CliRunner().invoke(main, [*args, "--out", str(run)]).exit_code == 0
    refused = CliRunner().invoke(main, ["train", "--resume", str(run), "--max-lr", "0.2"])
    assert refused.exit_code == 2 and "max_lr differs (0.2 given, 0.05 in the run)" in refused.output
    extended = CliRunner().invoke(main, ["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    assert extended.exit_code == 0, extended.output
    assert "after 2 epochs (8 steps" in extended.output
    assert "curves.png" not in extended.output  # plots=false: it lists only what it wrote


def test_holdout_split_is_class_balanced_disjoint_and_fixed():
    data = load_data("sample")
    config = TrainConfig(holdout=500)
    keep, held = _split(config, data)
    assert len(held) == 500 and len(keep) == 4500 and not set(keep) & set(held)
    assert np.bincount(data.train_labels[held]).tolist() == [50] * 10
    assert np.array_equal(_split(config.replace(seed=7), data)[1], held)  # not drawn from the run's seed
    subset, _ = _split(config.replace(train_subset=1000), data)
    assert not set(subset) & set(held) and len(subset) == 1000


def test_plateau_watches_the_held_out_split_by_default(tmp_path):
    config = SMALL.replace(schedule="plateau", schedule_args={"patience": 0, "factor": 0.5})
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["epochs"] == 2
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert "val_loss" in history and "val_accuracy" in history
    keep, held = _split(config, load_data("sample"))
    assert len(held) == 500  # 10 % of the sample's 5,000 training images


def test_plateau_on_an_accuracy_defaults_to_mode_max():
    lr = build_policy(SMALL.replace(schedule="plateau", plateau_metric="val_accuracy"), 10)["lr"]
    assert lr.mode == "max"
    assert build_policy(SMALL.replace(schedule="plateau"), 10)["lr"].mode == "min"
    wrong = SMALL.replace(schedule="plateau", plateau_metric="test_accuracy", schedule_args={"mode": "min"})
    assert build_policy(wrong, 10)["lr"].mode == "min"  # asked for by name: allowed


def test_ctrl_c_says_how_to_continue(tmp_path):
    """A real process interrupted with SIGINT (Ctrl-C) names the command that continues it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "superconverge", "train", "--model", "tiny", "--data", "sample",
                             "--epochs", "50", "--batch-size", "50", "--max-lr", "0.05", "--threads", "1", "--quiet",
                             "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy(),
                            # a shell's background job ignores SIGINT, and a child would inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == f"Error: interrupted; continue the run with: superconverge train --resume {run}"
    assert "Traceback" not in err
    assert ckpt_loads(run)


def ckpt_loads(run: Path) -> bool:
    from superconverge.train import checkpoint as ckpt

    return "position" in ckpt.load(run / "checkpoint.pt")
