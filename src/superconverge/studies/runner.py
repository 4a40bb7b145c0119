"""Run a study: expand its spec, queue the runs in the store, and work through them.

Layout of a study directory: ``study.db`` (the store) and ``runs/<hash>/`` (one run
directory per run, as ``superconverge train`` writes it). Running again resumes: done
and failed runs are kept, queued ones run, and a run whose runner died restarts from its
checkpoint. ``jobs`` worker processes share the cores this process may use (each gets
``cores // jobs`` threads); several ``run_study`` calls on one directory share the queue safely.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superconverge.studies import store
from superconverge.studies.spec import expand, load_spec

Log = Callable[[str], None]
MAX_STEP_POINTS = 400  # per-step records kept in the store (the run directory keeps all)


@dataclass(frozen=True)
class StudyResult:
    """What a call of :func:`run_study` left in the store."""

    name: str
    scale: str
    directory: Path
    counts: dict[str, int]  # runs by status
    jobs: int
    threads: int
    errors: tuple[str, ...] = ()  # worker processes that died, with their exit codes


def run_study(name_or_path: str | Path, scale: str, out_dir: str | Path, *, jobs: int = 1, seeds: int | None = None,
              retry_failed: bool = False, threads: int | None = None, log: Log | None = None) -> StudyResult:
    """Run every queued run of a study at ``scale`` into ``out_dir``; returns the counts by status.

    Each of the ``jobs`` processes trains with ``threads`` threads (default: its share of the cores).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    spec = load_spec(name_or_path, scale)
    runs = expand(spec, seeds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conn = store.connect(out / store.DB)
    store.init(conn, spec.to_dict(), spec.experiment_hash(), runs)
    if retry_failed:
        store.requeue_failed(conn)
    n_seeds = seeds if seeds is not None else spec.seeds
    cores = available_cores()
    jobs = min(jobs, cores)
    per_job = max(1, cores // jobs)  # threads x jobs <= cores: oversubscribed cores run slower, not faster
    per_job = min(per_job, threads) if threads is not None else per_job
    errors: list[str] = []
    if jobs == 1:
        work(out, per_job, n_seeds, log)
    else:
        crashed = _workers(out, jobs, per_job, n_seeds, log)
        while crashed:  # a worker that died (killed, out of memory, a crash in torch) never marked its run
            for pid, code in crashed:
                errors.append(f"error   worker process {pid} exited with code {code} (killed or crashed); its "
                              "unfinished run went back to the queue and resumes from its checkpoint")
                _say(log, errors[-1])
            # fresh processes take what is left; a run that keeps killing its worker fails after
            # store.MAX_ATTEMPTS starts, so this ends
            crashed = _workers(out, jobs, per_job, n_seeds, log)
    return StudyResult(spec.name, scale, out, store.counts(conn), jobs, per_job, tuple(errors))


def _workers(out: Path, jobs: int, threads: int, seeds: int, log: Log | None) -> list[tuple[int, int]]:
    """Run ``jobs`` worker processes to the end of the queue; (pid, exit code) of those that crashed."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    procs = [ctx.Process(target=work, args=(out, threads, seeds, None if log is None else print))
             for _ in range(jobs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [(p.pid, p.exitcode) for p in procs if p.exitcode != 0]


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one (a container or ``taskset``
    limit), else every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def work(out: Path, threads: int, seeds: int, log: Log | None = None) -> int:
    """Claim and run queued runs until none is left; returns how many this worker ran."""
    conn = store.connect(out / store.DB)
    worker = store.this_worker()
    done = 0
    while (run := store.claim(conn, worker, seeds)) is not None:
        started = time.perf_counter()
        try:
            metrics, history = execute(run, out / "runs" / run["hash"], threads)
        except KeyboardInterrupt:
            store.release(conn, run["hash"])
            raise
        except Exception as err:  # a failing run is recorded and the study goes on
            wall = time.perf_counter() - started
            store.fail(conn, run["hash"], f"{type(err).__name__}: {err}", wall)
            _write_error(out / "runs" / run["hash"], err)
            _say(log, f"failed  {run['label']} seed {run['seed']}: {type(err).__name__}: {err}")
        else:
            wall = time.perf_counter() - started
            store.finish(conn, run["hash"], metrics, history, wall)
            acc = metrics.get("test_accuracy")
            shown = f"test accuracy {acc:.4f}" if isinstance(acc, float) else "done"
            _say(log, f"done    {run['label']} seed {run['seed']}: {shown} ({wall:.0f} s)")
        done += 1
    return done


def execute(run: dict[str, Any], run_dir: Path, threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run: measurements before, training (resumed if it has a checkpoint), measurements after."""
    from superconverge.studies import engine, kinds
    from superconverge.train.recipe import from_dict

    config = from_dict({**run["config"], "threads": threads})
    extras = run["extras"]
    resume = (run_dir / "checkpoint.pt").is_file() and (run_dir / "config.toml").is_file()
    (run_dir / "error.txt").unlink(missing_ok=True)  # from a failed attempt before this one
    metrics: dict[str, Any] = {}
    for name in extras.get("measure", []):
        if name in kinds.BEFORE:
            metrics.update(kinds.BEFORE[name](config, extras, run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics.update(engine.train_run(config, extras, run_dir, resume=resume))
    for name in extras.get("measure", []):
        if name in kinds.AFTER:
            metrics.update(kinds.AFTER[name](config, extras, run_dir))
    return metrics, read_history(run_dir)


def read_history(run_dir: Path) -> dict[str, Any]:
    """Per-epoch records and up to MAX_STEP_POINTS evenly spaced per-step records of a run directory."""
    with open(run_dir / "history.csv", newline="") as f:
        epochs = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    with open(run_dir / "steps.jsonl") as f:
        steps = [json.loads(line) for line in f if line.strip()]
    stride = max(1, -(-len(steps) // MAX_STEP_POINTS))
    kept = steps[::stride] + ([steps[-1]] if steps and (len(steps) - 1) % stride else [])
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"epochs": epochs, "steps": kept, "steps_per_epoch": summary["steps_per_epoch"]}


def _write_error(run_dir: Path, err: BaseException) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text("".join(traceback.format_exception(err)))


def _say(log: Log | None, text: str) -> None:
    if log is not None:
        log(text)
