"""A run's records: what write_records puts in the run directory."""

from __future__ import annotations

import json

from superconverge.report import plots
from superconverge.train.records import History
from superconverge.train.run import write_records


def test_curves_show_loss_and_accuracy_of_train_and_test(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "plot_curves", lambda values, path, **kw: drawn.setdefault(path.name, values))
    steps = [{"step": i, "epoch": i // 2, "loss": 2.0 - i / 10, "lr": 0.1, "momentum": 0.9} for i in range(4)]
    epochs = [{"epoch": 0, "train_loss": 1.9, "train_accuracy": 0.3, "test_loss": 2.0, "test_accuracy": 0.25,
               "seconds": 1.0},
              {"epoch": 1, "train_loss": 1.7, "train_accuracy": 0.4, "test_loss": 1.8, "test_accuracy": 0.35,
               "seconds": 2.0}]
    write_records(tmp_path, History(steps, epochs), {"epochs": 2})
    assert drawn["curves.png"] == {
        "train loss (per step)": [2.0, 1.9, 1.8, 1.7],
        "test loss (per epoch)": [2.0, 1.8],
        "train accuracy (per epoch)": [0.3, 0.4],
        "test accuracy (per epoch)": [0.25, 0.35],
    }
    assert drawn["schedule.png"] == {"lr": [0.1] * 4, "momentum": [0.9] * 4}
    assert json.loads((tmp_path / "summary.json").read_text()) == {"epochs": 2}
