"""Exact resume: a real training process killed mid-run and resumed ends bitwise where an
uninterrupted run ends (same thread count)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from superconverge.train import checkpoint as ckpt

ARGS = ["--model", "tiny", "--data", "sample", "--train-subset", "1280", "--epochs", "4", "--batch-size", "64",
        "--max-lr", "0.05", "--threads", "1", "--checkpoint-every", "7", "--seed", "3", "--quiet",
        "--set", "cutout=8", "--set", "ema_decay=0.9"]


def superconverge(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "superconverge", "train", *args],
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

    a, b = ckpt.load(whole / "checkpoint.pt"), ckpt.load(broken / "checkpoint.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    assert a["history"]["steps"] == b["history"]["steps"]
    drop_time = [{k: v for k, v in row.items() if k != "seconds"} for row in a["history"]["epochs"]]
    assert drop_time == [{k: v for k, v in row.items() if k != "seconds"} for row in b["history"]["epochs"]]
    summary_a = json.loads((whole / "summary.json").read_text())
    summary_b = json.loads((broken / "summary.json").read_text())
    assert summary_a["test_accuracy"] == summary_b["test_accuracy"]
    assert summary_a["steps"] == summary_b["steps"] == 80


def test_resume_refuses_a_different_model(tmp_path: Path):
    run = tmp_path / "run"
    finish(superconverge(*ARGS[:-4], "--epochs", "1", "--out", str(run)))
    proc = superconverge("--resume", str(run), "--model", "resnet20")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "holds a tiny run, but resnet20 was asked for" in err
