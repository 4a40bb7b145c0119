"""The HTML report: rendered from a store alone (no training code), honest about failures, clear errors."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys

import pytest

from superconverge.report.html import ReportError, render, write_report
from superconverge.studies import store
from superconverge.studies.spec import expand, load_spec


def fake_study(directory, name="cyclical-momentum", seeds=4, finish=True):
    """A study store filled with made-up results: the cyclical arm 1 point ahead, one run failed."""
    spec = load_spec(name, "smoke")
    runs = expand(spec, seeds)
    conn = store.connect(directory / store.DB)
    store.init(conn, spec.to_dict(), spec.experiment_hash(), runs)
    worker = store.this_worker()
    while finish and (run := store.claim(conn, worker)) is not None:
        if run["arm"] == "const-0.95" and run["seed"] == 3:
            store.fail(conn, run["hash"], "DivergedError: the loss is nan at step 3", 0.5)
            continue
        acc = 0.80 + (0.01 if run["arm"] == "cyclical" else 0.0) + 0.002 * run["seed"]
        epochs = [{"epoch": e, "train_loss": 2 - e / 2, "test_loss": 1.5 - e / 4, "test_accuracy": acc - 0.1 * (2 - e)}
                  for e in range(3)]
        steps = [{"step": i, "lr": 0.1 * (1 + i % 4), "momentum": 0.9, "loss": 2.0} for i in range(12)]
        store.finish(conn, run["hash"], {"test_accuracy": acc, "test_loss": 0.7, "train_seconds": 12.0,
                                         "precision": "bf16", "device": "cpu", "torch_version": "2.13.0+cpu",
                                         "threads": 2},
                     {"epochs": epochs, "steps": steps, "steps_per_epoch": 4}, 13.0)
    return spec


def test_a_report_states_claim_verdict_table_and_failures(tmp_path):
    spec = fake_study(tmp_path)
    page = write_report(tmp_path).read_text()
    assert html.escape(spec.claim) in page and "Design" in page
    assert page.count("data:image/png;base64,") == 1
    assert "<script" not in page and not re.search(r"(src|href)=['\"]https?:", page)  # self-contained
    # cyclical beats every constant arm by 1 point with tiny spread: supported
    assert re.search(r"Verdict: <span class='badge supported'>supported", page)
    assert "81.30%" in page and "± 0.26" in page  # mean and s.d. over 4 seeds
    assert "DivergedError: the loss is nan at step 3" in page and "1 failed" in page
    assert "Smoke scale" in page
    assert "Machine: precision <b>bf16</b>; device cpu; torch 2.13.0+cpu; 2 thread(s) per run" in page


def test_an_index_links_every_study_in_a_directory(tmp_path):
    for name in ("cyclical-momentum", "schedulers"):
        (tmp_path / name).mkdir()
    fake_study(tmp_path / "cyclical-momentum")
    fake_study(tmp_path / "schedulers", "schedulers", seeds=2, finish=False)
    page = render(tmp_path)
    assert "href='#cyclical-momentum'" in page and "href='#schedulers'" in page
    assert "id='schedulers'" in page and "0/16" in page and "No finished run to plot" in page


def test_no_study_and_no_finished_run_are_clear_errors(tmp_path):
    with pytest.raises(ReportError, match="holds no study"):
        render(tmp_path)
    fake_study(tmp_path, finish=False)
    with pytest.raises(ReportError, match="no run .* has finished yet"):
        render(tmp_path)
    with pytest.raises(ReportError, match="is not a directory"):
        render(tmp_path / "missing")


def test_the_report_imports_no_training_code(tmp_path):
    fake_study(tmp_path, seeds=2)
    code = ("import sys; from superconverge.report.html import render; render(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('superconverge.train')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
