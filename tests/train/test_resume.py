"""Exact resume: a real training process killed mid-run and resumed ends bitwise where an
uninterrupted run ends (same thread count). A damaged checkpoint is named, with the one to use."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.train import checkpoint as ckpt
from superconverge.train.checkpoint import CheckpointError

ARGS = ["--model", "tiny", "--data", "sample", "--train-subset", "1280", "--epochs", "4", "--batch-size", "64",
        "--max-lr", "0.05", "--threads", "1", "--checkpoint-every", "7", "--seed", "3", "--quiet",
        "--set", "cutout=8", "--set", "ema_decay=0.9"]


def superconverge(*args: str, script: tuple[str, ...] = ("-m", "superconverge")) -> subprocess.Popen:
    """``superconverge train *args`` in a new process; ``script`` names another entry point (a test worker)."""
    return subprocess.Popen([sys.executable, *script, "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def test_killed_run_resumes_bitwise(tmp_path: Path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    finish(superconverge(*ARGS, "--out", str(whole)))

    proc = superconverge(*ARGS, "--out", str(broken))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        path = broken / "checkpoint.pt"
        if path.is_file() and ckpt.load(path)["position"]["step"] >= 7:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (broken / "summary.json").exists(), "the run finished before it could be killed"
    killed_at = ckpt.load(broken / "checkpoint.pt")["position"]
    assert killed_at["step"] < 4 * 20  # it really stopped part-way

    out = finish(superconverge("--resume", str(broken), "--quiet"))
    assert "test accuracy" in out
    assert_same_run(whole, broken)
    assert json.loads((broken / "summary.json").read_text())["steps"] == 80


def assert_same_run(whole: Path, resumed: Path) -> None:
    """Both run directories end bitwise alike: weights, EMA, every step's record, per-epoch results."""
    a, b = ckpt.load(whole / "checkpoint.pt"), ckpt.load(resumed / "checkpoint.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    assert a["history"]["steps"] == b["history"]["steps"]
    drop_time = [{k: v for k, v in row.items() if k != "seconds"} for row in a["history"]["epochs"]]
    assert drop_time == [{k: v for k, v in row.items() if k != "seconds"} for row in b["history"]["epochs"]]
    summary_a = json.loads((whole / "summary.json").read_text())
    summary_b = json.loads((resumed / "summary.json").read_text())
    assert summary_a["test_accuracy"] == summary_b["test_accuracy"]
    assert summary_a["steps"] == summary_b["steps"]


def test_resume_refuses_a_different_model(tmp_path: Path):
    run = tmp_path / "run"
    finish(superconverge(*ARGS[:-4], "--epochs", "1", "--out", str(run)))
    proc = superconverge("--resume", str(run), "--model", "resnet20")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "model differs ('resnet20' given, 'tiny' in the run)" in err


def saves(path: Path, steps: list[int]) -> Path:
    """``path`` after one checkpoint save at each of ``steps`` (10 steps per epoch)."""
    for step in steps:
        ckpt.save(path, {"position": {"step": step, "epoch": step // 10}, "model": {"w": torch.full((4096,), step)}})
    return path


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    garbage = random.Random(0).randbytes(len(data))
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": garbage, "empty": b""}[how])


def test_save_keeps_the_checkpoint_it_replaces(tmp_path):
    path = saves(tmp_path / "checkpoint.pt", [0, 5, 9])
    assert ckpt.previous(path) == tmp_path / "checkpoint.prev.pt"
    assert ckpt.load(path)["position"]["step"] == 9
    assert ckpt.load(ckpt.previous(path))["position"]["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]  # no temp files
    ckpt.save(path, {"position": {"step": 0, "epoch": 0}}, keep_previous=False)  # a new run in the same place
    assert not ckpt.previous(path).exists()


def test_without_hard_links_the_previous_checkpoint_is_copied(tmp_path, monkeypatch):
    def no_links(src, dst):  # as on file systems without hard links
        if not Path(src).exists():
            raise FileNotFoundError(2, "No such file or directory", str(src))
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = saves(tmp_path / "checkpoint.pt", [0, 5, 9])
    assert ckpt.load(path)["position"]["step"] == 9
    assert ckpt.load(ckpt.previous(path))["position"]["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


PREVIOUS = {
    "loads": "; the previous checkpoint {prev} (step 5, epoch 0) loads: move it over checkpoint.pt to resume "
             "from there",
    "missing": "; there is no previous checkpoint (checkpoint.prev.pt) to fall back on: start the run again",
    "damaged": "; the previous checkpoint {prev} does not load either: start the run again",
}


@pytest.mark.parametrize("prev", PREVIOUS)
@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_named_with_the_previous_one_if_it_loads(tmp_path, how, prev):
    path = saves(tmp_path / "checkpoint.pt", [5, 9] if prev != "missing" else [9])
    damage(path, how)
    if prev == "damaged":
        damage(ckpt.previous(path), "truncated")
    with pytest.raises(CheckpointError) as caught:
        ckpt.load(path)
    message = str(caught.value)
    assert message.startswith(f"checkpoint {path} is damaged (truncated or corrupt: ")
    assert message.endswith(PREVIOUS[prev].format(prev=ckpt.previous(path)))
    assert isinstance(caught.value, RuntimeError)  # the command line reports it and exits with status 1
    if how == "empty":
        assert "(truncated or corrupt: the file is empty)" in message
    assert len(message) < 400  # the reason is torch's first sentence, not its whole paragraph


def test_temp_files_left_by_a_kill_are_never_read(tmp_path):
    path = saves(tmp_path / "checkpoint.pt", [5, 9])
    ckpt.save(tmp_path / ".checkpoint.pt.x1y2.part", {"position": {"step": 12, "epoch": 1}})  # a newer, whole one
    (tmp_path / ".checkpoint.pt.z3.part").write_bytes(path.read_bytes()[:100])
    damage(path, "truncated")
    with pytest.raises(CheckpointError, match=r"checkpoint\.prev\.pt \(step 5, epoch 0\) loads") as caught:
        ckpt.load(path)
    assert ".part" not in str(caught.value)


def test_resuming_from_a_damaged_checkpoint_fails_with_a_message_then_resumes_from_the_previous(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--model", "tiny", "--data", "sample", "--train-subset", "200", "--epochs", "2",
            "--batch-size", "50", "--threads", "1", "--checkpoint-every", "3", "--quiet", "--set", "plots=false"]
    assert CliRunner().invoke(main, [*args, "--out", str(run)]).exit_code == 0
    path = run / "checkpoint.pt"
    whole = ckpt.load(path)
    (run / "summary.json").unlink()  # as if killed before the summary was written: the resume loads the checkpoint
    damage(path, "truncated")
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 1, result.output
    prev = ckpt.previous(path)
    assert f"Error: checkpoint {path} is damaged (truncated or corrupt: " in result.output
    assert f"the previous checkpoint {prev} (step 6, epoch 1) loads: move it over checkpoint.pt" in result.output
    assert "Traceback" not in result.output
    os.replace(prev, path)
    assert CliRunner().invoke(main, ["train", "--resume", str(run), "--quiet"]).exit_code == 0
    resumed = ckpt.load(path)
    assert all(torch.equal(whole["model"][k], resumed["model"][k]) for k in whole["model"])
