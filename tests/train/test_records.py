import csv
import json

from superconverge.train.records import HISTORY, STEPS, History, write_records


def test_history_is_rewritten_and_steps_appended(tmp_path):
    history = History(steps=[{"step": 0, "loss": 2.0}, {"step": 1, "loss": 1.5}], epochs=[{"epoch": 1, "loss": 1.7}])
    assert write_records(tmp_path, history, 0) == 2
    history.steps.append({"step": 2, "loss": 1.2})
    history.epochs.append({"epoch": 2, "loss": 1.3})
    assert write_records(tmp_path, history, 2) == 3
    with open(tmp_path / HISTORY) as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    steps = [json.loads(line) for line in (tmp_path / STEPS).read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1, 2]


def test_written_zero_replaces_the_steps_a_resumed_run_does_not_hold(tmp_path):
    (tmp_path / STEPS).write_text('{"step": 0}\n{"step": 1}\n{"step": 2}\n')  # steps past the checkpoint
    write_records(tmp_path, History(steps=[{"step": 0}], epochs=[{"epoch": 1}]), 0)
    assert (tmp_path / STEPS).read_text().splitlines() == ['{"step": 0}']
