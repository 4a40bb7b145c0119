"""Plots of finder results: the whole curve in view, doubts said in words, the real file returned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from superconverge.finders import plots, suggest
from superconverge.finders.batch_size import BatchSizeResult, Trial
from superconverge.finders.lr_range import LRFindResult
from superconverge.finders.plots import _MARKS, _note, _title, _ylimits, plot_lr_find
from superconverge.finders.weight_decay import WDSweepResult
from superconverge.report.plots import pyplot

LRS = np.geomspace(1e-7, 10, 100)
X = np.log10(LRS)


def result(losses, lrs=LRS, stopped=None):
    """An LRFindResult made as lr_find makes it, from arrays instead of a run."""
    losses = np.asarray(losses, dtype=float)
    lrs = lrs[: len(losses)]
    names = suggest.suggest_all(lrs, losses)
    value, band, reliable, advice = suggest.consensus(lrs, losses, names)
    finite = np.isfinite(losses)
    smoothed = np.full(len(losses), np.nan)
    smoothed[finite] = suggest.ema(losses[finite])  # non-finite only at the end, where a sweep stops
    return LRFindResult(tuple(lrs), tuple(losses), tuple(smoothed), value, names, band, reliable, advice, stopped,
                        len(lrs), 1.0, {"validation": False})


def u_curve(shift=0.0, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return (2.3 - 1.8 / (1 + np.exp(-(X + 2.5 - shift) * 2.5)) + np.exp(2.2 * (X - 0.2 - shift))
            + rng.normal(0, noise, X.size))


CASES = {
    "u": result(u_curve()),
    "lowest first": result(0.4 + np.exp(1.2 * (X[:60] + 7)) / 50),
    "explodes": result(np.append(u_curve()[:84], 5e3), stopped="diverged: the smoothed loss passed 4 x its best"),
    "nan at the end": result(np.append(u_curve()[:89], np.nan), stopped="non-finite loss (nan) at lr 3"),
    "noisy": result(2.3 - 0.15 / (1 + np.exp(-(X + 2.5) * 2.5)) + np.random.default_rng(1).normal(0, 0.25, 100)),
}


def drawn(monkeypatch):
    """The figures plot_lr_find would save, kept open to be inspected."""
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or Path(path))
    return figures


def finite_points(r):
    lrs, losses = np.array(r.lrs), np.array(r.losses)
    keep = np.isfinite(losses)
    smoothed = np.array(r.smoothed)
    return np.concatenate([suggest.denoise(lrs[keep], losses[keep]), smoothed[np.isfinite(smoothed)]])


@pytest.mark.parametrize("name", list(CASES))
def test_the_y_axis_holds_every_smoothed_point_up_to_where_the_sweep_stopped(name, monkeypatch):
    r = CASES[name]
    figures = drawn(monkeypatch)
    plot_lr_find([r], "lr.png")
    bottom, top = figures[0].axes[0].get_ylim()
    points = finite_points(r)
    assert bottom < points.min() and points.max() < top
    assert top - bottom < 100 * (points.max() - points.min())  # and does not drown them in margin
    pyplot().close("all")


def test_the_y_axis_of_a_weight_decay_sweep_holds_every_curve(monkeypatch):
    results = [CASES["u"], result(u_curve(shift=-1.5)), CASES["explodes"], CASES["noisy"]]
    figures = drawn(monkeypatch)
    plot_lr_find(results, "wd.png", labels=["wd 0", "wd 1e-4", "wd 1e-3", "wd 1e-2"], highlight=1)
    bottom, top = figures[0].axes[0].get_ylim()
    for r in results:
        lrs, losses = np.array(r.lrs), np.array(r.losses)
        curve = suggest.denoise(lrs[np.isfinite(losses)], losses[np.isfinite(losses)])
        assert bottom < curve.min() and curve.max() < top
    pyplot().close("all")


def test_ylimits_hold_every_finite_point_also_when_the_loss_is_lowest_first_or_flat():
    assert _ylimits([[0.4, 0.5, 0.9, 2.0], [0.4, float("nan")]])[:2] == pytest.approx((0.304, 2.096))
    lo, hi, scale = _ylimits([[1.0] * 20])
    assert lo < 1.0 < hi and hi - lo == pytest.approx(0.1) and scale == "linear"
    assert _ylimits([[float("nan")]]) == (0.0, 1.0, "linear")


def test_a_blow_up_at_the_end_gets_a_log_axis_that_still_holds_it():
    descent = np.linspace(2.3, 0.6, 80)
    lo, hi, scale = _ylimits([descent, [2.3, 1.5, 1.4, 120.0]])
    assert scale == "log" and lo < 0.6 and hi > 120
    assert _ylimits([descent, np.linspace(0.6, 2.4, 20)])[2] == "linear"  # an ordinary U stays linear
    assert _ylimits([[-1.0, 0.0, 500.0]])[2] == "linear"  # no log axis through zero


def test_an_unreliable_suggestion_is_said_in_the_title_and_a_note():
    noisy, good = CASES["noisy"], CASES["u"]
    assert not noisy.reliable and good.reliable
    assert _title("LR range test", [good]) == "LR range test" and _note([good]) == ""
    assert _title("LR range test", [noisy]) == "LR range test: suggestion NOT reliable (see below)"
    assert " ".join(_note([noisy]).split()) == noisy.advice  # all of it, wrapped
    assert max(map(len, _note([noisy]).splitlines())) <= plots.WRAP
    labels = ["wd 0", "wd 0.01"]
    assert _title("per wd", [good, noisy]) == "per wd: 1 of 2 sweeps NOT reliable (see below)"
    assert " ".join(_note([good, noisy], labels).split()) == f"wd 0.01: {noisy.advice}"


def test_the_note_and_the_legend_appear_on_the_figure(monkeypatch):
    figures = drawn(monkeypatch)
    plot_lr_find([CASES["noisy"]], "lr.png")
    plot_lr_find([CASES["u"], CASES["noisy"]], "wd.png", labels=["wd 0", "wd 0.01"], highlight=0)
    single, sweep = (fig.axes[0] for fig in figures)
    assert _note([CASES["noisy"]]) in [t.get_text() for t in single.texts]
    assert "NOT reliable" in single.get_title()
    legend = [t.get_text() for t in sweep.get_legend().get_texts()]
    assert legend[0] == f"wd 0: suggestion {CASES['u'].suggestion:.3g}"
    assert legend[-1].endswith("(not reliable)")
    pyplot().close("all")


def test_suggestions_outside_the_sweep_are_listed_not_drawn_at_its_edge(monkeypatch):
    r = CASES["lowest first"]
    assert r.suggestions["minimum_div10"] < r.lrs[0]
    figures = drawn(monkeypatch)
    plot_lr_find([r], "lr.png")
    ax = figures[0].axes[0]
    line = next(ln for ln in ax.lines if ln.get_label().startswith("minimum_div10"))
    assert line.get_label().endswith("(outside the sweep)") and len(line.get_xdata()) == 0
    pyplot().close("all")


def test_every_suggestion_has_its_own_marker_and_colour():
    assert set(_MARKS) == set(suggest.SUGGESTERS)
    assert len({(marker, colour) for marker, colour, _ in _MARKS.values()}) == len(_MARKS)
    assert len({colour for _, colour, _ in _MARKS.values()}) == len(_MARKS)


def test_every_plot_returns_the_file_it_really_wrote(tmp_path):
    r = CASES["u"]
    assert r.plot(tmp_path / "lr") == tmp_path / "lr.png"
    assert r.plot(tmp_path / "lr.pdf") == tmp_path / "lr.pdf"
    sweep = WDSweepResult((0.0, 1e-4), (r, CASES["noisy"]), 0.0, r.suggestion, "made up")
    assert sweep.plot(tmp_path / "wd") == tmp_path / "wd.png"
    trials = tuple(Trial(b, b * 2**20, b <= 64, 100.0 * b, True) for b in (16, 32, 64, 128))
    batch = BatchSizeResult(64, trials, 2**30, 0.1, "cpu", "peak RSS", 64, "made up")
    assert batch.plot(tmp_path / "bs") == tmp_path / "bs.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bs.png", "lr.pdf", "lr.png", "wd.png"]
    assert all(p.stat().st_size > 10_000 for p in tmp_path.glob("*.png"))
    with pytest.raises(ValueError, match="cannot write '.xyz'"):
        r.plot(tmp_path / "lr.xyz")
