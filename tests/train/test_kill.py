"""SIGKILL a real training process at random times, and inside checkpoint writes: every kill
leaves a checkpoint that loads, and every resume ends bitwise where an uninterrupted run ends.

Run as a script, this file is the worker of the second test: ``superconverge train`` whose
checkpoint write number N stops part-way and waits to be killed.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from superconverge.train import checkpoint as ckpt
from superconverge.train.loop import CHECKPOINT
from test_resume import ARGS, assert_same_run, finish, superconverge

KILLS = 20
RUN = [*ARGS, "--set", "plots=false"]  # 4 epochs of 20 steps, a checkpoint every 7 steps; no plots: faster
SAVED_AT = [s for s in range(81) if s % 7 == 0 or s % 20 == 0]  # the step each of RUN's 16 checkpoints holds
STAGES = ("data", "keep", "swap")  # where a write stops: see pause_in_checkpoint_write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted run, and the seconds from its first checkpoint to its exit."""
    run = tmp_path_factory.mktemp("whole") / "run"
    proc = superconverge(*RUN, "--out", str(run))
    started = wait_for(run / CHECKPOINT, proc)
    finish(proc)
    return run, time.monotonic() - started


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> float:
    """Poll until ``path`` exists; returns that moment (``time.monotonic``)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None and not path.exists():
            pytest.fail(f"the process ended before {path.name} appeared: {proc.communicate()[1][-2000:]}")
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.005)
    return time.monotonic()


def kill(proc: subprocess.Popen) -> None:
    proc.kill()  # SIGKILL: no handler, no flush, no cleanup
    proc.communicate()


def test_sigkill_at_random_times_then_resume_ends_bitwise_as_the_whole_run(whole, tmp_path):
    reference, seconds = whole
    window = 0.8 * seconds  # kills land from the first checkpoint to the records at the end
    draw = random.Random(20)
    landed = []  # (seconds after the first checkpoint, step the checkpoint left holds, inside a write)
    finished_first = 0
    while len(landed) < KILLS:
        run = tmp_path / f"run{len(landed)}-{finished_first}"
        delay = draw.uniform(0, window)
        proc = superconverge(*RUN, "--out", str(run))
        time.sleep(max(0.0, wait_for(run / CHECKPOINT, proc) + delay - time.monotonic()))
        if proc.poll() is not None:  # not a kill: the machine (shared) runs faster than for the reference now
            proc.communicate()
            finished_first += 1
            window = min(window, 0.8 * delay)
            assert finished_first <= KILLS, "runs keep finishing before their kill"
            continue
        kill(proc)
        left = ckpt.load(run / CHECKPOINT)["position"]  # every kill leaves a checkpoint that loads
        landed.append((round(delay, 2), left["step"], any(run.glob(f".{CHECKPOINT}.*.part"))))
        finish(superconverge("--resume", str(run), "--quiet"))
        assert_same_run(reference, run)
    print(f"\n{KILLS}/{KILLS} bitwise identical after SIGKILL at (s after the first checkpoint, step of the "
          f"checkpoint left, inside a write): {sorted(landed)}; {finished_first} runs finished before their kill")
    assert len({step for _, step, _ in landed}) >= 5  # spread over the run, not bunched at one point


def test_sigkill_inside_checkpoint_writes_leaves_one_that_loads(whole, tmp_path):
    reference, _ = whole
    draw = random.Random(21)
    landed = []
    for i in range(KILLS):
        run, marker = tmp_path / f"run{i}", tmp_path / f"paused{i}"
        # write 1 (before the first step) is left out: killed there, a run has no checkpoint yet and starts again
        write, stage, fraction = draw.randint(2, len(SAVED_AT)), draw.choice(STAGES), draw.random()
        proc = superconverge(*RUN, "--out", str(run),
                             script=(__file__, str(marker), str(write), stage, repr(fraction)))
        wait_for(marker, proc)
        kill(proc)
        assert any(run.glob(f".{CHECKPOINT}.*.part")), "the write under way left its temp file"
        path, prev = run / CHECKPOINT, ckpt.previous(run / CHECKPOINT)
        assert ckpt.load(path)["position"]["step"] == SAVED_AT[write - 2]  # the one before the killed write
        kept = SAVED_AT[write - 2] if stage == "swap" else SAVED_AT[write - 3] if write > 2 else None
        assert (ckpt.load(prev)["position"]["step"] if prev.exists() else None) == kept
        landed.append((write, stage, round(fraction, 2) if stage == "data" else None, SAVED_AT[write - 2], kept))
        finish(superconverge("--resume", str(run), "--quiet"))
        assert_same_run(reference, run)
    print(f"\n{KILLS}/{KILLS} loadable and bitwise identical after resume, killed inside (write, stage, fraction of "
          f"bytes, step of the checkpoint left, step of the previous one): {landed}")
    assert set(stage for _, stage, *_ in landed) == set(STAGES)


def pause_in_checkpoint_write(marker: Path, write: int, stage: str, fraction: float) -> None:
    """Make checkpoint write number ``write`` (from 1) stop at ``stage``, create ``marker`` and wait to be killed.

    Stages: "data", after ``fraction`` of the file's bytes; "keep", before the checkpoint it
    replaces is renamed to the previous one; "swap", before the new file is renamed into place.
    """
    real_save, real_replace = torch.save, os.replace
    count = 0

    def wait() -> None:
        marker.touch()
        time.sleep(3600)

    def save(obj, f, *args, **kwargs):
        nonlocal count
        count += 1
        if count != write or stage != "data":
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: int(fraction * buffer.tell())])
        f.flush()
        wait()

    target = {"keep": ckpt.previous(CHECKPOINT).name, "swap": CHECKPOINT}.get(stage)

    def replace(src, dst):
        if count == write and Path(dst).name == target:
            wait()
        return real_replace(src, dst)

    torch.save, os.replace = save, replace


if __name__ == "__main__":  # the worker: python test_kill.py MARKER WRITE STAGE FRACTION train ARGS...
    pause_in_checkpoint_write(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    from superconverge.cli import main

    main(sys.argv[5:])
