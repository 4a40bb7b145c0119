"""The study store: one SQLite file (``study.db``) in the study directory, safe for several runners.

Every run of the study is a row: queued -> running -> done | failed. A runner claims the
next queued run inside a ``BEGIN IMMEDIATE`` transaction, so two runners never take the
same run, and writes its result in one statement, so none is lost. A run left 'running'
by a process that died (same host, pid gone or reused) goes back to the queue; its run
directory keeps the checkpoint, so it resumes where it stopped. The store remembers the
hash of the spec that made it and refuses a different one.

>>> import tempfile
>>> conn = connect(Path(tempfile.mkdtemp()) / DB)
>>> sorted(meta(conn))
[]
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superconverge import __version__

DB = "study.db"
STATUSES = ("queued", "running", "done", "failed")
MAX_ATTEMPTS = 4  # starts of a run whose process died each time before it is marked failed
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    arm TEXT NOT NULL,
    label TEXT NOT NULL,
    seed INTEGER NOT NULL,
    position INTEGER NOT NULL,
    config TEXT NOT NULL,
    extras TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    error TEXT,
    metrics TEXT,
    history TEXT,
    wall_seconds REAL,
    version TEXT,
    git_revision TEXT,
    started TEXT,
    finished TEXT,
    worker TEXT,
    host TEXT,
    pid INTEGER,
    pid_start TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


class StoreError(ValueError):
    """The study directory cannot be used as asked (another spec's results, no store)."""


@dataclass(frozen=True)
class Worker:
    """Who is running a run: enough to tell later whether that process is still alive."""

    host: str
    pid: int
    pid_start: str  # the process's start time, so a reused pid is not taken for the runner

    @property
    def id(self) -> str:
        return f"{self.host}:{self.pid}"


def this_worker() -> Worker:
    return Worker(socket.gethostname(), os.getpid(), _start_time(os.getpid()))


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating) the store; autocommit mode, transactions are explicit."""
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.executescript(SCHEMA)
    return conn


def open_existing(directory: str | Path) -> sqlite3.Connection:
    """Open the store of an existing study directory (for reports): an error if there is none."""
    path = Path(directory) / DB
    if not path.is_file():
        raise StoreError(f"{directory} holds no study (no {DB}); run `superconverge study NAME --out {directory}`")
    return connect(path)


def init(conn: sqlite3.Connection, spec: dict[str, Any], spec_hash: str, runs: Sequence[Any]) -> None:
    """Record the spec and queue its runs (those already stored are kept as they are)."""
    with _immediate(conn):
        stored = meta(conn).get("spec_hash")
        if stored is not None and stored != spec_hash:
            known = json.loads(meta(conn)["spec"])
            raise StoreError(f"this directory holds results of a different spec ({known['name']} at scale "
                             f"{known['scale']}, spec hash {stored}, now {spec_hash}); use another --out "
                             "directory rather than mixing results")
        for key, value in (("spec_hash", spec_hash), ("spec", json.dumps(spec)), ("study", spec["name"]),
                           ("scale", spec["scale"])):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (_now(),))
        conn.executemany(
            "INSERT OR IGNORE INTO runs (hash, study, arm, label, seed, position, config, extras) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.hash, spec["name"], r.arm, r.label, r.seed, r.position, json.dumps(r.config), json.dumps(r.extras))
             for r in runs])


def claim(conn: sqlite3.Connection, worker: Worker, seeds: int | None = None) -> dict[str, Any] | None:
    """Atomically take the next queued run (seed < ``seeds``), first returning dead runners' runs to the queue."""
    with _immediate(conn):
        _reclaim_dead(conn)
        conn.execute("UPDATE runs SET status = 'failed', error = ? WHERE status = 'queued' AND attempts >= ?",
                     (f"started {MAX_ATTEMPTS} times without finishing: its process was killed or crashed each "
                      "time (out of memory?); fix the cause and rerun with --retry-failed", MAX_ATTEMPTS))
        row = conn.execute("SELECT hash FROM runs WHERE status = 'queued' AND seed < ? ORDER BY position LIMIT 1",
                           (seeds if seeds is not None else 1 << 30,)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE runs SET status = 'running', worker = ?, host = ?, pid = ?, pid_start = ?, "
                     "started = ?, attempts = attempts + 1, error = NULL WHERE hash = ?",
                     (worker.id, worker.host, worker.pid, worker.pid_start, _now(), row["hash"]))
        return _record(conn.execute("SELECT * FROM runs WHERE hash = ?", (row["hash"],)).fetchone())


def finish(conn: sqlite3.Connection, run_hash: str, metrics: dict[str, Any], history: dict[str, Any],
           wall_seconds: float) -> None:
    conn.execute("UPDATE runs SET status = 'done', metrics = ?, history = ?, wall_seconds = ?, version = ?, "
                 "git_revision = ?, finished = ? WHERE hash = ?",
                 (json.dumps(metrics), json.dumps(history), wall_seconds, __version__, git_revision(), _now(),
                  run_hash))


def fail(conn: sqlite3.Connection, run_hash: str, error: str, wall_seconds: float) -> None:
    conn.execute("UPDATE runs SET status = 'failed', error = ?, wall_seconds = ?, version = ?, git_revision = ?, "
                 "finished = ? WHERE hash = ?",
                 (error, wall_seconds, __version__, git_revision(), _now(), run_hash))


def release(conn: sqlite3.Connection, run_hash: str) -> None:
    """Put an interrupted run back in the queue (its checkpoint stays for the resume)."""
    conn.execute("UPDATE runs SET status = 'queued', worker = NULL WHERE hash = ? AND status = 'running'",
                 (run_hash,))


def requeue_failed(conn: sqlite3.Connection) -> int:
    """Queue failed runs again, with a fresh count of attempts; returns how many."""
    return conn.execute("UPDATE runs SET status = 'queued', attempts = 0 WHERE status = 'failed'").rowcount


def meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM meta")}


def records(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every run as a plain dict, JSON columns decoded, in execution order."""
    return [_record(row) for row in conn.execute("SELECT * FROM runs ORDER BY position")]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    found = dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    return {s: found.get(s, 0) for s in STATUSES}


def git_revision() -> str | None:
    """The source tree's git commit, if the package runs from a checkout."""
    if not hasattr(git_revision, "cached"):
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                 text=True, timeout=5)
            git_revision.cached = out.stdout.strip() if out.returncode == 0 else None  # type: ignore[attr-defined]
        except (OSError, subprocess.SubprocessError):
            git_revision.cached = None  # type: ignore[attr-defined]
    return git_revision.cached  # type: ignore[attr-defined]


def _record(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("config", "extras", "metrics", "history"):
        out[key] = json.loads(out[key]) if out[key] else {}
    return out


def _reclaim_dead(conn: sqlite3.Connection) -> None:
    """Queue again the running runs whose runner process on this host is gone."""
    host = socket.gethostname()
    for row in conn.execute("SELECT hash, pid, pid_start FROM runs WHERE status = 'running' AND host = ?",
                            (host,)).fetchall():
        if not _alive(row["pid"], row["pid_start"]):
            conn.execute("UPDATE runs SET status = 'queued', worker = NULL WHERE hash = ?", (row["hash"],))


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return _start_time(pid) == start


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in parentheses may hold spaces


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the write lock is taken up front,
    so two runners cannot both read the same queued run before either marks it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
