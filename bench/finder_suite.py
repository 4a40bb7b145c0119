"""Does the finder's suggestion hold on models it never saw? A grid, the finder, and the LR-free
optimizers on eleven small tasks of seven families (bench/finder_tasks.py).

Run by hand (accuracy figures; the seconds are not the point, but run it alone for them):

    python bench/finder_suite.py --run                 # every job not yet in the results file (~1 h)
    python bench/finder_suite.py --run --tasks digits-sgd --seeds 1   # a few jobs, to try it
    python bench/finder_suite.py --analyze             # the tables for docs/BENCHMARKS.md

Per task and seed (3 seeds): a short 1cycle at each of 8 peak LRs of a fixed half-decade grid;
the LR range test (100 steps, 1e-7 to 10, the training optimizer at 1cycle's peak-LR momentum
0.85) and a 1cycle at its suggestion; a 1cycle at a fixed default LR (SGD 0.1, AdamW 1e-3); and
each LR-free optimizer at its defaults (where installed). Budgets are equal: the 1cycle at the
suggestion trains T steps after the finder's 100, everything that needs no finder trains T + 100.
A diverged run scores what its initial weights score. Results go to bench/results/finder_suite.jsonl,
one JSON object per job; a rerun skips the jobs already there.

The shipped rule was chosen on other tasks (docs/BENCHMARKS.md), so its figures here are out of
sample. Any rule or constant chosen from these results is validated leave-one-family-out: the
figure for a task comes from the rule chosen on the other families only (--analyze prints both).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from finder_tasks import BY_NAME, TASKS, Task, untrained_score  # noqa: E402

from superconverge.finders import DataCycledWarning, lr_find, suggest  # noqa: E402
from superconverge.finders.probe import candidates, probe  # noqa: E402
from superconverge.optim import Scheduler  # noqa: E402
from superconverge.schedules import one_cycle  # noqa: E402
from superconverge.train.runtime import build_optimizer  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "finder_suite.jsonl"
SEEDS = 3
FINDER_STEPS = 100
PROBE_STEPS = 50  # per probe: 3 probes cost 1.5x the finder's 100 steps
PROBED = FINDER_STEPS + 3 * PROBE_STEPS  # the finder-and-probes pipeline's steps before training
DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3}
LR_FREE = ("adamw-schedulefree", "sgd-schedulefree", "prodigy", "dadapt-adam")
GOAL = {"accuracy": 1.0, "loss": 5.0}  # points of accuracy / percent of excess loss


# -- one job -------------------------------------------------------------------------------------

def train(task: Task, seed: int, optimizer: str, lr: float | None, steps: int, schedule: bool) -> dict:
    """Train from the seed's initial weights for ``steps``; 1cycle at peak ``lr`` when ``schedule``."""
    torch.manual_seed(seed)
    model = task.build()
    kwargs = {} if lr is None else {"lr": lr}
    opt = build_optimizer(optimizer, model.parameters(), momentum=0.9, weight_decay=task.weight_decay, **kwargs)
    sched = Scheduler(opt, one_cycle(steps, lr)) if schedule else None
    schedule_free = hasattr(opt, "eval") and "ScheduleFree" in type(opt).__name__
    if schedule_free:
        opt.train()
    batches = task.batches(seed)
    diverged = False
    for _ in range(steps):
        x, y = next(batches)
        loss = task.loss(model(x), y)
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    if schedule_free:
        opt.eval()
        _refresh_batch_norm(model, task, seed)
    score = task.score(model)
    if diverged or not math.isfinite(score):
        return {"score": untrained_score(task, seed), "diverged": True}
    return {"score": score, "diverged": False}


