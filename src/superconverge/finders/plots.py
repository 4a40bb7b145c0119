"""Plots of finder results, drawn from their stored values only (matplotlib, Agg, PNG)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from superconverge.finders import suggest

if TYPE_CHECKING:
    from superconverge.finders.batch_size import BatchSizeResult
    from superconverge.finders.lr_range import LRFindResult

_MARKS = {"steepest": "v", "valley": "o", "minimum_div10": "s", "minimum": "D", "turn": "^"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def plot_lr_find(results: Sequence[LRFindResult], path: str | Path, *, title: str = "LR range test",
                 labels: Sequence[str] | None = None, highlight: int | None = None) -> Path:
    """Loss against LR (log x) for one or several sweeps, suggestions marked, band shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    single = len(results) == 1
    tops, bottoms = [], []
    for i, r in enumerate(results):
        lrs, losses = np.array(r.lrs), np.array(r.losses)
        keep = np.isfinite(losses)
        curve = suggest.denoise(lrs[keep], losses[keep])
        color = "C0" if single else f"C{i}"
        name = labels[i] if labels else ""
        bold = highlight is None or highlight == i
        if single:
            ax.plot(lrs[keep], losses[keep], color="0.6", lw=0.8, alpha=0.6, label="loss per step")
            ax.plot(lrs, r.smoothed, color="C1", lw=1, ls="--", label="running average (stops the sweep)")
        ax.plot(lrs[keep], curve, color=color, lw=2.2 if bold else 1.2, alpha=1 if bold else 0.6,
                label=f"{name} smoothed" if name else "smoothed, no lag (suggestions read this)")
        for key, value in r.suggestions.items():
            y = float(np.interp(math.log10(value), np.log10(lrs[keep]), curve))
            ax.plot([value], [y], _MARKS.get(key, "x"), color=color, ms=7 if bold else 5,
                    label=f"{key} {value:.3g}" if single else None)
        if bold:
            ax.axvspan(*r.band, color=color, alpha=0.08)
            ax.axvline(r.suggestion, color=color, lw=1.5, ls=":",
                       label=f"{name + ' ' if name else ''}suggestion {r.suggestion:.3g}")
        bottom = int(np.argmin(curve))
        tops.append(curve[: bottom + 1].max())
        bottoms.append(curve.min())
    lo, hi = min(bottoms), max(tops)
    pad = 0.15 * max(hi - lo, 1e-12)
    ax.set_ylim(lo - pad, hi + 2 * pad)  # the blow-up would otherwise squash the useful part
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation loss" if results[0].extra.get("validation") else "training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title)
    return _save(fig, path)


def plot_batch_size(result: BatchSizeResult, path: str | Path) -> Path:
    """Peak memory and throughput against batch size; the budget and the pick marked."""
    plt = _pyplot()
    fig, (mem, speed) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    trials = sorted(result.trials, key=lambda t: t.batch_size)
    bs = [t.batch_size for t in trials]
    gib = 2.0**30
    mem.plot(bs, [t.peak_bytes / gib if t.peak_bytes is not None else math.nan for t in trials], "o-",
             label="peak memory of a training step")
    mem.axhline(result.budget_bytes / gib, color="C3", label="budget")
    mem.axhline(result.budget_bytes * (1 - result.margin) / gib, color="C3", ls="--", label="budget less margin")
    mem.set_ylabel("GiB")
    mem.legend(fontsize=8)
    speed.plot(bs, [t.images_per_second or math.nan for t in trials], "o-", color="C2")
    speed.set_ylabel("images / s")
    speed.set_xlabel("batch size")
    for ax in (mem, speed):
        ax.set_xscale("log", base=2)
        ax.axvline(result.batch_size, color="k", ls=":")
        ax.grid(alpha=0.3)
    mem.set_title(f"batch size: {result.batch_size} ({result.method})", fontsize=9)
    return _save(fig, path)
