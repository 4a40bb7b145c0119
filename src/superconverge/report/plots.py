"""Plots drawn from plain values (lists of floats), never from live training objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def plot_curves(values: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "",
                xlabel: str = "optimizer step", log_keys: Sequence[str] = (), sharex: bool = True) -> Path:
    """One panel per hyperparameter, stacked, sharing the step axis; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    keys = list(values)
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys) + 0.6), sharex=sharex, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        ax.plot(range(len(values[key])), values[key], lw=1.6)
        ax.set_ylabel(key)
        if key in log_keys:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