@torch.no_grad()
def _refresh_batch_norm(model: torch.nn.Module, task: Task, seed: int, batches: int = 20) -> None:
    """Schedule-free evaluates other weights than it trained: recompute batch-norm statistics for them."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches below
    it = task.batches(seed + 1)
    for _ in range(batches):
        model(next(it)[0])


def find(task: Task, seed: int) -> dict:
    torch.manual_seed(seed)
    model = task.build()
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-7, momentum=0.85,
                          weight_decay=task.weight_decay)
    it = task.batches(seed)
    data = [next(it) for _ in range(FINDER_STEPS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataCycledWarning)
        r = lr_find(model, opt, task.loss, data, steps=FINDER_STEPS, device="cpu", precision="fp32")
    return {"lrs": list(map(float, r.lrs)), "losses": list(map(float, r.losses)), "suggestion": r.suggestion,
            "band": list(r.band), "reliable": r.reliable, "suggestions": r.suggestions, "seconds": r.seconds}


def probed(task: Task, seed: int, suggestion: float, steps: int) -> dict:
    """Probe three peaks (the suggestion, /3, /9) for PROBE_STEPS each, then train T steps at the pick."""
    torch.manual_seed(seed)
    model = task.build()
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-7, momentum=0.85,
                          weight_decay=task.weight_decay)
    found = probe(model, opt, task.loss, task.batches(seed + 100), candidates(suggestion), steps=PROBE_STEPS)
    return {**train(task, seed, task.optimizer, found.pick, steps, schedule=True), "probe": found.to_dict()}


def run_job(job: dict) -> dict:
    torch.set_num_threads(1)
    task = BY_NAME[job["task"]]
    steps = task.epochs * task.steps_per_epoch()
    started = time.perf_counter()
    kind = job["kind"]
    if kind == "finder":
        out = find(task, job["seed"])
    elif kind == "probed":
        out = probed(task, job["seed"], job["lr"], steps)
    elif kind in ("grid", "suggested"):
        out = train(task, job["seed"], task.optimizer, job["lr"], steps, schedule=True)
    elif kind == "default":
        out = train(task, job["seed"], task.optimizer, job["lr"], steps + job.get("extra", FINDER_STEPS), schedule=True)
    else:  # an LR-free optimizer at its defaults, no schedule
        out = train(task, job["seed"], job["optimizer"], None, steps + job.get("extra", FINDER_STEPS), schedule=False)
    return {**job, **out, "seconds": time.perf_counter() - started}


def key(job: dict) -> str:
    return json.dumps({k: job[k] for k in ("kind", "task", "seed", "lr", "optimizer", "extra") if k in job},
                      sort_keys=True)


def load() -> list[dict]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def pending(tasks: list[Task], seeds: int, done: list[dict]) -> list[dict]:
    have = {key(r) for r in done}
    suggestion = {(r["task"], r["seed"]): r["suggestion"] for r in done if r["kind"] == "finder"}
    jobs = []
    for t in tasks:
        for s in range(seeds):
            jobs.append({"kind": "finder", "task": t.name, "seed": s})
            jobs += [{"kind": "grid", "task": t.name, "seed": s, "lr": lr} for lr in t.grid]
            jobs.append({"kind": "default", "task": t.name, "seed": s, "lr": DEFAULT_LR[t.optimizer]})
            if (t.name, s) in suggestion:
                jobs.append({"kind": "suggested", "task": t.name, "seed": s, "lr": suggestion[(t.name, s)]})
                jobs.append({"kind": "probed", "task": t.name, "seed": s, "lr": suggestion[(t.name, s)]})
            jobs += [{"kind": "lrfree", "task": t.name, "seed": s, "optimizer": o} for o in LR_FREE if installed(o)]
            # the same at the probed pipeline's budget (finder + three probes), and at T alone
            for extra in (PROBED, 0):
                jobs.append({"kind": "default", "task": t.name, "seed": s, "lr": DEFAULT_LR[t.optimizer],
                             "extra": extra})
                jobs += [{"kind": "lrfree", "task": t.name, "seed": s, "optimizer": o, "extra": extra}
                         for o in LR_FREE if installed(o)]
    return [j for j in jobs if key(j) not in have]


def installed(optimizer: str) -> bool:
    try:
        build_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return True
    except Exception:  # unknown name, package missing, or an older superconverge
        return False


def run(tasks: list[Task], seeds: int, workers: int) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for phase in (1, 2):  # the suggestion runs need the finder's result first
        jobs = pending(tasks, seeds, load())
        jobs.sort(key=lambda j: (j.get("extra") == 0, -BY_NAME[j["task"]].epochs * BY_NAME[j["task"]].steps_per_epoch()))
        print(f"phase {phase}: {len(jobs)} jobs on {workers} workers", flush=True)
        with mp.get_context("spawn").Pool(workers) as pool, RESULTS.open("a") as f:
            for i, result in enumerate(pool.imap_unordered(run_job, jobs), 1):
                f.write(json.dumps(result) + "\n")
                f.flush()
                what = result.get("lr", result.get("optimizer", ""))
                print(f"[{i}/{len(jobs)}] {result['task']} {result['kind']} seed {result['seed']} {what} -> "
                      f"{result.get('score', result.get('suggestion')):.4g} ({result['seconds']:.1f} s)", flush=True)


# -- analysis ------------------------------------------------------------------------------------

def gap(task: Task, best: float, value: float) -> float:
    """Shortfall against the grid's best, in goal units' own scale: accuracy points or % excess loss."""
    if task.metric == "accuracy":
        return 100 * (best - value)
    return 100 * (value - best) / best


def interpolate(task: Task, means: dict[float, float], lr: float) -> float:
    """The grid's mean score at ``lr``, linear in log LR between grid points (clamped at the ends)."""
    lrs = sorted(means)
    return float(np.interp(math.log(lr), [math.log(v) for v in lrs], [means[v] for v in lrs]))


