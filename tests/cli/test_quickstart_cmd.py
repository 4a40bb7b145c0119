"""``superconverge quickstart``: its LR range test is the one ``tune`` runs (the full run: tests/test_readme.py)."""

from __future__ import annotations

from click.testing import CliRunner

from superconverge import finders
from superconverge.cli import main
from superconverge.finders import recipe
from superconverge.train.recipe import TrainConfig


class Stop(Exception):
    """Ends the command once the sweep's settings are seen: the sweep itself is not under test here."""


def test_the_sweep_runs_at_1cycles_peak_momentum_through_tunes_path(tmp_path, monkeypatch):
    seen = {}

    def spy(model, optimizer, loss_fn, data, **kwargs):
        seen.update(groups=[(g["momentum"], g["weight_decay"]) for g in optimizer.param_groups], kwargs=kwargs)
        raise Stop

    monkeypatch.setattr(finders, "lr_find", spy)
    monkeypatch.setattr(recipe, "lr_find", spy)
    monkeypatch.setenv("SUPERCONVERGE_TRACEBACK", "1")  # let Stop through instead of a one-line error
    result = CliRunner().invoke(main, ["quickstart", "--model", "tiny", "--quiet", "--out", str(tmp_path / "qs")])
    assert isinstance(result.exception, Stop), result.output
    config = TrainConfig()
    assert seen["groups"] == [(config.base_momentum, config.weight_decay)]  # 0.85, as tune sweeps
    assert seen["kwargs"]["steps"] == 100
