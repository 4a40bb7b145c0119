"""Checkpoints that resume a run exactly, written atomically.

A checkpoint holds the model, optimizer, scheduler and EMA states, where the run
stands (epoch, next batch, optimizer step) and every RNG state. It is written to a
temporary file and renamed, so a run killed mid-write keeps its previous checkpoint.
The checkpoint it replaces is kept beside it (:func:`previous`), so that a file damaged
later (a full disk, a bad copy) still leaves one to resume from; :func:`load` names it.
Only tensors and plain Python values are stored: ``torch.load(weights_only=True)``
reads it.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from: torch (CPU and CUDA), NumPy, Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read: truncated or corrupt. The message names a previous one that loads."""


def previous(path: str | Path) -> Path:
    """Where :func:`save` keeps the checkpoint it replaced: ``checkpoint.pt`` -> ``checkpoint.prev.pt``.

    >>> previous("runs/x/checkpoint.pt").as_posix()
    'runs/x/checkpoint.prev.pt'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save(path: str | Path, state: dict[str, Any], *, keep_previous: bool = True) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then rename).

    The file it replaces becomes :func:`previous` ``(path)``; ``keep_previous=False`` (a new
    run) removes that file instead. A readable ``path`` exists at every moment: the old file
    is hard-linked (copied where links fail) to a temp name that is renamed onto the previous
    name, and only then is the new file renamed onto ``path``. Temp files are named
    ``.{name}.*.part``; a kill can leave one behind, and nothing reads them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    kept = Path(tmp).with_suffix(".prev.part")  # unique too: mkstemp's names hold no dot
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if not keep_previous:
            previous(path).unlink(missing_ok=True)
        elif _link_or_copy(path, kept):
            os.replace(kept, previous(path))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
    return path


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Link ``src`` to ``dst`` (copy where the file system has no hard links); False if there is no ``src``."""
    try:
        os.link(src, dst)
    except FileNotFoundError:  # the first checkpoint: nothing to keep
        return False
    except OSError:
        shutil.copyfile(src, dst)
    return True


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`.

    A file that cannot be read raises :class:`CheckpointError` naming the previous checkpoint
    when that one loads; it is never loaded in its place without the user's say.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return _read(path)
    except PermissionError:
        raise  # says nothing about the content
    except Exception as err:  # bad bytes raise OSError (a seek before the start), EOFError, RuntimeError, ...
        raise CheckpointError(f"checkpoint {path} is damaged (truncated or corrupt: {_reason(path, err)}); "
                              f"{_fallback(path)}") from err


def _read(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _reason(path: Path, err: Exception) -> str:
    """The gist of what torch said: its first sentence (the rest is advice that does not apply here)."""
    if path.stat().st_size == 0:
        return "the file is empty"
    first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first[:120]}" if first else type(err).__name__


def _fallback(path: Path) -> str:
    """What the user can do about a damaged ``path``: the previous checkpoint, if it loads."""
    prev = previous(path)
    if not prev.is_file():
        return f"there is no previous checkpoint ({prev.name}) to fall back on: start the run again"
    try:
        state = _read(prev)
    except Exception:  # damaged too, or unreadable: either way it cannot be recommended
        return f"the previous checkpoint {prev} does not load either: start the run again"
    where = state.get("position", {}) if isinstance(state, dict) else {}
    at = f" (step {where['step']}, epoch {where['epoch']})" if {"step", "epoch"} <= set(where) else ""
    return f"the previous checkpoint {prev}{at} loads: move it over {path.name} to resume from there"