RULES = ("probe", "consensus", "minimum_div10", "steepest", "valley", "minimum", "turn")
FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0)


def rule_value(finder: dict, rule: str) -> float:
    if rule == "probe":
        return finder["probe_pick"]
    if rule == "consensus":
        return finder["suggestion"]
    return finder["suggestions"].get(rule) or suggest.suggest_all(finder["lrs"], finder["losses"])[rule]


def analyze(results: list[dict]) -> str:
    by = defaultdict(list)
    for r in results:
        by[(r["task"], r["kind"])].append(r)
    lines = []
    rows = {}
    for task in TASKS:
        grid = defaultdict(list)
        for r in by[(task.name, "grid")]:
            grid[r["lr"]].append(r["score"])
        if not grid:
            continue
        means = {lr: float(np.mean(v)) for lr, v in grid.items()}
        ses = {lr: float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan for lr, v in grid.items()}
        pick = (max if task.metric == "accuracy" else min)(means, key=means.get)
        edge = pick in (min(means), max(means))
        picks = {r["seed"]: r["probe"]["pick"] for r in by[(task.name, "probed")]}
        finders = [{**f, "probe_pick": picks.get(f["seed"])}
                   for f in sorted(by[(task.name, "finder")], key=lambda r: r["seed"])]
        suggested = [r["score"] for r in by[(task.name, "suggested")]]
        probed_scores = [r["score"] for r in by[(task.name, "probed")]]
        rows[task.name] = dict(task=task, means=means, ses=ses, best=pick, edge=edge, finders=finders,
                               suggested=suggested, probed=probed_scores,
                               picks=[r["probe"]["pick"] for r in by[(task.name, "probed")]],
                               )
    lines += ["### The shipped suggestion, trained (out of sample)", "",
              "| task | family | metric | grid best (LR) | its s.e. | suggestion (median of seeds) | reliable | "
              "score at suggestion | gap | goal met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        t, best = row["task"], row["means"][row["best"]]
        sugg = [f["suggestion"] for f in row["finders"]]
        got = float(np.mean(row["suggested"])) if row["suggested"] else math.nan
        g = gap(t, best, got)
        unit = "pt" if t.metric == "accuracy" else "%"
        lines.append(f"| {name} | {t.family} | {t.metric} | {best:.4g} ({row['best']:g}{', edge' if row['edge'] else ''})"
                     f" | {row['ses'][row['best']]:.2g} | {np.median(sugg) if sugg else math.nan:.3g} | "
                     f"{sum(f['reliable'] for f in row['finders'])}/{len(row['finders'])} | {got:.4g} | "
                     f"{g:+.2f} {unit} | {'yes' if g <= GOAL[t.metric] else 'NO'} |")
    lines += ["", "### With three probes (the suggestion, /3, /9; 50 steps each), trained at the pick", "",
              "| task | grid best | picks | score at pick | gap | goal met |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        t, best = row["task"], row["means"][row["best"]]
        got = float(np.mean(row["probed"])) if row["probed"] else math.nan
        g = gap(t, best, got)
        lines.append(f"| {name} | {best:.4g} | {', '.join(f'{p:.3g}' for p in row['picks'])} | {got:.4g} | "
                     f"{g:+.2f} {'pt' if t.metric == 'accuracy' else '%'} | {'yes' if g <= GOAL[t.metric] else 'NO'} |")
    lines += ["", "### Every rule x factor, scored on the grid (interpolated in log LR); leave-one-family-out", ""]
    table = {}  # (rule, factor) -> {task: gap in goal units}
    for rule in RULES:
        for factor in FACTORS:
            per = {}
            for name, row in rows.items():
                t = row["task"]
                if not row["finders"] or (rule == "probe" and len(row["picks"]) < len(row["finders"])):
                    continue
                values = [interpolate(t, row["means"], factor * rule_value(f, rule)) for f in row["finders"]]
                per[name] = gap(t, row["means"][row["best"]], float(np.mean(values))) / GOAL[t.metric]
            table[(rule, factor)] = per
    families = sorted({row["task"].family for row in rows.values()})
    lines += ["| held-out family | rule chosen on the others | its gaps on the held-out tasks (goal units) |",
              "|---|---|---|"]
    lofo = {}
    for fam in families:
        inside = [n for n, row in rows.items() if row["task"].family != fam]
        chosen = min(table, key=lambda k: float(np.mean([max(table[k][n], 0) for n in inside if n in table[k]])))
        held = {n: table[chosen][n] for n, row in rows.items() if row["task"].family == fam and n in table[chosen]}
        lofo.update(held)
        lines.append(f"| {fam} | {chosen[0]} x {chosen[1]:g} | "
                     + ", ".join(f"{n} {v:+.2f}" for n, v in held.items()) + " |")
    within = sum(v <= 1 for v in lofo.values())
    lines.append("" if not lofo else f"\nLeave-one-family-out: {within}/{len(lofo)} tasks within the goal; worst {max(lofo.values()):+.2f}"
                 f" goal units.")
    lines += ["", "| rule x factor (in sample, all tasks) | mean gap | worst gap | tasks within goal |", "|---|---|---|---|"]
    for k in sorted(table, key=lambda k: np.mean([max(v, 0) for v in table[k].values()]))[:8]:
        v = list(table[k].values())
        lines.append(f"| {k[0]} x {k[1]:g} | {np.mean(v):+.2f} | {max(v):+.2f} | {sum(x <= 1 for x in v)}/{len(v)} |")
    for extra, mine, label in ((FINDER_STEPS, "suggested", "finder + 1cycle"),
                               (PROBED, "probed", "finder + probes + 1cycle"),
                               (0, "probed", "finder + probes + 1cycle, its overhead not counted")):
        lines += ["", f"### {label} against a default LR and the LR-free optimizers at its budget (T + {extra} steps)",
                  "", f"| task | grid best (T steps) | {label} | default LR + 1cycle | " + " | ".join(LR_FREE)
                  + " | best LR-free | matched |", "|---|---|---|---|" + "---|" * len(LR_FREE) + "---|---|"]
        matched = 0
        for name, row in rows.items():
            t = row["task"]

            def mean(kind: str, optimizer: str | None = None) -> float:
                v = [r["score"] for r in by[(name, kind)] if r.get("extra", FINDER_STEPS) == extra
                     and (optimizer is None or r.get("optimizer") == optimizer)]
                return float(np.mean(v)) if v else math.nan

            ours = float(np.mean(row[mine])) if row[mine] else math.nan
            free = [mean("lrfree", o) for o in LR_FREE]
            better = max if t.metric == "accuracy" else min
            best_free = better([v for v in free if math.isfinite(v)], default=math.nan)
            ok = gap(t, ours, best_free) >= -GOAL[t.metric] / 2  # within half the goal of the best LR-free
            matched += ok
            cells = [row["means"][row["best"]], ours, mean("default"), *free, best_free]
            lines.append(f"| {name} | " + " | ".join(f"{c:.4g}" for c in cells) + f" | {'yes' if ok else 'no'} |")
        lines.append(f"\n{label} matches the best LR-free optimizer (within half the goal) on {matched}/{len(rows)} "
                     "tasks.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true")
    parser.add_argument("--analyze", action="store_true")
    parser.add_argument("--tasks", nargs="*", default=[t.name for t in TASKS], choices=[t.name for t in TASKS])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.run:
        run([BY_NAME[n] for n in args.tasks], args.seeds, args.workers)
    if args.analyze or not args.run:
        print(analyze(load()))


if __name__ == "__main__":
    main()
