"""The runner: every built-in study end to end at smoke scale (with its report), failures, resume, jobs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from superconverge.report.html import write_report
from superconverge.studies import engine, store
from superconverge.studies.runner import available_cores, run_study
from superconverge.studies.schema import MEASURED, RUN_METRICS
from superconverge.studies.spec import builtin_names
from superconverge.train.runtime import pick_device, resolve_precision

TINY = """
name = "tiny-study"
claim = "A claim."
design = "Two arms."
seeds = 1
[base]
model = "tiny"
train_subset = 100
batch_size = 25
epochs = 3
schedule = "cosine"
[[arms]]
name = "ok"
max_lr = 0.05
[[arms]]
name = "broken"
schedule = "one-cycle"
pct_start = 0.01  # too few warm-up steps: fails when the policy is built
[[verdict]]
a = "ok"
b = "broken"
metric = "test_accuracy"
expect = "higher"
"""


@pytest.mark.parametrize("name", builtin_names())
def test_every_study_runs_at_smoke_scale_with_its_report(name, tmp_path):
    result = run_study(name, "smoke", tmp_path, threads=1)
    assert result.counts["done"] == sum(result.counts.values()), store.records(store.connect(tmp_path / store.DB))
    page = write_report(tmp_path).read_text()
    assert name in page and "data:image/png;base64," in page and "Verdict" in page
    again = run_study(name, "smoke", tmp_path, threads=1)  # finished runs are skipped
    assert again.counts == result.counts
    records = store.records(store.connect(tmp_path / store.DB))
    assert {r["attempts"] for r in records} == {1}  # none ran again
    numbers = {k for r in records for k, v in r["metrics"].items() if type(v) in (int, float)}
    assert numbers <= set(RUN_METRICS).union(*MEASURED.values())  # the names specs are checked against


def test_a_failing_run_is_recorded_and_the_study_goes_on(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    result = run_study(spec, "smoke", tmp_path / "out", threads=1)
    assert result.counts == {"queued": 0, "running": 0, "done": 1, "failed": 1}
    broken = [r for r in store.records(store.connect(tmp_path / "out" / store.DB)) if r["arm"] == "broken"][0]
    assert broken["error"].startswith("ValueError: pct_start")
    assert (tmp_path / "out" / "runs" / broken["hash"] / "error.txt").is_file()
    ok = [r for r in store.records(store.connect(tmp_path / "out" / store.DB)) if r["arm"] == "ok"][0]
    assert ok["wall_seconds"] >= ok["metrics"]["wall_seconds"] > 0 and broken["wall_seconds"] > 0
    assert ok["git_revision"] == broken["git_revision"] == store.git_revision()
    device = pick_device("auto")  # how the run computed: precision "auto" as resolved on this machine
    assert ok["metrics"]["precision"] == resolve_precision("auto", device) and ok["metrics"]["device"] == str(device)
    assert ok["metrics"]["torch_version"] == torch.__version__ and ok["metrics"]["threads"] == 1
    assert "1 failed" in write_report(tmp_path / "out").read_text()
    assert run_study(spec, "smoke", tmp_path / "out", threads=1, retry_failed=True).counts["failed"] == 1


def interrupt_in_second_epoch(monkeypatch, spec, out, threads):
    """Run the study until the first run's epoch 1 ends, then stop it as Ctrl-C would (before that
    epoch's checkpoint: the run directory holds epoch 0's)."""
    calls = []
    real_train = engine.train

    def interrupted(config, out, on_epoch=None, **kwargs):
        def stop(row):
            if on_epoch is not None:
                on_epoch(row)
            calls.append(row["epoch"])
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_train(config, out, on_epoch=stop, **kwargs)

    monkeypatch.setattr(engine, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, "smoke", out, threads=threads)


def record_epochs(monkeypatch):
    """{run hash: epochs trained} of the runs trained from now on in this process."""
    trained = {}
    real_train = engine.train

    def recording(config, out, on_epoch=None, **kwargs):
        def seen(row):
            if on_epoch is not None:
                on_epoch(row)
            trained.setdefault(Path(out).name, []).append(row["epoch"])
        return real_train(config, out, on_epoch=seen, **kwargs)

    monkeypatch.setattr(engine, "train", recording)
    return trained


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace('[[arms]]\nname = "broken"', '[[arms]]\nname = "broken"\nepochs = 1'))
    reference = run_study(spec, "smoke", tmp_path / "ref", threads=1)
    interrupt_in_second_epoch(monkeypatch, spec, tmp_path / "cut", threads=1)
    conn = store.connect(tmp_path / "cut" / store.DB)
    assert store.counts(conn)["queued"] == 2  # released for the next runner
    monkeypatch.undo()
    trained = record_epochs(monkeypatch)
    cut_dirs = [d for d in (tmp_path / "cut" / "runs").iterdir() if (d / "checkpoint.pt").is_file()]
    (cut_dirs[0] / "error.txt").write_text("from an earlier failed attempt")
    run_study(spec, "smoke", tmp_path / "cut", threads=1)
    assert not (cut_dirs[0] / "error.txt").exists()  # a run that finishes carries no stale error
    ok = {d: [r for r in store.records(store.connect(tmp_path / d / store.DB)) if r["arm"] == "ok"][0]
          for d in ("ref", "cut")}
    assert ok["cut"]["attempts"] == 2
    assert trained[ok["cut"]["hash"]] == [1, 2]  # continued from epoch 0's checkpoint, not from scratch
    assert ok["cut"]["metrics"]["test_loss"] == ok["ref"]["metrics"]["test_loss"]  # exact resume
    assert json.dumps(ok["cut"]["history"]["epochs"][0]) and len(ok["cut"]["history"]["epochs"]) == 3
    assert reference.counts["done"] == 1


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to start a run with 2 threads")
def test_a_resumed_run_trains_with_the_runners_threads_not_the_saved_ones(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    interrupt_in_second_epoch(monkeypatch, spec, tmp_path / "out", threads=2)
    monkeypatch.undo()
    run_study(spec, "smoke", tmp_path / "out", threads=1)  # e.g. now beside another job
    ok = [r for r in store.records(store.connect(tmp_path / "out" / store.DB)) if r["arm"] == "ok"][0]
    assert ok["attempts"] == 2 and ok["metrics"]["threads"] == 1


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores for 2 worker processes")
def test_jobs_run_in_parallel_processes_without_oversubscribing(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace("epochs = 3", "epochs = 1").replace("pct_start = 0.01", "pct_start = 0.5"))
    result = run_study(spec, "smoke", tmp_path / "out", jobs=2)
    assert result.jobs == 2 and result.threads == available_cores() // 2 and result.counts["done"] == 2
    recs = store.records(store.connect(tmp_path / "out" / store.DB))
    assert len({r["worker"] for r in recs}) == 2, recs
    assert [r["metrics"]["threads"] for r in recs] == [result.threads] * 2  # what torch had in each worker


def test_the_core_count_is_the_cores_this_process_may_use(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace("epochs = 3", "epochs = 1").replace("pct_start = 0.01", "pct_start = 0.5"))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the machine's cores, of which this process gets one
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    result = run_study(spec, "smoke", tmp_path / "out", jobs=2)
    assert (result.jobs, result.threads, result.counts["done"]) == (1, 1, 2)


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores for 2 worker processes")
def test_a_crashed_worker_is_reported_and_its_run_not_lost(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace("epochs = 3", "epochs = 30").replace("pct_start = 0.01", "pct_start = 0.5"))
    out, lines, finished = tmp_path / "out", [], []
    study = threading.Thread(target=lambda: finished.append(run_study(spec, "smoke", out, jobs=2, log=lines.append)))
    study.start()
    victim = None
    while victim is None and study.is_alive():
        time.sleep(0.05)
        if (out / store.DB).is_file():
            running = [r for r in store.records(store.connect(out / store.DB)) if r["status"] == "running"]
            victim = running[0] if running else None
    assert victim is not None and victim["pid"] != os.getpid()
    os.kill(victim["pid"], signal.SIGKILL)  # as the out-of-memory killer would
    study.join(timeout=600)
    error = (f"error   worker process {victim['pid']} exited with code -9 (killed or crashed); its "
             "unfinished run went back to the queue and resumes from its checkpoint")
    assert lines[0] == error and finished[0].errors == (error,)
    after = {r["hash"]: r for r in store.records(store.connect(out / store.DB))}[victim["hash"]]
    assert after["status"] == "done"  # finished by the other worker or by a fresh one after the crash
    assert finished[0].counts == {"queued": 0, "running": 0, "done": 2, "failed": 0}


def test_a_directory_of_another_study_is_refused(tmp_path):
    run_study("weight-decay-finder", "smoke", tmp_path, threads=1)
    with pytest.raises(store.StoreError, match="different spec"):
        run_study("cyclical-momentum", "smoke", tmp_path)
    with pytest.raises(store.StoreError, match="different spec"):
        run_study("weight-decay-finder", "paper", tmp_path)
