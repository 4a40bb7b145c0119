"""A self-contained HTML report of one or more study directories, rendered from their stores alone.

No network, no JavaScript: figures are embedded as base64 PNG. The page opens with an
index of the studies (claim, scale, verdict) that links to one section per study: the
claim, the design, how the runs computed (precision, device, torch, threads), the verdict with the
numbers behind each check, the figures, a table of results (mean ± s.d. over seeds) and any
failed runs with their errors.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superconverge import __version__
from superconverge.report.figures import study_figures
from superconverge.studies import store
from superconverge.studies.verdict import SUPPORTED, NOT_SUPPORTED, evaluate, metric, overall, summary

SCALE_NOTES = {
    "smoke": "Smoke scale: a tiny model, a few hundred images, one or two epochs. It checks that the study "
             "runs; its numbers say nothing about the claim.",
    "cpu": "CPU scale: small models on the 5,000-image sample, a few seeds. The verdict holds for this scale "
           "only; the published results used larger models, all 50,000 images and a GPU.",
    "paper": "Paper scale: the published settings.",
}
CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;max-width:1080px;margin:2em auto;
padding:0 1.2em}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2.2em;border-top:1px solid #ddd;padding-top:1em}
h3{font-size:1.05em;margin:1.4em 0 .4em}
blockquote{margin:.6em 0;padding:.5em 1em;border-left:4px solid #8ab;background:#f4f8fa;font-size:1.05em}
.meta,.note,figcaption,.source{color:#555;font-size:.9em}
.badge{display:inline-block;padding:.05em .55em;border-radius:.8em;font-size:.85em;font-weight:600;color:#fff;
white-space:nowrap}
.supported{background:#2e7d32}.not-supported{background:#c62828}.inconclusive{background:#8d8d8d}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child,.text{text-align:left}td.nowrap{white-space:nowrap}
img{max-width:100%;height:auto}figure{margin:1em 0}
ul.checks{padding-left:1.2em}ul.checks li{margin:.3em 0}
code{background:#f2f2f2;padding:0 .25em;border-radius:3px;font-size:.92em}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.85em}
"""


class ReportError(ValueError):
    """Nothing to report on."""


def find_studies(directory: str | Path) -> list[Path]:
    """The study directory itself, or the study directories directly inside it."""
    root = Path(directory)
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory")
    if (root / store.DB).is_file():
        return [root]
    found = sorted(p.parent for p in root.glob(f"*/{store.DB}"))
    if not found:
        raise ReportError(f"{root} holds no study (no {store.DB} in it or in its subdirectories); "
                          "run `superconverge study NAME --out DIR` first")
    return found


