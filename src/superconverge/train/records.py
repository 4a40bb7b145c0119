"""A run's records: one row per optimizer step and per epoch, and the files they go to.

``history.csv`` holds one row per epoch and is rewritten whole; ``steps.jsonl`` one JSON
object per optimizer step and is appended to, both at each epoch end of a fit with a
run directory.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from superconverge.train import distributed as dist

HISTORY, STEPS = "history.csv", "steps.jsonl"  # per epoch / per optimizer step


@dataclass
class History:
    """Per-step and per-epoch records, plain data so that checkpoints and reports can hold them."""

    steps: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)


def write_records(run_dir: Path, history: History, written: int) -> int:
    """history.csv in full and the steps after the first ``written`` to steps.jsonl; returns the steps written.

    With ``written == 0`` steps.jsonl is replaced, so a resumed run drops the steps its
    checkpoint does not hold (and rewrites those a kill kept it from recording).
    """
    if dist.rank() != 0:
        return written
    with open(run_dir / HISTORY, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history.epochs[0]))
        writer.writeheader()
        writer.writerows(history.epochs)
    with open(run_dir / STEPS, "a" if written else "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in history.steps[written:])
    return len(history.steps)
