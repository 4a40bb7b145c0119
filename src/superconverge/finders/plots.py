"""Plots of finder results, drawn from their stored values only (matplotlib, Agg).

The drawing reads what small pure helpers decide, so tests check those rather than pixels:
:func:`_ylimits` (the y range), :func:`_title` and :func:`_note` (what the plot says about
suggestions not to trust).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from superconverge.finders import suggest
from superconverge.report.plots import pyplot, save_figure

if TYPE_CHECKING:
    from superconverge.finders.batch_size import BatchSizeResult
    from superconverge.finders.lr_range import LRFindResult

# name: (marker, colour, size). Hollow and of different sizes, so markers a few pixels apart
# (valley and minimum/10 often are) still read as a square round a circle, not a blob.
_MARKS = {"minimum_div10": ("s", "C2", 12), "valley": ("o", "C5", 7), "steepest": ("v", "C4", 9),
          "minimum": ("D", "C3", 8), "turn": ("^", "C6", 9)}
SQUASH = 4.0  # a log y axis once the top tenth of the points would take over 3/4 of a linear one
WRAP = 110  # characters per line of the note under the plot


def plot_lr_find(results: Sequence[LRFindResult], path: str | Path, *, title: str = "LR range test",
                 labels: Sequence[str] | None = None, highlight: int | None = None) -> Path:
    """Loss against LR (log x) for one or several sweeps; returns the file written.

    One sweep: the raw loss, the running average that stopped the sweep, the smoothed curve with
    every suggestion marked and the band shaded. Several (a weight-decay sweep): each smoothed
    curve with its suggestion, ``highlight`` drawn bold with its band. The y axis holds every
    smoothed point up to where each sweep stopped; unreliable suggestions are said so in the
    title, the legend and a note under the plot.
    """
    note = _note(results, labels)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5 + 0.15 * (note.count("\n") + 2) * bool(note)))  # room for the note
    shown = []
    for i, r in enumerate(results):
        lrs, losses = np.array(r.lrs), np.array(r.losses)
        keep = np.isfinite(losses)
        curve = suggest.denoise(lrs[keep], losses[keep])
        if len(results) == 1:
            _draw_single(ax, r, lrs, keep, curve)
            shown += [curve, np.array(r.smoothed)]
        else:
            _draw_sweep(ax, r, lrs[keep], curve, f"C{i}", labels[i] if labels else f"sweep {i + 1}",
                        bold=highlight in (None, i), band=highlight == i)
            shown.append(curve)
    lo, hi, scale = _ylimits(shown)
    if scale == "log":
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.5, 1, 2 rather than 5x10^-1
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation loss" if results[0].extra.get("validation") else "training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False)
    trusted = all(r.reliable for r in results)
    ax.set_title(_title(title, results), color="k" if trusted else "C3")
    if note:
        ax.annotate(note, (0, 0), xycoords="axes fraction", xytext=(0, -42), textcoords="offset points",
                    va="top", fontsize=8, color="C3")
    return save_figure(fig, path)


def _draw_single(ax: Any, r: LRFindResult, lrs: np.ndarray, keep: np.ndarray, curve: np.ndarray) -> None:
    ax.plot(lrs[keep], np.array(r.losses)[keep], color="0.65", lw=0.8, label="loss per step")
    smoothed = np.array(r.smoothed)
    ax.plot(lrs, smoothed, color="C1", lw=1, ls="--", label="running average (stops the sweep)")
    if r.stopped_early:
        last = int(np.flatnonzero(np.isfinite(smoothed))[-1])
        ax.plot([lrs[last]], [smoothed[last]], "x", color="C1", ms=8, mew=2,
                label=f"stopped: {r.stopped_early.split(':')[0]}")
    ax.plot(lrs[keep], curve, color="C0", lw=2.2, label="smoothed, no lag (suggestions read this)")
    ax.axvspan(*r.band, color="C0", alpha=0.08, label=f"band {r.band[0]:.3g} to {r.band[1]:.3g}")
    ax.axvline(r.suggestion, color="k", lw=1.2, ls=":", label=f"suggestion {r.suggestion:.3g}")
    x = np.log10(lrs[keep])
    for key, value in r.suggestions.items():
        marker, color, size = _MARKS.get(key, ("x", "k", 8))
        inside = x[0] <= math.log10(value) <= x[-1]
        # outside the sweep (minimum/10 when the loss is lowest at the first LR) there is no curve to mark
        at = ([value], [float(np.interp(math.log10(value), x, curve))]) if inside else ([], [])
        ax.plot(*at, marker, ls="none", ms=size, mfc="none", mec=color, mew=1.8, zorder=4,
                label=f"{key} {value:.3g}" + ("" if inside else " (outside the sweep)"))


def _draw_sweep(ax: Any, r: LRFindResult, lrs: np.ndarray, curve: np.ndarray, color: str, label: str, *,
                bold: bool, band: bool) -> None:
    at = int(np.argmin(np.abs(np.log10(lrs) - math.log10(r.suggestion))))  # the point nearest the suggestion
    ax.plot(lrs, curve, color=color, lw=2.4 if bold else 1.3, alpha=1 if bold else 0.75,
            ls="-" if r.reliable else "--", marker="o", markevery=[at], ms=9 if bold else 7, mec="white",
            label=f"{label}: suggestion {r.suggestion:.3g}" + ("" if r.reliable else " (not reliable)"))
    if band:
        ax.axvspan(*r.band, color=color, alpha=0.1, label=f"{label}: band {r.band[0]:.3g} to {r.band[1]:.3g}")


def _ylimits(curves: Sequence[ArrayLike]) -> tuple[float, float, Literal["linear", "log"]]:
    """(bottom, top, scale) of a y axis that holds every finite point of ``curves`` with a margin.

    Log when the top tenth of the points would take more than 3/4 of a linear axis (a running
    average that blew up at its last step), so the descent stays readable; a flat curve gets
    +-5% of its level.

    >>> _ylimits([[1.0, 0.5, 2.0], [float("nan"), 1.5]])
    (0.41, 2.09, 'linear')
    >>> _ylimits([np.linspace(2.3, 0.5, 50), [0.6, 0.9, 400.0]])[2]
    'log'
    """
    parts = [np.asarray(c, dtype=float).ravel() for c in curves]
    values = np.concatenate(parts) if parts else np.empty(0)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0, "linear"
    lo, hi = float(values.min()), float(values.max())
    if lo > 0 and hi - lo > SQUASH * (float(np.quantile(values, 0.9)) - lo):
        margin = (hi / lo) ** 0.04
        return lo / margin, hi * margin, "log"
    pad = 0.06 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
    return round(lo - pad, 12), round(hi + pad, 12), "linear"


def _title(title: str, results: Sequence[LRFindResult]) -> str:
    """``title``, and a warning when a suggestion is not to be trusted."""
    doubtful = sum(not r.reliable for r in results)
    if not doubtful:
        return title
    if len(results) == 1:
        return f"{title}: suggestion NOT reliable (see below)"
    return f"{title}: {doubtful} of {len(results)} sweeps NOT reliable (see below)"


def _note(results: Sequence[LRFindResult], labels: Sequence[str] | None = None) -> str:
    """The advice of every unreliable sweep, wrapped, one paragraph each; '' when all are reliable."""
    return "\n".join(textwrap.fill((f"{labels[i]}: " if labels and len(results) > 1 else "") + r.advice, WRAP)
                     for i, r in enumerate(results) if not r.reliable)


def plot_batch_size(result: BatchSizeResult, path: str | Path) -> Path:
    """Peak memory and throughput against batch size, the budget and the pick marked; returns the file written."""
    plt = pyplot()
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
    return save_figure(fig, path)