def load(directory: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(spec, records) of one study directory."""
    conn = store.open_existing(directory)
    try:
        info = store.meta(conn)
        if "spec" not in info:
            raise ReportError(f"{directory}/{store.DB} holds no study spec")
        return json.loads(info["spec"]), store.records(conn)
    finally:
        conn.close()


def render(directory: str | Path) -> str:
    """The HTML report of every study in ``directory``."""
    studies = [(path, *load(path)) for path in find_studies(directory)]
    if not any(r["status"] in ("done", "failed") for _, _, recs in studies for r in recs):
        raise ReportError(f"no run in {directory} has finished yet; nothing to report")
    sections, rows = [], []
    for path, spec, recs in studies:
        results = [evaluate(check, recs) for check in spec["verdict"]]
        verdict = overall(results)
        anchor = _slug(spec["name"])
        rows.append(f"<tr><td class='nowrap'><a href='#{anchor}'>{_e(spec['name'])}</a></td>"
                    f"<td>{_e(spec['scale'])}</td>"
                    f"<td class='nowrap'>{_done_of(recs)}</td><td>{_badge(verdict)}</td>"
                    f"<td class='text'>{_e(spec['claim'])}</td></tr>")
        sections.append(_study(anchor, path, spec, recs, results, verdict))
    index = ("<table><tr><th>study</th><th>scale</th><th>runs done</th><th>verdict</th><th class='text'>claim</th></tr>"
             + "".join(rows) + "</table>")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>superconverge studies</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>"
            f"<h1>superconverge studies</h1><p class='meta'>Rendered {stamp} by superconverge {__version__} from "
            f"{_e(str(directory))}. Checks compare means over seeds (paired by seed) with 95% "
            f"intervals; one seed gives no spread, so its checks are inconclusive.</p>"
            f"{index}{''.join(sections)}</body></html>")


def write_report(directory: str | Path, out: str | Path | None = None) -> Path:
    """Render and write the report (default ``DIRECTORY/report.html``); returns its path."""
    page = render(directory)
    path = Path(out) if out is not None else Path(directory) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _study(anchor: str, path: Path, spec: dict[str, Any], recs: list[dict[str, Any]], results: Sequence[Any],
           verdict: str) -> str:
    checks = "".join(f"<li>{_badge(r.outcome)} {_e(r.text)}</li>" for r in results)
    figures = "".join(f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,"
                      f"{base64.b64encode(png).decode()}'><figcaption>{_e(caption)}</figcaption></figure>"
                      for caption, png in study_figures(spec.get("kind", "train"), recs))
    incomplete = any(r["status"] in ("queued", "running") for r in recs)
    warn = "<p class='note'><b>Incomplete:</b> some runs have not finished; the verdict uses those that have.</p>" \
        if incomplete else ""
    return (f"<h2 id='{anchor}'>{_e(spec['name'])} {_badge(verdict)}</h2>"
            f"<blockquote>{_e(spec['claim'])}</blockquote>"
            f"<p class='source'>Source: {_e(spec.get('source', ''))}</p>"
            f"<h3>Design</h3><p>{_prose(spec['design'])}</p>"
            f"<p class='meta'>Scale <b>{_e(spec['scale'])}</b>; {_counts(recs)}; directory {_e(str(path))}; "
            f"{_provenance(recs)}</p><p class='meta'>{_machine(recs)}</p>"
            f"<p class='note'>{_e(SCALE_NOTES.get(spec['scale'], ''))}</p>{warn}"
            f"<h3>Verdict: {_badge(verdict)}</h3><ul class='checks'>{checks}</ul>"
            f"<h3>Figures</h3>{figures or '<p>No finished run to plot.</p>'}"
            f"<h3>Results</h3>{_table(spec, recs)}{_failures(recs)}")


def _table(spec: dict[str, Any], recs: list[dict[str, Any]]) -> str:
    names = spec.get("metrics") or ["test_accuracy"]
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for label in dict.fromkeys(r["label"] for r in recs):
        group = [r for r in recs if r["label"] == label]
        done = [r for r in group if r["status"] == "done"]
        failed = sum(r["status"] == "failed" for r in group)
        cells = "".join(f"<td>{_fmt(n, [metric(r, n) for r in done])}</td>" for n in names)
        status = f"{len(done)}/{len(group)}" + (f" <span class='badge not-supported'>{failed} failed</span>"
                                                if failed else "")
        rows.append(f"<tr><td>{_e(label)}</td><td>{status}</td>{cells}</tr>")
    return (f"<table><tr><th>arm</th><th>seeds done</th>{head}</tr>{''.join(rows)}</table>"
            "<p class='note'>Mean over the finished seeds ± their standard deviation.</p>")


def _fmt(name: str, values: list[float]) -> str:
    mean, sd, n = summary(values)
    if n == 0:
        return "–"
    if "accuracy" in name:
        body, spread = f"{100 * mean:.2f}%", f"{100 * sd:.2f}"
    elif "seconds" in name:
        body, spread = f"{mean:.1f} s", f"{sd:.1f}"
    elif name in ("max_lr", "weight_decay", "final_lr", "lr_find_suggestion") or name.endswith("_equivalent") \
            or abs(mean) < 1e-2:
        body, spread = f"{mean:.3g}", f"{sd:.2g}"
    else:
        body, spread = f"{mean:.4g}", f"{sd:.2g}"
    return body + (f" <span class='meta'>± {spread}</span>" if math.isfinite(sd) and sd > 0 else "")


def _failures(recs: list[dict[str, Any]]) -> str:
    failed = [r for r in recs if r["status"] == "failed"]
    if not failed:
        return ""
    items = "".join(f"<li><b>{_e(r['label'])}</b> seed {r['seed']}: <code>{_e(r['error'] or '')}</code></li>"
                    for r in failed)
    return f"<h3>Failed runs</h3><ul>{items}</ul>"


def _counts(recs: list[dict[str, Any]]) -> str:
    c = {s: sum(r["status"] == s for r in recs) for s in store.STATUSES}
    parts = [f"{c['done']} done"] + [f"{c[s]} {s}" for s in ("failed", "running", "queued") if c[s]]
    return ", ".join(parts) + f" of {len(recs)} runs"


def _done_of(recs: list[dict[str, Any]]) -> str:
    failed = sum(r["status"] == "failed" for r in recs)
    done = sum(r["status"] == "done" for r in recs)
    return f"{done}/{len(recs)}" + (f" ({failed} failed)" if failed else "")


def _provenance(recs: list[dict[str, Any]]) -> str:
    versions = sorted({r["version"] for r in recs if r.get("version")})
    revs = sorted({r["git_revision"][:10] for r in recs if r.get("git_revision")})
    wall = sum(r.get("wall_seconds") or 0.0 for r in recs)
    return (f"superconverge {', '.join(versions) or '?'}" + (f" (git {', '.join(revs)})" if revs else "")
            + f"; {wall / 60:.1f} min of runs")


def _machine(recs: list[dict[str, Any]]) -> str:
    """How the finished runs computed (precision as resolved, device, torch, threads), as recorded per run."""

    def seen(key: str) -> str:
        found = {str(r["metrics"][key]) for r in recs if r["status"] == "done" and r["metrics"].get(key) is not None}
        return _e(", ".join(sorted(found)) or "not recorded")

    return (f"Machine: precision <b>{seen('precision')}</b>; device {seen('device')}; torch {seen('torch_version')}; "
            f"{seen('threads')} thread(s) per run")


def _badge(outcome: str) -> str:
    cls = {SUPPORTED: "supported", NOT_SUPPORTED: "not-supported"}.get(outcome, "inconclusive")
    return f"<span class='badge {cls}'>{_e(outcome)}</span>"


def _prose(text: str) -> str:
    """Escape, keep paragraphs, and set `code` spans."""
    paras = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "</p><p>".join(re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(p)) for p in paras)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
