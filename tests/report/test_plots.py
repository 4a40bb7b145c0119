"""The plot path check and the plain-value plots: the file named is the file written."""

from __future__ import annotations

from pathlib import Path

import pytest

from superconverge.report import plots
from superconverge.report.plots import plot_curves, plot_path, pyplot


@pytest.mark.parametrize("given, written", [
    ("curve.png", "curve.png"),
    ("curve.pdf", "curve.pdf"),
    ("curve.SVG", "curve.SVG"),  # the format is read case-blind, the name is kept
    ("curve", "curve.png"),
    ("curve.", "curve.png"),
    ("runs.v2/curve", "runs.v2/curve.png"),  # a dot in a folder is no extension
])
def test_plot_path_is_the_file_matplotlib_writes(given, written):
    assert plot_path(given) == Path(written)
    assert plot_path(Path(given)) == Path(written)


def test_matplotlib_itself_appends_png_to_a_name_without_an_extension(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    fig.savefig(tmp_path / "curve")
    plt.close(fig)
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]
    assert plot_path(tmp_path / "curve") == tmp_path / "curve.png"


def test_an_extension_matplotlib_cannot_write_is_a_clear_error_that_names_the_ones_it_can(tmp_path):
    with pytest.raises(ValueError) as err:
        plot_path(tmp_path / "sub" / "out.xyz")
    message = str(err.value)
    assert message.startswith(f"plot {tmp_path / 'sub' / 'out.xyz'}: matplotlib cannot write '.xyz' files; "
                              "use one of .png, .pdf, .svg, ")
    assert ".jpg" in message and ".eps" in message
    assert not (tmp_path / "sub").exists()  # a check, before any work: nothing is written
    with pytest.raises(ValueError, match=r"^--plot out\.tar\.gz: matplotlib cannot write '\.gz' files"):
        plot_path("out.tar.gz", "--plot")


def test_pgf_counts_only_where_its_tex_is_installed(monkeypatch):
    monkeypatch.setattr(plots.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="cannot write '.pgf'"):
        plot_path("out.pgf")
    monkeypatch.setattr(plots.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert plot_path("out.pgf") == Path("out.pgf")


def test_plot_curves_returns_the_file_it_wrote(tmp_path):
    out = plot_curves({"lr": [0.1, 0.2, 0.3]}, tmp_path / "runs" / "schedule")
    assert out == tmp_path / "runs" / "schedule.png"
    assert out.stat().st_size > 5_000
    assert plot_curves({"lr": [0.1, 0.2]}, tmp_path / "schedule.svg").read_text().startswith("<?xml")
    with pytest.raises(ValueError, match="cannot write '.xyz'"):
        plot_curves({"lr": [0.1]}, tmp_path / "schedule.xyz")


def test_each_panel_gets_its_x_values_and_label(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    plot_curves({"loss (per step)": [2.0, 1.5, 1.2, 1.0], "accuracy (per epoch)": [0.3, 0.5]}, tmp_path / "c.png",
                x={"accuracy (per epoch)": [1, 2]},
                xlabel={"loss (per step)": "optimizer step", "accuracy (per epoch)": "epoch"}, sharex=False)
    steps, epochs = drawn[0].axes
    assert (steps.get_xlabel(), steps.get_ylabel()) == ("optimizer step", "loss (per step)")
    assert (epochs.get_xlabel(), epochs.get_ylabel()) == ("epoch", "accuracy (per epoch)")
    assert list(steps.lines[0].get_xdata()) == [0, 1, 2, 3]
    assert list(epochs.lines[0].get_xdata()) == [1, 2]
    assert list(epochs.get_xticks()) == [1, 2]  # whole epochs only
    assert epochs.lines[0].get_marker() == "o"  # a one-epoch run still shows its point
    pyplot().close("all")


def test_shared_x_is_labelled_once_at_the_bottom(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    plot_curves({"lr": [0.1, 0.2], "momentum": [0.9, 0.85]}, tmp_path / "s.png")
    assert [ax.get_xlabel() for ax in drawn[0].axes] == ["", "optimizer step"]
    pyplot().close("all")
