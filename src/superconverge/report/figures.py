"""The figures of a study report, drawn from stored records only (plain dicts), returned as PNG bytes."""

from __future__ import annotations

import io
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from superconverge.studies.verdict import best_lrs, curve_minima, metric, pick_weight_decay

Record = dict[str, Any]
Figure = tuple[str, bytes]  # (caption, PNG)
MAX_LINES = 12  # more lines than this in one panel cannot be told apart


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.fontsize": 8, "legend.frameon": False})
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _done(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r["status"] == "done" and (r.get("history") or {}).get("epochs")]


def _groups(records: Sequence[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        out[r["label"]].append(r)
    return dict(out)


def _band(runs: Sequence[Record], key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """x (optimizer steps at each epoch end), mean, min and max over seeds of an epoch metric."""
    per = runs[0]["history"].get("steps_per_epoch", 1)
    length = min(len(r["history"]["epochs"]) for r in runs)
    cols = [[r["history"]["epochs"][i].get(key, math.nan) for r in runs] for i in range(length)]
    return ([(i + 1) * per for i in range(length)], [statistics.fmean(c) for c in cols], [min(c) for c in cols],
            [max(c) for c in cols])


def curves(records: Sequence[Record], *, exclude_arms: Sequence[str] = ()) -> list[Figure]:
    """Test accuracy, training loss and the schedule against optimizer steps, one line per arm."""
    groups = {k: v for k, v in _groups(_done(records)).items() if v[0]["arm"] not in exclude_arms}
    if not groups:
        return []
    plt = _pyplot()
    labels = list(groups)[:MAX_LINES]
    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20").colors
    # a momentum panel only where momentum differs between arms or within a run
    moms = {round(s["momentum"], 6) for v in groups.values() for s in v[0]["history"].get("steps", [])
            if "momentum" in s}
    panels = ["test_accuracy", "train_loss", "lr"] + (["momentum"] if len(moms) > 1 else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.5))
    for color, label in zip(colors, labels):
        runs = groups[label]
        for ax, key in zip(axes[:2], panels[:2]):
            x, mean, lo, hi = _band(runs, key)
            ax.plot(x, mean, color=color, lw=1.6, marker="o" if len(x) < 4 else None, ms=3, label=label)
            if len(runs) > 1:
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        steps = runs[0]["history"].get("steps", [])
        for ax, key in zip(axes[2:], panels[2:]):
            ax.plot([s["step"] for s in steps], [s.get(key, math.nan) for s in steps], color=color, lw=1.4)
    titles = {"test_accuracy": "test accuracy", "train_loss": "training loss (epoch mean)",
              "lr": "learning rate (first seed)", "momentum": "momentum / beta1 (first seed)"}
    for ax, key in zip(axes, panels):
        ax.set_title(titles[key])
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=min(len(labels), 5),
               bbox_to_anchor=(0.5, 0.0))
    shown = "" if len(groups) <= MAX_LINES else f" (first {MAX_LINES} of {len(groups)} arms)"
    return [(f"Curves per arm{shown}: lines are the mean over seeds, shaded bands span the lowest to the "
             "highest seed.", _png(fig))]


def wd_finder(records: Sequence[Record]) -> list[Figure]:
    """Range-test curves per weight decay, and final accuracy against weight decay."""
    runs = [r for r in _done(records) if (r.get("metrics") or {}).get("lr_find")]
    if not runs:
        return []
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    wds = sorted({float(r["config"].get("weight_decay", 0.0)) for r in runs})
    colors = dict(zip(wds, plt.get_cmap("viridis")([i / max(1, len(wds) - 1) for i in range(len(wds))])))
    for r in runs:
        f = r["metrics"]["lr_find"]
        wd = float(r["config"].get("weight_decay", 0.0))
        pts = [(x, y) for x, y in zip(f["lrs"], f["smoothed"]) if y is not None]
        ax.plot(*zip(*pts), color=colors[wd], lw=1.3, label=f"wd {wd:g}" if r["seed"] == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_title("LR range test (smoothed loss), one line per seed")
    ax.legend()
    pick = pick_weight_decay(curve_minima(records))
    accs = {wd: [metric(r, "test_accuracy") for r in runs if float(r["config"].get("weight_decay", 0.0)) == wd]
            for wd in wds}
    means = [statistics.fmean(accs[w]) for w in wds]
    errs = [statistics.stdev(accs[w]) if len(accs[w]) > 1 else 0.0 for w in wds]
    bx.errorbar(wds, means, yerr=errs, marker="o", capsize=3, color="#333")
    if pick is not None:
        bx.axvline(pick, color="tab:orange", ls="--", label=f"picked from the curves: {pick:g}")
    best = wds[max(range(len(wds)), key=means.__getitem__)]
    bx.axvline(best, color="tab:green", ls=":", label=f"best by training: {best:g}")
    bx.set_xscale("log")
    bx.set_xlabel("weight decay")
    bx.set_title("final test accuracy (mean ± s.d. over seeds)")
    bx.legend()
    for a in (ax, bx):
        a.grid(alpha=0.3)
    fig.tight_layout()
    return [("Left: the range tests the pick is read from. Right: what training at each weight decay gave.",
             _png(fig))]


def lr_sweep(records: Sequence[Record], arm: str = "sweep") -> list[Figure]:
    """Test loss against peak LR per training-subset size, one panel per batch size, and the best LR."""
    runs = [r for r in _done(records) if r["arm"] == arm]
    if not runs:
        return []
    plt = _pyplot()
    batches = sorted({r["config"]["batch_size"] for r in runs})
    fig, axes = plt.subplots(1, len(batches) + 1, figsize=(4 * (len(batches) + 1), 3.6), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        cells: dict[int, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in runs:
            if r["config"]["batch_size"] == batch:
                cells[r["config"].get("train_subset") or 0][r["config"]["max_lr"]].append(metric(r, "test_loss"))
        for subset, by_lr in sorted(cells.items()):
            lrs = sorted(by_lr)
            ax.plot(lrs, [statistics.fmean(by_lr[x]) for x in lrs], marker="o", label=f"{subset} images")
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
        ax.set_title(f"test loss at batch {batch}")
        ax.legend()
        ax.grid(alpha=0.3)
    bx = axes[0][-1]
    for batch, best in best_lrs(runs, arm).items():
        subsets = sorted(best)
        bx.plot(subsets, [best[s] for s in subsets], marker="o", label=f"batch {batch}")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("training images")
    bx.set_title("best peak LR (lowest mean test loss)")
    bx.legend()
    bx.grid(alpha=0.3)
    fig.tight_layout()
    return [("The LR sweep: forgetting predicts a higher best LR on smaller training sets.", _png(fig))]


def forgetting(records: Sequence[Record]) -> list[Figure]:
    """Loss of the trained model on each batch of its last epoch, in order, against its test loss."""
    runs = [r for r in _done(records) if (r.get("metrics") or {}).get("forgetting")]
    if not runs:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    colors = plt.get_cmap("tab10").colors
    for color, (label, group) in zip(colors, _groups(runs).items()):
        r = group[0]
        losses = r["metrics"]["forgetting"]["batch_losses"]
        ax.plot([(i + 0.5) / len(losses) for i in range(len(losses))], losses, color=color, lw=1.3,
                label=f"{label}: batches of the last epoch")
        ax.axhline(r["metrics"]["test_loss"], color=color, ls="--", lw=1, label=f"{label}: test loss")
    ax.set_xlabel("position of the batch in the last epoch (0 = first seen, 1 = last seen)")
    ax.set_ylabel("loss with the final weights")
    ax.set_title("forgetting within an epoch (first seed)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return [("Recently seen batches fit better than earlier ones; earlier batches near the test loss have been "
             "forgotten.", _png(fig))]


def study_figures(kind: str, records: Sequence[Record]) -> list[Figure]:
    """Every figure of a study of ``kind``."""
    if kind == "wd-finder":
        return wd_finder(records) + curves(records)
    if kind == "forgetting":
        return lr_sweep(records) + curves(records, exclude_arms=("sweep",)) + forgetting(records)
    return curves(records)
