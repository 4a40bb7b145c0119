"""The study store: queueing, refusing another spec, and two real processes that never share a run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from superconverge.studies import store
from superconverge.studies.spec import expand, resolve

SPEC = {"name": "t", "claim": "c.", "design": "d.", "base": {"model": "tiny", "epochs": 1},
        "grid": {"max_lr": [0.01 * (i + 1) for i in range(30)]},
        "verdict": [{"a": "base", "metric": "test_accuracy", "expect": "not-lower"}]}


def make(tmp_path: Path, raw=SPEC, seeds=None):
    spec = resolve(raw, "smoke")
    runs = expand(spec, seeds)
    conn = store.connect(tmp_path / store.DB)
    store.init(conn, spec.to_dict(), spec.experiment_hash(), runs)
    return conn, runs


def test_init_queues_every_run_once_and_keeps_results(tmp_path):
    conn, runs = make(tmp_path)
    assert store.counts(conn) == {"queued": 30, "running": 0, "done": 0, "failed": 0}
    run = store.claim(conn, store.this_worker())
    assert run["hash"] == runs[0].hash and run["status"] == "running" and run["pid"] == os.getpid()
    store.finish(conn, run["hash"], {"test_accuracy": 0.5}, {"epochs": []}, 1.0)
    make(tmp_path)  # again: nothing is queued twice, nothing finished is lost
    assert store.counts(conn) == {"queued": 29, "running": 0, "done": 1, "failed": 0}
    done = [r for r in store.records(conn) if r["status"] == "done"][0]
    assert done["metrics"] == {"test_accuracy": 0.5} and done["version"] and done["finished"]


def test_finished_and_failed_runs_record_the_git_revision_and_wall_time(tmp_path):
    source = Path(store.__file__).parent
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True).returncode != 0:
        pytest.skip("the package does not run from a git checkout")
    conn, runs = make(tmp_path)
    worker = store.this_worker()
    done, failed = store.claim(conn, worker)["hash"], store.claim(conn, worker)["hash"]
    store.finish(conn, done, {}, {}, 12.5)
    store.fail(conn, failed, "ValueError: boom", 0.25)
    recs = {r["hash"]: r for r in store.records(conn)}
    assert (recs[done]["wall_seconds"], recs[failed]["wall_seconds"]) == (12.5, 0.25)
    revision = recs[done]["git_revision"]
    assert recs[failed]["git_revision"] == revision and re.fullmatch(r"[0-9a-f]{40}", revision)
    assert subprocess.run(["git", "cat-file", "-e", f"{revision}^{{commit}}"], cwd=source).returncode == 0


def test_a_different_spec_is_refused(tmp_path):
    make(tmp_path)
    other = {**SPEC, "base": {"model": "tiny", "epochs": 2}}
    with pytest.raises(store.StoreError, match="different spec"):
        make(tmp_path, other)
    make(tmp_path, {**SPEC, "claim": "reworded."})  # prose and verdict may change
    make(tmp_path, seeds=2)  # more seeds add runs
    assert store.counts(store.connect(tmp_path / store.DB))["queued"] == 60


def test_fail_release_requeue_and_seed_limit(tmp_path):
    conn, runs = make(tmp_path, seeds=2)
    worker = store.this_worker()
    first = store.claim(conn, worker, seeds=1)
    store.fail(conn, first["hash"], "ValueError: boom", 0.1)
    second = store.claim(conn, worker, seeds=1)
    store.release(conn, second["hash"])
    assert store.claim(conn, worker, seeds=1)["hash"] == second["hash"]
    assert store.requeue_failed(conn) == 1
    assert [r["error"] for r in store.records(conn) if r["hash"] == first["hash"]] == ["ValueError: boom"]
    while (run := store.claim(conn, worker, seeds=1)) is not None:
        assert run["seed"] == 0
        store.finish(conn, run["hash"], {}, {}, 0.0)


WORKER = """
import json, sys, time
from pathlib import Path
from superconverge.studies import store
conn = store.connect(Path(sys.argv[1]) / store.DB)
worker = store.this_worker()
mine = []
while (run := store.claim(conn, worker)) is not None:
    mine.append(run["hash"])
    time.sleep(0.005)
    store.finish(conn, run["hash"], {"by": worker.pid}, {}, 0.0)
Path(sys.argv[2]).write_text(json.dumps(mine))
"""


def test_two_processes_never_lose_or_duplicate_a_run(tmp_path):
    conn, runs = make(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(tmp_path / f"w{i}.json")])
             for i in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    claimed = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2)]
    assert sorted(claimed[0] + claimed[1]) == sorted(r.hash for r in runs)  # each run exactly once
    recs = store.records(conn)
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in recs)
    assert {r["metrics"]["by"] for r in recs} == {p.pid for p in procs}  # both did work


DIES = """
import os, sys
from pathlib import Path
from superconverge.studies import store
conn = store.connect(Path(sys.argv[1]) / store.DB)
print(store.claim(conn, store.this_worker())["hash"], flush=True)
os._exit(1)  # dies holding the run, as a killed runner would
"""


def test_a_dead_runners_run_is_reclaimed(tmp_path):
    conn, runs = make(tmp_path)
    out = subprocess.run([sys.executable, "-c", DIES, str(tmp_path)], capture_output=True, text=True, timeout=60)
    held = out.stdout.strip()
    assert held == runs[0].hash
    assert store.counts(conn)["running"] == 1
    again = store.claim(conn, store.this_worker())
    assert again["hash"] == held and again["attempts"] == 2


def test_a_run_whose_process_keeps_dying_fails_after_max_attempts(tmp_path):
    conn, runs = make(tmp_path)
    for attempt in range(1, store.MAX_ATTEMPTS + 1):
        out = subprocess.run([sys.executable, "-c", DIES, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == runs[0].hash, f"attempt {attempt}: another run was claimed"
    nxt = store.claim(conn, store.this_worker())
    assert nxt["hash"] == runs[1].hash  # the study goes on
    dead = {r["hash"]: r for r in store.records(conn)}[runs[0].hash]
    assert dead["status"] == "failed" and dead["attempts"] == store.MAX_ATTEMPTS
    assert "killed or crashed" in dead["error"] and "--retry-failed" in dead["error"]
    assert store.requeue_failed(conn) == 1
    assert store.claim(conn, store.this_worker())["hash"] == runs[0].hash  # a fresh count of attempts


def test_a_live_runner_keeps_its_run(tmp_path):
    conn, runs = make(tmp_path)
    store.claim(conn, store.this_worker())  # this process is alive
    assert store.claim(conn, store.this_worker())["hash"] == runs[1].hash


def test_open_existing_without_a_store(tmp_path):
    with pytest.raises(store.StoreError, match="holds no study"):
        store.open_existing(tmp_path)
