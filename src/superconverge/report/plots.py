"""Plots drawn from plain values (lists of floats), never from live training objects.

Also the one place that turns a path into the file matplotlib writes: :func:`plot_path` checks
it before any work starts, :func:`save_figure` writes there and returns it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FIRST = ("png", "pdf", "svg")  # listed first in the error: what people usually want


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported only when drawing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_path(path: str | Path, what: str = "plot") -> Path:
    """The file that saving a figure to ``path`` really writes; ValueError if matplotlib cannot write it.

    Like matplotlib's ``savefig``, a name without an extension gets the default format's
    (``.png``), and the format is the extension in any case. Writes nothing, so a command can
    check its plot path before the work that the plot shows.

    >>> plot_path("runs/curve"), plot_path("curve.PDF")
    (PosixPath('runs/curve.png'), PosixPath('curve.PDF'))
    >>> plot_path("curve.xyz", "--plot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --plot curve.xyz: matplotlib cannot write '.xyz' files; use one of .png, .pdf, .svg, ...
    """
    import matplotlib

    name = os.fspath(path)
    fmt = os.path.splitext(name)[1][1:]
    if not fmt:  # the rule of FigureCanvasBase.print_figure
        fmt = matplotlib.rcParams["savefig.format"]
        name = name.rstrip(".") + "." + fmt
    if fmt.lower() not in writable_formats():
        raise ValueError(f"{what} {os.fspath(path)}: matplotlib cannot write '.{fmt}' files; use one of "
                         + ", ".join(f".{f}" for f in writable_formats()))
    return Path(name)


def writable_formats() -> list[str]:
    """The extensions savefig can write here: the Agg canvas's file types, the common ones first."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = set(FigureCanvasAgg.get_supported_filetypes())
    if shutil.which(matplotlib.rcParams["pgf.texsystem"]) is None:
        formats.discard("pgf")  # needs LaTeX, and fails only after writing half a file
    return [f for f in FIRST if f in formats] + sorted(formats - set(FIRST))


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write and close ``fig``; returns the file written (see :func:`plot_path`)."""
    out = plot_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # "tight" keeps text placed outside the axes (legends, notes) inside the image
    fig.savefig(out, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return out


def plot_curves(values: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "",
                x: Mapping[str, Sequence[float]] | None = None,
                xlabel: str | Mapping[str, str] = "optimizer step", log_keys: Sequence[str] = (),
                sharex: bool = True) -> Path:
    """One panel per curve, stacked, y labelled by its key; returns the file written.

    ``x`` gives a panel's x values (default ``0, 1, 2, ...``) and ``xlabel`` its axis label,
    one for all panels or one per key. With ``sharex`` only the bottom panel is labelled.
    """
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    keys = list(values)
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys) + 0.6), sharex=sharex, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        ys = list(values[key])
        xs = list(x[key]) if x and key in x else list(range(len(ys)))
        # a line through one point draws nothing: mark the points of a short series
        ax.plot(xs, ys, lw=1.6, marker="o" if len(ys) <= 30 else None, ms=4)
        ax.set_ylabel(key)
        if key in log_keys:
            ax.set_yscale("log")
        if all(float(v).is_integer() for v in xs):  # counts: no "epoch 2.5"
            if len(xs) <= 12:
                ax.set_xticks(xs)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        label = xlabel if isinstance(xlabel, str) else xlabel.get(key, "")
        if label and (not sharex or ax is axes[-1, 0]):
            ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
